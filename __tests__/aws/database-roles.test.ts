/**
 * GIVEN the migrations (db/migrations), which create one database role per worker function
 * WHEN each deployed handler runs against real Postgres as its own role, on a batch that
 * exercises every write it makes (charges, refunds, day spend, pauses and resumes, outbox,
 * dead letters)
 * THEN it succeeds with only its grants, AND each role is refused what it does not need.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { readFileSync } from 'node:fs';
import { FUNCTION_DATABASE_ROLES } from '../../constructs/aws/postgres-database';
import { applyRolePasswords, parseRoleSecretArns } from '../../lambdas/db-migrate/role-passwords';
import { cleanKeyspace, countRows, createTestDatabase, REPO_ROOT, TEST_REDIS_URL, testKeyPrefix, type TestDatabase } from '../lambdas/support/test-database';

const run = promisify(execFile);
const TSX = path.join(REPO_ROOT, 'node_modules/.bin/tsx');
const SCRIPT = path.join(__dirname, 'support/invoke-as-role.ts');

/** Function → its database role (the workers stack gives each function its role's secret). */
const ROLES = {
  'click-balance': 'adstream_click_balance',
  compensation: 'adstream_compensation',
  'budget-reset': 'adstream_budget_reset',
  'outbox-sweep': 'adstream_outbox_sweep',
  'ranking-cache': 'adstream_ranking_cache',
  reconcile: 'adstream_reconcile',
} as const;

/** Every table the migrations create; a new one fails this test until its grants are decided. */
const TABLES = [
  'ad_balance_histories',
  // Definitions a migration replaced, for its down migration: no function role may read it.
  'adstream_replaced_functions',
  'advertisers',
  // The budget days budget-reset opened: it inserts, click-balance reads.
  'budget_days_opened',
  'campaign_daily_spend',
  'campaigns',
  'click_voids',
  'dead_letters',
  'duplicate_clicks',
  'ledger_entry_refs',
  // The nets of expired ledger days: adstream_maintain_history() (owner) inserts, reconcile reads.
  'ledger_expired_totals',
  'outbox',
  'outbox_publishers',
  'pgmigrations',
];

let db: TestDatabase;
const prefix = testKeyPrefix();
const clickTs = Date.now();

function urlAs(role: string): string {
  const url = new URL(db.url);
  url.username = role;
  url.password = '';
  return url.toString();
}

async function invokeAs(handler: keyof typeof ROLES): Promise<Record<string, unknown>> {
  const { stdout } = await run(TSX, [SCRIPT, handler], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      POWERTOOLS_METRICS_DISABLED: 'true',
      DATABASE_URL: urlAs(ROLES[handler]),
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      CLICK_TS: String(clickTs),
    },
    timeout: 60_000,
  });
  const line = stdout.split('\n').find((l) => l.startsWith('{') && !l.includes('"level"'));
  return JSON.parse(line ?? '{}') as Record<string, unknown>;
}

async function asRole<T>(role: string, sql: string): Promise<T> {
  const client = new Client({ connectionString: urlAs(role) });
  await client.connect();
  try {
    return (await client.query(sql)) as T;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query("INSERT INTO advertisers (advertiser_id, balance) VALUES (1, '1000')");
  await db.pool.query("INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget) VALUES (11, 1, '100', '200')");
});

afterAll(async () => {
  await cleanKeyspace(prefix);
  await db.drop();
});

describe('one database role per function', () => {
  test('click-balance charges, pauses at the budget and dead-letters as adstream_click_balance', async () => {
    const summary = await invokeAs('click-balance');
    // Budget 200 at CPC 100: the third click exhausts it and pauses the campaign (an outbox row).
    expect(summary).toMatchObject({ handler: 'click-balance', charged: 3, deadLettered: 1 });
    expect(await countRows(db.pool, 'ad_balance_histories')).toBe(3);
    expect(await countRows(db.pool, 'outbox')).toBeGreaterThan(0);
  });

  test('compensation refunds and dead-letters as adstream_compensation', async () => {
    expect(await invokeAs('compensation')).toMatchObject({ handler: 'compensation', refunded: 1, deadLettered: 1 });
    expect(await countRows(db.pool, 'ad_balance_histories', "type = 'REFUND'")).toBe(1);
  });

  test('budget-reset resumes the paused campaign as adstream_budget_reset', async () => {
    // The campaign was exhausted by the clicks above, today; a reset resumes only a campaign whose
    // spend on the current budget day is under budget, so date that spend back to yesterday.
    await db.pool.query(`UPDATE campaign_daily_spend SET spend_date = spend_date - 1`);
    expect(await invokeAs('budget-reset')).toMatchObject({ handler: 'budget-reset', resumed: 1 });
  });

  test('outbox-sweep drains as adstream_outbox_sweep', async () => {
    expect(await invokeAs('outbox-sweep')).toMatchObject({ handler: 'outbox-sweep' });
  });

  test('ranking-cache only records what it cannot apply, as adstream_ranking_cache', async () => {
    expect(await invokeAs('ranking-cache')).toMatchObject({ handler: 'ranking-cache', deadLettered: 1 });
    expect(await countRows(db.pool, 'dead_letters', "handler = 'ranking-cache'")).toBe(1);
  });

  test('reconcile checks the whole ledger as adstream_reconcile', async () => {
    expect(await invokeAs('reconcile')).toMatchObject({ checks: { balance: expect.anything(), outboxUnpublished: expect.anything() } });
  });

  test.each([
    ['adstream_reconcile', "UPDATE advertisers SET balance = '0'"],
    ['adstream_reconcile', "INSERT INTO ledger_entry_refs (external_ref, advertiser_id, type, amount, event_id) VALUES ('x', 1, 'TOPUP', 1, 'x')"],
    ['adstream_click_balance', 'SELECT * FROM ledger_entry_refs'],
    ['adstream_ranking_cache', 'SELECT balance FROM advertisers'],
    ['adstream_outbox_sweep', "UPDATE advertisers SET balance = '0'"],
    ['adstream_outbox_sweep', 'SELECT * FROM ad_balance_histories'],
    ['adstream_budget_reset', "UPDATE advertisers SET balance = '0'"],
    ['adstream_click_balance', 'DELETE FROM ad_balance_histories'],
    ['adstream_click_balance', "INSERT INTO budget_days_opened (budget_day) VALUES ('2030-01-01')"],
    ['adstream_compensation', "SELECT adstream_open_budget_day('2030-01-01')"],
    ['adstream_compensation', 'TRUNCATE duplicate_clicks'],
    ['adstream_click_balance', 'CREATE TABLE sneaky (id int)'],
    ['adstream_compensation', 'DROP TABLE outbox'],
  ])('%s is refused: %s', async (role, sql) => {
    await expect(asRole(role, sql)).rejects.toThrow(/permission denied|must be owner/);
  });

  test('the roles the migration creates are exactly the ones the workers stack connects as', async () => {
    expect(Object.values(ROLES).sort()).toEqual(Object.values(FUNCTION_DATABASE_ROLES).sort());
    const migrations = ['1764500000000_function-roles.sql', '1764700000000_ledger-entries.sql']
      .map((file) => readFileSync(path.join(REPO_ROOT, 'db/migrations', file), 'utf8'))
      .join('\n');
    for (const role of Object.values(FUNCTION_DATABASE_ROLES)) expect(migrations).toMatch(new RegExp(`'${role}'|ROLE ${role} `));
    const { rows } = await db.pool.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname LIKE 'adstream\\_%' ORDER BY rolname");
    expect(rows.map((r) => r.rolname)).toEqual(expect.arrayContaining(Object.values(FUNCTION_DATABASE_ROLES)));
  });

  test('db-migrate lets each role log in with the password from its secret, and refuses unknown roles', async () => {
    const client = await db.pool.connect();
    try {
      const role = FUNCTION_DATABASE_ROLES.rankingCache;
      expect(await applyRolePasswords(client, [{ username: role, password: "pa'ss-word" }])).toEqual([role]);
      const { rows } = await client.query<{ rolcanlogin: boolean; has_password: boolean }>(
        'SELECT rolcanlogin, rolpassword IS NOT NULL AS has_password FROM pg_authid WHERE rolname = $1',
        [role],
      );
      expect(rows[0]).toEqual({ rolcanlogin: true, has_password: true });
      await expect(applyRolePasswords(client, [{ username: 'postgres', password: 'x' }])).rejects.toThrow(/not a function role/);
      await expect(applyRolePasswords(client, [{ username: 'adstream_nobody', password: 'x' }])).rejects.toThrow(/does not exist; the migrations create/);
    } finally {
      client.release();
    }
    expect(parseRoleSecretArns({})).toEqual([]);
    expect(() => parseRoleSecretArns({ DATABASE_ROLE_SECRET_ARNS: 'arn:aws:secretsmanager:ap-northeast-2:111111111111:secret:a-1,nope' })).toThrow(
      /1 entry is not/,
    );
  });

  test('every table has its grants decided (a new table must say who may touch it)', async () => {
    // Partitions are reached through their parent, whose grants apply; none has grants of its own.
    const { rows } = await db.pool.query<{ table_name: string }>(
      `SELECT c.relname AS table_name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`,
    );
    expect(rows.map((r) => r.table_name)).toEqual(TABLES);
    const partitionGrants = await db.pool.query(
      `SELECT c.relname, g.grantee FROM pg_class c JOIN information_schema.role_table_grants g ON g.table_name = c.relname
        WHERE c.relispartition AND g.grantee LIKE 'adstream\\_%'`,
    );
    expect(partitionGrants.rows).toEqual([]);
    const migrationOnly = await db.pool.query(
      `SELECT grantee FROM information_schema.role_table_grants WHERE table_name = 'adstream_replaced_functions' AND grantee LIKE 'adstream\\_%'`,
    );
    expect(migrationOnly.rows).toEqual([]);
  });

  test('the day-partitioned ledger keeps the grants of the old one: click-balance inserts, reads, and cannot delete', async () => {
    const { rows } = await db.pool.query<{ relkind: string }>("SELECT relkind FROM pg_class WHERE relname = 'ad_balance_histories'");
    expect(rows).toEqual([{ relkind: 'p' }]);
    await expect(asRole('adstream_click_balance', 'SELECT count(*) FROM ad_balance_histories')).resolves.toBeDefined();
    await expect(asRole('adstream_click_balance', 'DELETE FROM ad_balance_histories_default')).rejects.toThrow(/permission denied/);
    await expect(asRole('adstream_click_balance', "SELECT * FROM adstream_maintain_history(current_date, 7, 400, 'drop')")).rejects.toThrow(
      /permission denied/,
    );
    await expect(
      asRole('adstream_click_balance', "SELECT * FROM adstream_maintain_history(current_date, 7, 400, 'drop', 'ad_balance_histories')"),
    ).rejects.toThrow(/permission denied/);
    await expect(asRole('adstream_budget_reset', "SELECT * FROM adstream_maintain_history(current_date, 7, 400, 'drop', 'advertisers')")).rejects.toThrow(
      /advertisers is not a history table/,
    );
  });
});
