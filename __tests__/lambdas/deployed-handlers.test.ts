import { execFile } from 'node:child_process';
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
      expect(first.applied).toEqual([
        '1763700000000_money-path',
        '1764500000000_function-roles',
        '1764600000000_money-defects',
        '1764700000000_ledger-entries',
        '1764800000000_partitioned-ledger',
        '1764920000000_charge-functions',
      ]);
      expect(second.applied).toEqual([]);
      expect(await countRows(db.pool, 'pgmigrations')).toBe(6);
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

  test('a handler module fails at load when the environment is incomplete', async () => {
    await expect(invoke('handlers', {})).rejects.toMatchObject({ stderr: expect.stringMatching(/ConfigError: DATABASE_URL: is not set/) });
  });
});
