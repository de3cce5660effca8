/**
 * `npm run flink:check` takes its key and ids from the streaming stack's outputs, under the
 * names the streaming stack gives them (FLINK_CONNECTION_OUTPUTS): nothing is exported by hand.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { settingsFromOutputs, type StackOutputs } from '../../scripts/flink-check';
import { FLINK_CONNECTION_OUTPUTS } from '../../stacks/streaming-stack';

const REPO_ROOT = resolve(__dirname, '../..');
const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');

function outputs(restEndpoint: string): StackOutputs {
  const o = FLINK_CONNECTION_OUTPUTS;
  return {
    [o.organizationId]: { value: 'org-1' },
    [o.environmentId]: { value: 'env-abc123' },
    [o.catalogName]: { value: 'adstream-dev' },
    [o.databaseName]: { value: 'adstream-dev' },
    [o.computePoolId]: { value: 'lfcp-abc123' },
    [o.restEndpoint]: { value: restEndpoint },
    [o.principalId]: { value: 'sa-runner1' },
    [o.apiKey]: { value: 'KEY123' },
    [o.apiSecret]: { value: 'not-a-real-secret', sensitive: true },
    kafka_bootstrap_servers: { value: 'pkc-abc12.ap-northeast-2.aws.confluent.cloud:9092' },
  };
}

function runCheck(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    // No FLINK_* variables at all: everything must come from the outputs file.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(FLINK_|CONFLUENT_)/.test(key)));
    const child = spawn(TSX, ['scripts/flink-check.ts', ...args], { cwd: REPO_ROOT, env: { ...env, FLINK_CHECK_POLL_MS: '5' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'adstream-flink-outputs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('flink:check settings from the streaming outputs', () => {
  test('maps every output to its setting', () => {
    const target = settingsFromOutputs(outputs('https://flink.ap-northeast-2.aws.confluent.cloud/'), 'adstream-dev-streaming');
    expect(target).toEqual({
      settings: {
        apiKey: 'KEY123',
        apiSecret: 'not-a-real-secret',
        restEndpoint: 'https://flink.ap-northeast-2.aws.confluent.cloud',
        organizationId: 'org-1',
        environmentId: 'env-abc123',
        computePoolId: 'lfcp-abc123',
        principalId: 'sa-runner1',
      },
      catalogName: 'adstream-dev',
      databaseName: 'adstream-dev',
    });
  });

  test('names every missing output and says to deploy streaming first', () => {
    const partial = { ...outputs('https://x.example') };
    delete (partial as Record<string, unknown>)[FLINK_CONNECTION_OUTPUTS.principalId];
    delete (partial as Record<string, unknown>)[FLINK_CONNECTION_OUTPUTS.apiSecret];
    expect(() => settingsFromOutputs(partial, 'adstream-dev-streaming')).toThrow(
      'The outputs of adstream-dev-streaming lack flink_principal_id, flink_api_secret: deploy the streaming stack first (npm run deploy -- --env <env> --stacks streaming).',
    );
  });

  test('the CLI dry-runs every statement with only an outputs file, never printing the secret', async () => {
    const seen: string[] = [];
    const server: Server = createServer((req, res) => {
      seen.push(`${req.method} ${req.headers.authorization ?? ''}`);
      req.resume();
      req.on('end', () => {
        res.setHeader('Content-Type', 'application/json');
        if (req.method === 'DELETE') {
          res.statusCode = 202;
          res.end();
          return;
        }
        res.end(JSON.stringify({ status: { phase: 'COMPLETED', detail: '' } }));
      });
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    try {
      const file = join(dir, 'streaming-outputs.json');
      writeFileSync(file, JSON.stringify(outputs(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
      const { status, stdout, stderr } = await runCheck(['--env', 'dev', '--outputs-file', file]);
      expect(stderr).toBe('');
      expect(status).toBe(0);
      expect(stdout).toMatch(/\d+ accepted, 0 accepted pending our own DDL, 0 rejected\./);
      expect(stdout).not.toContain('not-a-real-secret');
      expect(seen.filter((s) => s.startsWith('POST')).every((s) => s.endsWith(Buffer.from('KEY123:not-a-real-secret').toString('base64')))).toBe(true);
    } finally {
      await new Promise<void>((closed) => server.close(() => closed()));
    }
  });

  test('incomplete outputs exit 1 with the message and no stack trace', async () => {
    const file = join(dir, 'streaming-outputs.json');
    writeFileSync(file, JSON.stringify({ kafka_bootstrap_servers: { value: 'x:9092' } }));
    const { status, stderr } = await runCheck(['--env', 'dev', '--outputs-file', file]);
    expect(status).toBe(1);
    expect(stderr).toMatch(/^The outputs of adstream-dev-streaming lack confluent_organization_id, /);
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  test('--help prints the usage and exits 0', async () => {
    const { status, stdout } = await runCheck(['--help']);
    expect(status).toBe(0);
    expect(stdout).toMatch(/^usage: npm run flink:check -- --env <env> \[--outputs-file <file>\]/);
  });
});
