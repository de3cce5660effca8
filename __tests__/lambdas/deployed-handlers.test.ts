import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { balanceOf, cleanKeyspace, countRows, createTestDatabase, migrate, REPO_ROOT, TEST_REDIS_URL, testKeyPrefix } from './support/test-database';

const run = promisify(execFile);
const SCRIPT = path.join(__dirname, 'support/invoke-deployed-handlers.ts');
const TSX = path.join(REPO_ROOT, 'node_modules/.bin/tsx');

function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{') && !line.includes('"level"'))
    .map((line) => JSON.parse(line));
}

async function invoke(step: string, env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  return run(TSX, [SCRIPT, step], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true', ...env },
    timeout: 60_000,
  });
}

describe('deployed entry points', () => {
  test('the db-migrate Lambda applies the migrations once and agrees with npm run db:migrate', async () => {
    const db = await createTestDatabase({ migrate: false });
    try {
      const { stdout } = await invoke('migrate', { DATABASE_URL: db.url });
      const [first, second] = jsonLines(stdout);
      // Every migration of db/migrations, in timestamp order, once.
      const migrations = readdirSync(path.join(REPO_ROOT, 'db/migrations'))
        .filter((f) => f.endsWith('.sql'))
        .sort()
        .map((f) => f.replace(/\.sql$/, ''));
      expect(migrations.slice(0, 5)).toEqual([
        '1763700000000_money-path',
        '1764500000000_function-roles',
        '1764600000000_money-defects',
        '1764700000000_ledger-entries',
        '1764800000000_partitioned-ledger',
      ]);
      expect(first.applied).toEqual(migrations);
      expect(second.applied).toEqual([]);
      expect(await countRows(db.pool, 'pgmigrations')).toBe(migrations.length);
      expect(await migrate(db.url)).toMatch(/No migrations to run/);
    } finally {
      await db.drop();
    }
  });

  test('each handler module parses its environment at load and works against its database', async () => {
    const db = await createTestDatabase();
    const prefix = testKeyPrefix();
    try {
      const { stdout } = await invoke('handlers', { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix });
      const [clicks, compensation, reset, sweep] = jsonLines(stdout);
      expect(clicks).toMatchObject({ handler: 'click-balance', charged: 2, outboxWritten: 2 });
      expect(compensation).toMatchObject({ handler: 'compensation', refunded: 1 });
      expect(reset).toMatchObject({ handler: 'budget-reset', resumed: 1 });
      expect(sweep).toMatchObject({ handler: 'outbox-sweep', outboxPublished: 0 });
      expect(await balanceOf(db.pool, 1)).toBe('900');
      // No SNS topic or Kafka producer configured: the rows wait, unpublished.
      expect(await countRows(db.pool, 'outbox', 'published_at IS NULL')).toBe(3);
    } finally {
      await cleanKeyspace(prefix);
      await db.drop();
    }
  });

  test('each handler module logs its summary with the Lambda request id, and the Kafka consumers with the batch coordinates', async () => {
    const db = await createTestDatabase();
    const prefix = testKeyPrefix();
    try {
      const { stdout } = await invoke('handlers', { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, POWERTOOLS_LOG_LEVEL: 'INFO' });
      const summaries = stdout
        .split('\n')
        .filter((line) => line.includes('"invocation summary"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(summaries.map((line) => [line.service, line.function_request_id, line.function_name])).toEqual([
        ['click-balance', 'req-clicks', 'adstream-test-click-balance'],
        ['compensation', 'req-refund', 'adstream-test-compensation'],
        ['budget-reset', 'req-reset', 'adstream-test-budget-reset'],
        ['outbox-sweep', 'req-sweep', 'adstream-test-outbox-sweep'],
      ]);
      expect(summaries[0]).toMatchObject({ kafka: [{ topic: 'ad-events', partition: 2, firstOffset: 40, lastOffset: 41 }], summary: { chargedAmount: '200' } });
      expect(summaries[1]).toMatchObject({ kafka: [{ topic: 'compensation-events', partition: 0 }], summary: { refundedAmount: '100' } });
      expect(summaries[2]).not.toHaveProperty('kafka');
    } finally {
      await cleanKeyspace(prefix);
      await db.drop();
    }
  });

  test('a handler module fails at load when the environment is incomplete', async () => {
    await expect(invoke('handlers', {})).rejects.toMatchObject({ stderr: expect.stringMatching(/ConfigError: DATABASE_URL: is not set/) });
  });
});
