/**
 * The db-migrate Lambda's session on real Postgres: a migration that has to wait for a lock
 * holds the money path behind it for a bounded time only, and a migration statement may run
 * longer than a worker statement is allowed to.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createMigrationPoolProvider, MIGRATION_POOL_OVERRIDES, MigrationRunSummary } from '../../lambdas/db-migrate/run-migrations';
import type { RunOptions } from './support/run-db-migrate';
import { adEventsBatch, clickEvent } from './support/kafka-fixtures';
import { balanceOf, createTestDatabase, REPO_ROOT, seedAdvertiser, seedCampaign, TestDatabase, workerDeps } from './support/test-database';

const PROBE = '9999999999999_probe';

/** db/migrations plus one more migration (`PROBE`) with the given SQL. */
function migrationsWith(upSql: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'adstream-migrations-'));
  cpSync(path.join(REPO_ROOT, 'db/migrations'), dir, { recursive: true });
  writeFileSync(path.join(dir, `${PROBE}.sql`), `-- Up Migration\n${upSql}\n-- Down Migration\n`);
  return dir;
}

let db: TestDatabase;
let dirs: string[] = [];

const run = promisify(execFile);

/** One db-migrate run over db/migrations plus `PROBE` (`upSql`), in its own process (support/run-db-migrate.ts). */
async function migrateWithProbe(
  upSql: string,
  options: Omit<RunOptions, 'url' | 'migrationsDir'> = {},
): Promise<{ summary?: MigrationRunSummary; error?: string }> {
  const migrationsDir = migrationsWith(upSql);
  dirs.push(migrationsDir);
  const args = JSON.stringify({ url: db.url, migrationsDir, ...options } satisfies RunOptions);
  const { stdout } = await run(path.join(REPO_ROOT, 'node_modules/.bin/tsx'), [path.join(__dirname, 'support/run-db-migrate.ts'), args], {
    cwd: REPO_ROOT,
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop() as string);
}

/** Resolves once a session of this database waits for a lock in a statement containing `text`. */
async function waitingOnLock(text: string): Promise<void> {
  for (let i = 0; i < 300; i += 1) {
    const { rows } = await db.pool.query(
      "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND strpos(query, $1) > 0",
      [text],
    );
    if (rows.length > 0) return;
    await sleep(50);
  }
  throw new Error(`no session waited for a lock in "${text}"`);
}

/** A session holding ACCESS SHARE on `advertisers` (a long report, an operator's open psql). */
async function openReader(): Promise<Client> {
  const reader = new Client({ connectionString: db.url });
  await reader.connect();
  await reader.query('BEGIN');
  await reader.query('SELECT count(*) FROM advertisers');
  return reader;
}

async function probeApplied(): Promise<boolean> {
  const { rows } = await db.pool.query('SELECT 1 FROM pgmigrations WHERE name = $1', [PROBE]);
  return rows.length > 0;
}

beforeEach(async () => {
  db = await createTestDatabase();
  await seedAdvertiser(db.pool, 1, '100000');
  await seedCampaign(db.pool, { campaignId: 11, advertiserId: 1, cpc: '120.50' });
});

afterEach(async () => {
  await db.drop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs = [];
});

describe('db-migrate session', () => {
  test('a migration queued behind a long reader holds a charge back at most its lock timeout, then retries and applies', async () => {
    const reader = await openReader();
    const deps = workerDeps({ databaseUrl: db.url, keyPrefix: 'unused:', redisUrl: null });
    try {
      // The ALTER waits for the reader; while it waits, every new lock on advertisers queues behind it.
      const migration = migrateWithProbe('ALTER TABLE advertisers ADD COLUMN lock_probe integer;', {
        lockTimeoutMs: 400,
        lockAttempts: 30,
        lockRetryDelayMs: 100,
      });
      await waitingOnLock('ALTER TABLE advertisers');
      const readerEnds = sleep(4000).then(() => reader.query('COMMIT'));

      const started = performance.now();
      const charge = await createClickBalanceHandler(deps)(adEventsBatch([clickEvent(11, 1)]));
      const chargeMs = performance.now() - started;

      expect(charge).toMatchObject({ charged: 1 });
      expect(await balanceOf(db.pool, 1)).toBe('99879.50');
      // Without a lock timeout the charge waits for the reader (about 4 s), up to the worker's 30 s statement timeout.
      expect(chargeMs).toBeLessThan(1500);

      await readerEnds;
      const { summary, error } = await migration;
      expect(error).toBeUndefined();
      expect(summary?.applied).toEqual([PROBE]);
      expect(summary?.lockTimeouts).toBeGreaterThanOrEqual(1);
      const { rows } = await db.pool.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'advertisers' AND column_name = 'lock_probe'");
      expect(rows).toHaveLength(1);
    } finally {
      await reader.end().catch(() => undefined);
      await deps.close();
    }
  });

  test('a migration that never gets its lock fails the deploy after its attempts, naming the wait, with nothing applied', async () => {
    const reader = await openReader();
    try {
      const migration = migrateWithProbe('ALTER TABLE advertisers ADD COLUMN lock_probe integer;', {
        lockTimeoutMs: 200,
        lockAttempts: 3,
        lockRetryDelayMs: 50,
      });
      const outcome = await Promise.race([migration, sleep(8000).then(() => ({ error: 'still waiting after 8 s' }))]);
      expect(outcome.error).toMatch(/3 attempts.*200 ms.*lock/);
      expect(await probeApplied()).toBe(false);
    } finally {
      await reader.query('COMMIT').catch(() => undefined);
      await reader.end().catch(() => undefined);
    }
    const { rows } = await db.pool.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'advertisers' AND column_name = 'lock_probe'");
    expect(rows).toHaveLength(0);
  });

  test('a migration statement may run longer than the statement timeout of the pool it connects with', async () => {
    // The workers' pool cuts every statement at 30 s; a data migration on a production-size table runs longer.
    const { summary, error } = await migrateWithProbe('SELECT pg_sleep(1);', { workerStatementTimeoutMs: 300 });
    expect(error).toBeUndefined();
    expect(summary?.applied).toEqual([PROBE]);
  });

  test("the Lambda's pool sets neither a client-side query timeout nor a statement timeout", async () => {
    const provider = createMigrationPoolProvider({ kind: 'url', url: db.url });
    const pool = await provider();
    try {
      expect(pool.options).toMatchObject(MIGRATION_POOL_OVERRIDES);
      expect(MIGRATION_POOL_OVERRIDES).toEqual({ query_timeout: 0, statement_timeout: 0 });
      const { rows } = await pool.query("SELECT current_setting('statement_timeout') AS value");
      expect(rows[0].value).toBe('0');
    } finally {
      await pool.end();
    }
  });
});
