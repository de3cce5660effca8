/**
 * `npm run bench -- --json` end to end on a small sample: the real click-balance handler and the
 * naive baseline run against local Postgres and Redis, and the last line is the machine-readable
 * result. Timings are not asserted (they belong in lambdas/PERFORMANCE.md); the shape and the
 * direction of the comparison are.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '../..');

interface RunResult {
  readonly batchSize: number;
  readonly partitions: number;
  readonly batches: number;
  readonly clicks: number;
  readonly clicksPerSecond: number;
  readonly p50BatchMs: number;
  readonly p99BatchMs: number;
  readonly dbRoundTripsPerBatch: number;
}

interface BenchJson {
  readonly clicksPerSecond: number;
  readonly p99BatchMs: number;
  readonly speedup: number;
  readonly p50BatchMs: number;
  readonly floorMs: number;
  readonly floorRatio: number;
  readonly historyRatio: number | null;
  readonly statement: {
    readonly p50BatchMs: number;
    readonly floorRatio: number;
    readonly backendCpuMs: number | null;
    readonly floorBackendCpuMs: number | null;
    readonly handlerBackendCpuMs: number | null;
  };
  readonly history: { readonly rows: number; readonly days: number; readonly run: RunResult } | null;
  readonly dbRoundTripsPerBatch: number;
  readonly clicks: number;
  readonly baselineClicks: number;
  readonly pausedCampaigns: number;
  readonly handler: Record<string, RunResult>;
  readonly baseline: RunResult;
}

async function benchDatabases(): Promise<string[]> {
  const admin = new Client({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'adstream_bench_%'`);
    return rows.map((r) => r.datname);
  } finally {
    await admin.end();
  }
}

test('npm run bench -- --json prints one JSON object on its last line, with the handler faster than the baseline', async () => {
  const before = await benchDatabases();
  const { stdout } = await run(
    process.execPath,
    [
      path.join(REPO_ROOT, 'node_modules/tsx/dist/cli.mjs'),
      'scripts/bench.ts',
      '--clicks',
      '3000',
      '--baseline-clicks',
      '600',
      '--warmup-batches',
      '2',
      '--partitions',
      '1,2',
      '--history',
      '--history-rows',
      '3000',
      '--history-days',
      '3',
      '--json',
    ],
    { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 },
  );

  const lines = stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1]) as BenchJson;
  expect(result).toEqual(
    expect.objectContaining({
      clicksPerSecond: expect.any(Number),
      p99BatchMs: expect.any(Number),
      speedup: expect.any(Number),
      dbRoundTripsPerBatch: expect.any(Number),
      clicks: 3000,
      baselineClicks: 600,
    }),
  );
  expect(Object.keys(result.handler).sort()).toEqual(['batch100', 'batch100x2', 'batch500', 'batch500x2']);
  expect(result.handler.batch100).toMatchObject({ batchSize: 100, partitions: 1, clicks: 3000, batches: 30 });
  expect(result.handler.batch100x2).toMatchObject({ batchSize: 100, partitions: 2, clicks: 3000, batches: 30 });
  expect(result.handler.batch500).toMatchObject({ batchSize: 500, partitions: 1, clicks: 3000, batches: 6 });
  expect(result.clicksPerSecond).toBe(result.handler.batch100.clicksPerSecond);
  expect(result.p99BatchMs).toBe(result.handler.batch100.p99BatchMs);
  expect(result.p99BatchMs).toBeGreaterThanOrEqual(result.handler.batch100.p50BatchMs);
  expect(result.baseline).toMatchObject({ batchSize: 100, clicks: 600 });
  // The baseline's SQL per click is UPDATE + INSERT (its GET goes to Redis): 200 per 100 clicks.
  expect(result.baseline.dbRoundTripsPerBatch).toBe(200);
  // The point of batching: a constant handful of round trips per batch, not one per click.
  expect(result.dbRoundTripsPerBatch).toBeLessThanOrEqual(10);
  expect(result.speedup).toBeGreaterThan(1);
  expect(result.pausedCampaigns).toBe(0);
  // The floor ran in the same run, and the handler is reported as a ratio of it.
  expect(result.floorMs).toBeGreaterThan(0);
  expect(result.floorRatio).toBeCloseTo(result.p50BatchMs / result.floorMs, 1);
  // The charge statement alone ran interleaved with both (its charges are in the ledger check):
  // its ratio to the same floor, and, the server being local, the backend CPU of all three.
  expect(result.statement.p50BatchMs).toBeGreaterThan(0);
  expect(result.statement.floorRatio).toBeCloseTo(result.statement.p50BatchMs / result.floorMs, 1);
  expect(result.statement.backendCpuMs).toBeGreaterThan(0);
  expect(result.statement.handlerBackendCpuMs).toBeGreaterThan(0);
  expect(result.statement.floorBackendCpuMs).toEqual(expect.any(Number));
  expect(stdout).toMatch(/the charge statement alone \(SELECT adstream_charge_clicks/);
  // --history loaded its rows into past days and ran batches of 100 over them.
  expect(result.history).toMatchObject({ rows: 3000, days: 3, run: { batchSize: 100, clicks: 3000, batches: 30 } });
  expect(result.historyRatio).toBeCloseTo((result.history?.run.clicksPerSecond ?? 0) / result.clicksPerSecond, 1);
  expect(stdout).toMatch(/floor \(BEGIN, one INSERT … SELECT FROM unnest/);
  // The human-readable table comes first.
  expect(stdout).toMatch(/\| handler, batch 100, 1 partition +\|/);
  // The run cleaned up its own database.
  expect((await benchDatabases()).filter((name) => !before.includes(name))).toEqual([]);
});

test('npm run bench -- --help lists every flag, --history among them', async () => {
  const { stdout } = await run(process.execPath, [path.join(REPO_ROOT, 'node_modules/tsx/dist/cli.mjs'), 'scripts/bench.ts', '--help'], { cwd: REPO_ROOT });
  for (const flag of ['--clicks', '--baseline-clicks', '--batch-sizes', '--partitions', '--json', '--profile', '--history', '--history-rows', '--history-days'])
    expect(stdout).toContain(flag);
});

test('without --history the JSON says historyRatio null', async () => {
  const { stdout } = await run(
    process.execPath,
    [
      path.join(REPO_ROOT, 'node_modules/tsx/dist/cli.mjs'),
      'scripts/bench.ts',
      '--clicks',
      '500',
      '--baseline-clicks',
      '200',
      '--warmup-batches',
      '1',
      '--partitions',
      '1',
      '--batch-sizes',
      '100',
      '--json',
    ],
    { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  const lines = stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1]) as BenchJson;
  expect(result).toMatchObject({ historyRatio: null, history: null });
  expect(result.floorRatio).toEqual(expect.any(Number));
});
