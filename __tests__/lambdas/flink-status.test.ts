import { createServer, IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createFlinkStatusHandler,
  FLINK_STATUS_METRICS,
  FlinkStatusSettings,
  parseStatementNames,
  parseStatusSecret,
} from '../../lambdas/flink-status/check-statements';
import { createObservability } from '../../lambdas/shared/observability';

/**
 * A local stand-in for the statements endpoint of the Confluent Cloud Flink SQL REST API
 * (GET /sql/v1/organizations/{org}/environments/{env}/statements/{name}, Basic auth with
 * the Flink API key), on a free port.
 */
function fakeFlinkApi(phases: Record<string, string>) {
  const requests: Array<{ path: string; authorization?: string }> = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    const match = /^\/sql\/v1\/organizations\/org-1\/environments\/env-1\/statements\/([^/]+)$/.exec(req.url ?? '');
    if (req.method !== 'GET' || !match) return void res.writeHead(400).end();
    if (req.headers.authorization !== `Basic ${Buffer.from('key:secret').toString('base64')}`)
      return void res.writeHead(401).end('{"errors":[{"detail":"bad key"}]}');
    const phase = phases[decodeURIComponent(match[1])];
    if (phase === undefined) return void res.writeHead(404).end('{"errors":[{"detail":"not found"}]}');
    res
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(JSON.stringify({ name: match[1], status: { phase, detail: phase === 'RUNNING' ? '' : `statement is ${phase}` } }));
  });
  return {
    requests,
    async start(): Promise<string> {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** EMF lines the handler printed, parsed. */
function captureEmf() {
  const lines: Array<Record<string, unknown>> = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    for (const line of String(chunk).split('\n')) {
      if (line.includes('"_aws"')) lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    return true;
  });
  return { lines, restore: () => spy.mockRestore() };
}

const STATEMENTS = ['adstream-dev-duplicate-clicks-v1-insert', 'adstream-dev-rtb-ranking-v1-insert', 'adstream-dev-attribution-v1-insert'];

describe('flink-status', () => {
  const api = fakeFlinkApi({ [STATEMENTS[0]]: 'FAILED', [STATEMENTS[1]]: 'RUNNING' });
  let settings: FlinkStatusSettings;
  beforeAll(async () => {
    settings = { restEndpoint: await api.start(), organizationId: 'org-1', environmentId: 'env-1', apiKey: 'key', apiSecret: 'secret' };
  });
  afterAll(() => api.stop());

  function handlerWith(overrides: Partial<FlinkStatusSettings> = {}, statements = STATEMENTS) {
    process.env.POWERTOOLS_DEV = 'false';
    return createFlinkStatusHandler({ statements, settings: async () => ({ ...settings, ...overrides }), observability: createObservability('flink-status') });
  }

  test("reports each statement's phase: RUNNING, FAILED, and a deleted one as MISSING", async () => {
    const emf = captureEmf();
    try {
      const report = await handlerWith()();
      expect(report.statements.map((s) => [s.statement, s.phase])).toEqual([
        [STATEMENTS[0], 'FAILED'],
        [STATEMENTS[1], 'RUNNING'],
        [STATEMENTS[2], 'MISSING'],
      ]);
      expect(report).toMatchObject({ notRunning: 2, unknown: 0 });
      const running = emf.lines.filter((l) => FLINK_STATUS_METRICS.running in l).map((l) => [l.statement, l[FLINK_STATUS_METRICS.running]]);
      expect(running).toEqual([
        [STATEMENTS[0], 0],
        [STATEMENTS[1], 1],
        [STATEMENTS[2], 0],
      ]);
      const total = emf.lines.find((l) => FLINK_STATUS_METRICS.notRunning in l)!;
      expect(total[FLINK_STATUS_METRICS.notRunning]).toBe(2);
      expect(total.service).toBe('flink-status');
      expect(JSON.stringify(total._aws)).toContain('"Namespace":"adstream"');
    } finally {
      emf.restore();
    }
    expect(api.requests[0].path).toBe(`/sql/v1/organizations/org-1/environments/env-1/statements/${STATEMENTS[0]}`);
  });

  test('a rejected API key reports no data point (the alarm reads silence as "cannot check"), never "running"', async () => {
    const emf = captureEmf();
    try {
      const report = await handlerWith({ apiSecret: 'wrong' })();
      expect(report).toMatchObject({ notRunning: 0, unknown: 3 });
      expect(report.statements[0].detail).toBe('HTTP 401 from the Flink REST API');
      expect(emf.lines.filter((l) => FLINK_STATUS_METRICS.running in l || FLINK_STATUS_METRICS.notRunning in l)).toEqual([]);
    } finally {
      emf.restore();
    }
  });

  test('an unreachable API and unreadable credentials are "cannot check", not a crash', async () => {
    // A port that was free a moment ago and is closed now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const unreachable = await handlerWith({ restEndpoint: `http://127.0.0.1:${closedPort}` })();
    expect(unreachable.unknown).toBe(3);
    expect(unreachable.statements[0].detail).toMatch(new RegExp(`^request to http://127\\.0\\.0\\.1:${closedPort} failed`));
    const noSecret = await createFlinkStatusHandler({
      statements: STATEMENTS,
      settings: async () => {
        throw new Error('AccessDenied');
      },
      observability: createObservability('flink-status'),
    })();
    expect(noSecret).toMatchObject({ unknown: 3, notRunning: 0 });
  });

  test('all running: one count of zero', async () => {
    const report = await handlerWith({}, [STATEMENTS[1]])();
    expect(report).toMatchObject({ notRunning: 0, unknown: 0 });
  });
});

describe('flink-status settings', () => {
  const arn = 'arn:aws:secretsmanager:ap-northeast-2:111111111111:secret:adstream/dev/flink/status-reader';
  test('parses the status secret and trims the endpoint', () => {
    const raw = JSON.stringify({
      rest_endpoint: 'https://flink.ap-northeast-2.aws.confluent.cloud/',
      organization_id: 'o',
      environment_id: 'env-1',
      api_key: 'k',
      api_secret: 's',
    });
    expect(parseStatusSecret(arn, raw)).toEqual({
      restEndpoint: 'https://flink.ap-northeast-2.aws.confluent.cloud',
      organizationId: 'o',
      environmentId: 'env-1',
      apiKey: 'k',
      apiSecret: 's',
    });
  });
  test('fails when keys are missing, naming them and not the values', () => {
    expect(() => parseStatusSecret(arn, JSON.stringify({ api_key: 'k', api_secret: 'topsecret' }))).toThrow(
      /lacks rest_endpoint, organization_id, environment_id/,
    );
    expect(() => parseStatusSecret(arn, 'topsecret')).toThrow(/is not JSON/);
    try {
      parseStatusSecret(arn, JSON.stringify({ api_secret: 'topsecret' }));
    } catch (error) {
      expect(String(error)).not.toContain('topsecret');
    }
  });
  test('fails when the endpoint is not a URL', () => {
    expect(() =>
      parseStatusSecret(arn, JSON.stringify({ rest_endpoint: 'flink.example', organization_id: 'o', environment_id: 'e', api_key: 'k', api_secret: 's' })),
    ).toThrow(/not a URL/);
  });
  test('fails when no statement is named', () => {
    expect(() => parseStatementNames(' , ')).toThrow(/FLINK_STATEMENTS/);
    expect(parseStatementNames('a, b')).toEqual(['a', 'b']);
  });
});
