import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  DryRunTarget,
  FlinkApiSettings,
  FlinkCheckConfigError,
  formatResultTable,
  runFlinkCheck,
  settingsFromEnv,
  targetsFor,
} from '../../scripts/flink-check';
import { defaultFlinkConfig } from '../../config/flink';

/**
 * A local stand-in for the Confluent Cloud Flink SQL REST API (statements endpoints of
 * sql/v1): POST creates a statement and answers PENDING; GET reports COMPLETED, or FAILED with a
 * detail for SQL the fake "planner" rejects; DELETE removes it. It checks the request shape.
 */
interface Received {
  readonly method: string;
  readonly path: string;
  readonly authorization?: string;
  readonly body?: Record<string, unknown>;
}

function fakeFlinkApi(reject: (sql: string) => string | undefined): { server: Server; received: Received[]; ready: Promise<string> } {
  const received: Received[] = [];
  const statements = new Map<string, { phase: string; detail: string; polls: number }>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
      received.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, body });
      const send = (status: number, payload: unknown): void => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(payload));
      };
      const match = /^\/sql\/v1\/organizations\/([^/]+)\/environments\/([^/]+)\/statements(?:\/([^/]+))?$/.exec(req.url ?? '');
      if (!match) return send(404, { errors: [{ status: '404', detail: 'no such route' }] });
      const name = match[3];
      if (req.method === 'POST' && !name) {
        const spec = body?.spec as { statement?: string; properties?: Record<string, string>; compute_pool_id?: string; principal?: string } | undefined;
        if (!spec?.statement || spec.properties?.['sql.dry-run'] !== 'true' || !spec.compute_pool_id || !spec.principal) {
          return send(400, { errors: [{ status: '400', detail: 'malformed statement request' }] });
        }
        const detail = reject(spec.statement);
        statements.set(String(body?.name), { phase: detail ? 'FAILED' : 'COMPLETED', detail: detail ?? '', polls: 0 });
        return send(200, { api_version: 'sql/v1', kind: 'Statement', name: body?.name, spec, status: { phase: 'PENDING' } });
      }
      const statement = name ? statements.get(name) : undefined;
      if (!statement) return send(404, { errors: [{ status: '404', detail: `statement ${name} not found` }] });
      if (req.method === 'GET') {
        statement.polls += 1;
        const phase = statement.polls < 2 ? 'PENDING' : statement.phase;
        return send(200, { name, status: { phase, detail: phase === 'PENDING' ? '' : statement.detail } });
      }
      if (req.method === 'DELETE') {
        statements.delete(name);
        res.writeHead(202);
        return res.end();
      }
      return send(405, { errors: [{ status: '405', detail: 'method not allowed' }] });
    });
  });
  const ready = new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
  return { server, received, ready };
}

const settings = (restEndpoint: string): FlinkApiSettings => ({
  apiKey: 'FLINKKEY',
  apiSecret: 'flink-secret',
  restEndpoint,
  organizationId: 'org-1',
  environmentId: 'env-1',
  computePoolId: 'lfcp-1',
  principalId: 'sa-1',
});

const targets = targetsFor('dev', false, defaultFlinkConfig, 'adstream-dev', 'adstream-dev');

describe('flink:check against a local Flink REST API', () => {
  const api = fakeFlinkApi((sql) =>
    sql.includes('INSERT INTO `compensation-events`')
      ? "SQL validation failed. Error from line 1: Column 'actual_price' cannot be converted to the sink type."
      : undefined,
  );
  let endpoint = '';
  beforeAll(async () => {
    endpoint = await api.ready;
  });
  afterAll(() => new Promise<void>((resolve) => api.server.close(() => resolve())));

  it('dry-runs every statement of the environment and reports accepted / error', async () => {
    const results = await runFlinkCheck(settings(endpoint), targets, { pollIntervalMs: 5 });
    // Every deployed statement (running and retired versions), one result each.
    expect(results.map((r) => r.statementName)).toEqual(targets.map((t) => t.statementName));
    expect(results.length).toBeGreaterThanOrEqual(11);
    const rejected = results.filter((r) => r.verdict === 'error');
    expect(rejected.length).toBeGreaterThanOrEqual(1);
    for (const r of rejected) expect(r.statementName).toMatch(/^adstream-dev-duplicate-clicks-v\d+-01$/);
    expect(rejected[0].detail).toContain("Column 'actual_price' cannot be converted");
    expect(results.filter((r) => r.verdict === 'accepted')).toHaveLength(results.length - rejected.length);
    const table = formatResultTable(results);
    expect(table).toMatch(/adstream-dev-rtb-ranking-v1-02\s+\| 20-rtb-ranking\/v1\/02-insert-rtb-rankings\.sql\s+\| accepted/);
    expect(table).toMatch(/adstream-dev-duplicate-clicks-v1-01\s+\|.*\| error\s+\| SQL validation failed/);
  });

  it('sends the documented request shape with basic auth and sql.dry-run, then deletes the dry run', () => {
    const posts = api.received.filter((r) => r.method === 'POST');
    expect(posts[0].path).toBe('/sql/v1/organizations/org-1/environments/env-1/statements');
    expect(posts[0].authorization).toBe(`Basic ${Buffer.from('FLINKKEY:flink-secret').toString('base64')}`);
    const spec = posts[0].body?.spec as Record<string, unknown>;
    expect(spec).toMatchObject({ compute_pool_id: 'lfcp-1', principal: 'sa-1' });
    expect(spec.properties).toMatchObject({ 'sql.dry-run': 'true', 'sql.current-catalog': 'adstream-dev', 'sql.current-database': 'adstream-dev' });
    expect(String(posts[0].body?.name)).toMatch(/^adstream-dev-sources-v1-01-dry-[0-9a-f]{6}$/);
    expect(api.received.filter((r) => r.method === 'DELETE')).toHaveLength(targets.length);
  });

  it('treats "table does not exist" for a table our own DDL creates as pending DDL, not an error', async () => {
    const beforeFirstDeploy = fakeFlinkApi((sql) =>
      /^INSERT INTO `rtb-rankings`/.test(sql) ? "Table (or view) 'rtb-rankings' does not exist or you do not have permission to access it." : undefined,
    );
    const url = await beforeFirstDeploy.ready;
    try {
      const results = await runFlinkCheck(settings(url), targets as DryRunTarget[], { pollIntervalMs: 5 });
      expect(results.find((r) => r.statementName === 'adstream-dev-rtb-ranking-v1-02')?.verdict).toBe('needs-ddl');
      expect(results.filter((r) => r.verdict === 'error')).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => beforeFirstDeploy.server.close(() => resolve()));
    }
  });

  it('reports an unreachable endpoint as an error instead of crashing', async () => {
    const [result] = await runFlinkCheck(settings('http://127.0.0.1:9'), targets.slice(0, 1), { pollIntervalMs: 5 });
    expect(result.verdict).toBe('error');
    expect(result.detail).toMatch(/request to http:\/\/127\.0\.0\.1:9 failed/);
  });
});

describe('flink:check settings', () => {
  it('names every missing environment variable', () => {
    expect(() => settingsFromEnv({ FLINK_API_KEY: 'k' })).toThrow(FlinkCheckConfigError);
    expect(() => settingsFromEnv({ FLINK_API_KEY: 'k' })).toThrow(
      /FLINK_API_SECRET, FLINK_REST_ENDPOINT, CONFLUENT_ORG_ID, CONFLUENT_ENV_ID, FLINK_COMPUTE_POOL_ID, FLINK_PRINCIPAL_ID/,
    );
  });

  it('exits non-zero from the command line when a statement is rejected', async () => {
    const api = fakeFlinkApi((sql) => (sql.startsWith('ALTER TABLE `conversion-events`') ? 'Invalid watermark expression.' : undefined));
    const url = await api.ready;
    // The CLI runs in a child process; the fake API must keep answering meanwhile.
    const run = new Promise<{ status: number | null; stdout: string }>((resolve) => {
      setImmediate(() => {
        const child = spawn(join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx'), ['scripts/flink-check.ts', '--env', 'dev'], {
          cwd: join(__dirname, '..', '..'),
          env: {
            ...process.env,
            FLINK_API_KEY: 'k',
            FLINK_API_SECRET: 's',
            FLINK_REST_ENDPOINT: url,
            CONFLUENT_ORG_ID: 'org-1',
            CONFLUENT_ENV_ID: 'env-1',
            FLINK_COMPUTE_POOL_ID: 'lfcp-1',
            FLINK_PRINCIPAL_ID: 'sa-1',
            FLINK_CHECK_POLL_MS: '5',
          },
        });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('close', (status: number | null) => resolve({ status, stdout }));
      });
    });
    try {
      const { status, stdout } = await run;
      expect(stdout).toMatch(/adstream-dev-sources-v1-02\s+\|.*\| error\s+\| Invalid watermark expression\./);
      expect(status).toBe(1);
    } finally {
      await new Promise<void>((resolve) => api.server.close(() => resolve()));
    }
  });

  it('prints usage and exits 2 without --env', () => {
    const result = spawnSync(join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx'), ['scripts/flink-check.ts'], {
      cwd: join(__dirname, '..', '..'),
      encoding: 'utf8',
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('usage: npm run flink:check -- --env <env>');
  });
});
