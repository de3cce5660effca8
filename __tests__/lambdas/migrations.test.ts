/**
 * Migrations apply to a database that already holds data: the released schema is migrated and
 * filled the way the old workers left it, then the later migrations run over it.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { reconcileLedger } from '../../lambdas/reconcile/reconcile-ledger';
import { budgetDayOf, createTestDatabase, migrate, REPO_ROOT, TestDatabase, workerDeps } from './support/test-database';

const run = promisify(execFile);

/** How many migrations run from `name` on (itself included): what `down N` rolls back to just before it. */
function migrationsFrom(name: string): number {
  return readdirSync(path.join(REPO_ROOT, 'db/migrations')).filter((file) => file.endsWith('.sql') && file >= name).length;
}

/** Runs node-pg-migrate `direction count` on the database at `url`. */
async function migrateSteps(url: string, direction: 'up' | 'down', count: number): Promise<void> {
  const bin = path.join(REPO_ROOT, 'node_modules/node-pg-migrate/bin/node-pg-migrate.js');
  await run(process.execPath, [bin, direction, String(count), '--migrations-dir', 'db/migrations', '--use-glob=false', '--migration-file-language', 'sql'], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: url },
  });
}

async function migrateFirstOnly(url: string, count = 1): Promise<void> {
  await migrateSteps(url, 'up', count);
}

/** How many migrations sort before `name`: migrating up that many stops just before it. */
function migrationsBefore(name: string): number {
  return readdirSync(path.join(REPO_ROOT, 'db/migrations')).filter((file) => file.endsWith('.sql') && file < name).length;
}

let db: TestDatabase;
let ledgerDb: TestDatabase;
let historyDb: TestDatabase;
let queuesDb: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  ledgerDb = await createTestDatabase({ migrate: false });
  historyDb = await createTestDatabase({ migrate: false });
  queuesDb = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await db.drop();
  await ledgerDb.drop();
  await historyDb.drop();
  await queuesDb.drop();
});

describe('migrations', () => {
  test('the money-defects migration applies to a database holding the released schema and its data', async () => {
    await migrateFirstOnly(db.url);
    await db.pool.query(`
      INSERT INTO advertisers (advertiser_id, balance) VALUES (1, 1000);
      INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget, status, paused_reason)
        VALUES (11, 1, 100.0000000, 1000, 'PAUSED', 'BUDGET_EXHAUSTED'), (12, 1, 0.1234567, NULL, 'ACTIVE', NULL);
      INSERT INTO campaign_daily_spend (campaign_id, spend_date, spend, clicks, daily_budget, warned_at, exhausted_at)
        VALUES (11, '2026-11-30', 1000, 10, 1000, now(), now());
      INSERT INTO click_voids (event_id, compensation_id, advertiser_id, campaign_id) VALUES ('e1', 'c1', 1, 11);
      INSERT INTO duplicate_clicks (compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id,
                                    device_id, duplicate_event_ts, original_event_ts, outcome)
        VALUES ('c1', 'e1', 'e0', 1, 11, 'ad', 'dev', now(), now(), 'VOIDED');`);

    expect(await migrate(db.url)).toMatch(/1764600000000_money-defects/);

    const campaigns = await db.pool.query('SELECT campaign_id::int, cpc::text, status_seq::int FROM campaigns ORDER BY campaign_id');
    expect(campaigns.rows).toEqual([
      { campaign_id: 11, cpc: '100.0000000', status_seq: 0 },
      { campaign_id: 12, cpc: '0.1234567', status_seq: 0 },
    ]);
    const spend = await db.pool.query('SELECT warned_budget::text FROM campaign_daily_spend');
    expect(spend.rows).toEqual([{ warned_budget: '1000' }]);
    // The legacy 7-digit price keeps the constraint unvalidated; new writes are checked.
    const constraint = await db.pool.query("SELECT convalidated FROM pg_constraint WHERE conname = 'campaigns_cpc_micro_units'");
    expect(constraint.rows).toEqual([{ convalidated: false }]);
    await expect(db.pool.query('UPDATE campaigns SET cpc = 100 / 3.0 WHERE campaign_id = 11')).rejects.toThrow(/campaigns_cpc_micro_units/);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM click_voids')).rows[0].n).toBe(1);
    expect((await db.pool.query("SELECT outcome FROM duplicate_clicks WHERE compensation_id = 'c1'")).rows).toEqual([{ outcome: 'VOIDED' }]);

    // The new workers on the migrated data: the trailing-zero price is charged; the legacy price
    // with a real 7th digit is dead-lettered with a detail naming it, never dropped silently.
    const deps = workerDeps({ databaseUrl: db.url, keyPrefix: 'unused:', redisUrl: null });
    try {
      await db.pool.query("UPDATE campaigns SET status = 'ACTIVE', paused_reason = NULL WHERE campaign_id = 11");
      const summary = await createClickBalanceHandler(deps)(adEventsBatch([clickEvent(11, 1), clickEvent(12, 1)], 0, 0));
      expect(summary).toMatchObject({ charged: 1, deadLettered: 1 });
      const letters = await db.pool.query('SELECT reason, detail FROM dead_letters');
      expect(letters.rows).toHaveLength(1);
      expect(letters.rows[0].reason).toBe('NO_PRICE');
      expect(letters.rows[0].detail).toContain('0.1234567');
    } finally {
      await deps.close();
    }
  });

  test('the partitioned-ledger migration moves a ledger holding data into daily partitions, ids, grants and idempotency intact', async () => {
    // The schema of the migrations before the ledger was partitioned (ledger entries included), with its data.
    await migrateFirstOnly(ledgerDb.url, 4);
    const pool = ledgerDb.pool;
    await pool.query(`
      INSERT INTO advertisers (advertiser_id, balance) VALUES (1, 1000);
      INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget) VALUES (11, 1, 100, NULL);
      INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
        VALUES ('legacy', 'DEDUCT', 100, 1, 11, '2021-03-04', '2021-03-04T01:00:00Z'),
               ('legacy', 'REFUND', 100, 1, 11, '2021-03-04', '2021-03-04T01:00:00Z'),
               ('today', 'DEDUCT', 100, 1, 11, current_date, now());`);
    const before = await pool.query('SELECT id::text, event_id, type FROM ad_balance_histories ORDER BY id');

    expect(await migrate(ledgerDb.url)).toMatch(/1764800000000_partitioned-ledger/);

    const after = await pool.query('SELECT id::text, event_id, type FROM ad_balance_histories ORDER BY id');
    expect(after.rows).toEqual(before.rows);
    const placed = await pool.query("SELECT event_id, tableoid::regclass::text AS part FROM ad_balance_histories WHERE type = 'DEDUCT' ORDER BY event_id");
    expect(placed.rows).toEqual([
      { event_id: 'legacy', part: 'ad_balance_histories_default' },
      { event_id: 'today', part: expect.stringMatching(/^ad_balance_histories_p\d{8}$/) },
    ]);
    const kind = await pool.query("SELECT relkind FROM pg_class WHERE relname = 'ad_balance_histories'");
    expect(kind.rows).toEqual([{ relkind: 'p' }]);
    // The grants of the old table carried over; the id sequence continues after the copied ids.
    const grants = await pool.query(
      "SELECT privilege_type FROM information_schema.role_table_grants WHERE table_name = 'ad_balance_histories' AND grantee = 'adstream_click_balance' ORDER BY 1",
    );
    expect(grants.rows.map((r) => r.privilege_type)).toEqual(['INSERT', 'SELECT']);
    const next = await pool.query(
      "INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date) VALUES ('new', 'DEDUCT', 1, 1, 11, current_date) RETURNING id::text",
    );
    expect(BigInt(next.rows[0].id)).toBeGreaterThan(BigInt(before.rows[before.rows.length - 1].id));
    // The key still refuses a second row of the same click and type on the same day, and the
    // ledger carries the constraints of the ledger-entries migration.
    await expect(
      pool.query(
        "INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date) VALUES ('today', 'DEDUCT', 1, 1, 11, current_date)",
      ),
    ).rejects.toThrow(/duplicate key value violates unique constraint "ad_balance_histories_p\d{8}_event_id_type_spend_date_key"/);
    await expect(
      pool.query(
        "INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date) VALUES ('neg', 'REFUND', -1, 1, 11, current_date)",
      ),
    ).rejects.toThrow(/ad_balance_histories_amount_check/);
    await expect(
      pool.query(
        "INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date) VALUES ('nocampaign', 'DEDUCT', 1, 1, NULL, current_date)",
      ),
    ).rejects.toThrow(/ad_balance_histories_campaign_check/);
    await pool.query(
      "INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date) VALUES ('adj', 'ADJUSTMENT', -5, 1, NULL, current_date)",
    );

    // The workers on the migrated ledger: a replay of the legacy click is not charged again.
    const deps = workerDeps({ databaseUrl: ledgerDb.url, keyPrefix: 'unused:', redisUrl: null });
    try {
      const replay = clickEvent(11, 1, { event_id: 'legacy', event_ts: Date.parse('2021-03-04T01:00:00Z') });
      const summary = await createClickBalanceHandler(deps)(adEventsBatch([replay, clickEvent(11, 1)]));
      expect(summary).toMatchObject({ charged: 1, deadLettered: 0 });
    } finally {
      await deps.close();
    }
  });

  test('the ledger-entries migration records an opening ADJUSTMENT per advertiser so that balance = Σ ledger, and reconciles', async () => {
    // Continues on the database above (released schema + data, money defects migrated): roll the
    // ledger migrations back (every later one, the partitioned ledger among them, then the entries), add legacy balances and charges, migrate again.
    const bin = path.join(REPO_ROOT, 'node_modules/node-pg-migrate/bin/node-pg-migrate.js');
    await run(
      process.execPath,
      [
        bin,
        'down',
        String(migrationsFrom('1764700000000_ledger-entries.sql')),
        '--migrations-dir',
        'db/migrations',
        '--use-glob=false',
        '--migration-file-language',
        'sql',
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, DATABASE_URL: db.url },
      },
    );
    await db.pool.query(`
      INSERT INTO advertisers (advertiser_id, balance) VALUES (2, 0), (3, 55.000001);
      INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date)
        VALUES ('legacy-refund', 'REFUND', 0.5, 1, 11, '2026-11-30');`);
    const before = await db.pool.query('SELECT advertiser_id::int, balance::text FROM advertisers ORDER BY 1');

    expect(await migrate(db.url)).toMatch(/1764700000000_ledger-entries/);

    const after = await db.pool.query('SELECT advertiser_id::int, balance::text FROM advertisers ORDER BY 1');
    expect(after.rows).toEqual(before.rows);
    const openings = await db.pool.query("SELECT advertiser_id::int, amount::text, event_id FROM ad_balance_histories WHERE type = 'ADJUSTMENT' ORDER BY 1");
    const net = await db.pool.query(
      "SELECT coalesce(sum(CASE WHEN type = 'DEDUCT' THEN -amount ELSE 0 END), 0)::text AS deducted FROM ad_balance_histories WHERE advertiser_id = 1 AND type = 'DEDUCT'",
    );
    // Advertiser 1: 1000 at the start, one click charged by the test above, a legacy refund of 0.5.
    expect(openings.rows[0]).toMatchObject({ advertiser_id: 1, event_id: 'ledger:opening:1' });
    expect(openings.rows.slice(1)).toEqual([{ advertiser_id: 3, amount: '55.000001', event_id: 'ledger:opening:3' }]);
    const balance1 = after.rows[0].balance;
    const sum = await db.pool.query<{ ok: boolean }>('SELECT $1::numeric = $2::numeric + $3::numeric + 0.5 AS ok', [
      balance1,
      openings.rows[0].amount,
      net.rows[0].deducted,
    ]);
    expect(sum.rows[0].ok).toBe(true);
    const refs = await db.pool.query('SELECT external_ref, type FROM ledger_entry_refs ORDER BY 1');
    expect(refs.rows).toEqual([
      { external_ref: 'opening:1', type: 'ADJUSTMENT' },
      { external_ref: 'opening:3', type: 'ADJUSTMENT' },
    ]);
    const report = await reconcileLedger(db.pool);
    expect(report.checks.balance.count).toBe(0);
  });

  test('the partitioned-voids-duplicates migration moves voids and the duplicate log into daily partitions; redeliveries still do nothing; down restores them', async () => {
    const migration = '1764940000000_partitioned-voids-duplicates.sql';
    await migrateFirstOnly(historyDb.url, migrationsBefore(migration));
    const pool = historyDb.pool;
    // As the released workers left them: a click charged then refunded (A), a click voided before
    // it arrived (B), a compensation of 2021 settled by another (C, outside every daily partition).
    const tsA = Date.now() - 2 * 86_400_000;
    const tsB = Date.now() - 3_600_000;
    const tsC = Date.parse('2021-03-04T01:00:00Z');
    const click = (eventId: string, ts: number) => ({ event_id: eventId, event_ts: ts, advertiser_id: 1, campaign_id: 11, ad_id: 'ad-11', device_id: 'dev' });
    const compensations = [compensationEvent(click('A', tsA)), compensationEvent(click('B', tsB)), compensationEvent(click('C', tsC))];
    await pool.query(
      `INSERT INTO advertisers (advertiser_id, balance) VALUES (1, 1000);
       INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget) VALUES (11, 1, 100, NULL);
       INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts, compensation_id)
         VALUES ('A', 'DEDUCT', 100, 1, 11, '${budgetDayOf(tsA)}', to_timestamp(${tsA} / 1000.0), NULL),
                ('A', 'REFUND', 100, 1, 11, '${budgetDayOf(tsA)}', to_timestamp(${tsA} / 1000.0), 'comp-A');
       INSERT INTO click_voids (event_id, compensation_id, advertiser_id, campaign_id) VALUES ('B', 'comp-B', 1, 11);
       INSERT INTO duplicate_clicks (compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id,
                                     device_id, duplicate_event_ts, original_event_ts, outcome, refunded_amount)
         SELECT c.compensation_id, c.duplicate_event_id, c.original_event_id, 1, 11, 'ad-11', 'dev',
                to_timestamp(c.duplicate_ms / 1000.0), to_timestamp(c.original_ms / 1000.0), c.outcome, c.refunded
           FROM (VALUES ('comp-A', 'A', 'orig-A', ${tsA}::bigint, ${tsA - 30_000}::bigint, 'REFUNDED', 100),
                        ('comp-B', 'B', 'orig-B', ${tsB}, ${tsB - 30_000}, 'VOIDED', 0),
                        ('comp-C', 'C', 'orig-C', ${tsC}, ${tsC - 30_000}, 'ALREADY_SETTLED', 0))
             AS c(compensation_id, duplicate_event_id, original_event_id, duplicate_ms, original_ms, outcome, refunded);`,
    );
    const logColumns = 'compensation_id, duplicate_event_id, original_event_id, outcome, refunded_amount::text, duplicate_event_ts, created_at';
    const logBefore = await pool.query(`SELECT ${logColumns} FROM duplicate_clicks ORDER BY compensation_id`);
    const voidsBefore = await pool.query('SELECT event_id, compensation_id, created_at FROM click_voids ORDER BY event_id');

    expect(await migrate(historyDb.url)).toMatch(/1764940000000_partitioned-voids-duplicates/);

    expect((await pool.query(`SELECT ${logColumns} FROM duplicate_clicks ORDER BY compensation_id`)).rows).toEqual(logBefore.rows);
    expect((await pool.query('SELECT event_id, compensation_id, created_at FROM click_voids ORDER BY event_id')).rows).toEqual(voidsBefore.rows);
    // Each row is in the partition of the budget day of the duplicate click (the void takes its
    // compensation's); 2021 is covered by no daily partition.
    const placed = await pool.query(
      `SELECT compensation_id AS id, spend_date::text AS day, tableoid::regclass::text AS part FROM duplicate_clicks
       UNION ALL SELECT 'void-' || event_id, spend_date::text, tableoid::regclass::text FROM click_voids ORDER BY 1`,
    );
    const dayA = budgetDayOf(tsA);
    const dayB = budgetDayOf(tsB);
    expect(placed.rows).toEqual([
      { id: 'comp-A', day: dayA, part: `duplicate_clicks_p${dayA.replaceAll('-', '')}` },
      { id: 'comp-B', day: dayB, part: `duplicate_clicks_p${dayB.replaceAll('-', '')}` },
      { id: 'comp-C', day: '2021-03-04', part: 'duplicate_clicks_default' },
      { id: 'void-B', day: dayB, part: `click_voids_p${dayB.replaceAll('-', '')}` },
    ]);
    const kinds = await pool.query("SELECT relname, relkind FROM pg_class WHERE relname IN ('click_voids', 'duplicate_clicks') ORDER BY 1");
    expect(kinds.rows).toEqual([
      { relname: 'click_voids', relkind: 'p' },
      { relname: 'duplicate_clicks', relkind: 'p' },
    ]);
    const grants = await pool.query(
      `SELECT table_name, privilege_type FROM information_schema.role_table_grants
        WHERE table_name IN ('click_voids', 'duplicate_clicks') AND grantee = 'adstream_compensation' ORDER BY 1, 2`,
    );
    expect(grants.rows).toEqual([
      { table_name: 'click_voids', privilege_type: 'INSERT' },
      { table_name: 'click_voids', privilege_type: 'SELECT' },
      { table_name: 'duplicate_clicks', privilege_type: 'INSERT' },
      { table_name: 'duplicate_clicks', privilege_type: 'SELECT' },
    ]);

    // The workers on the migrated tables: every compensation redelivered, and clicks A and B
    // delivered (again), change nothing: no log row, no refund, no void, no charge.
    const deps = workerDeps({ databaseUrl: historyDb.url, keyPrefix: 'unused:', redisUrl: null });
    const counts = () =>
      pool.query(`SELECT (SELECT count(*) FROM duplicate_clicks)::int AS log, (SELECT count(*) FROM click_voids)::int AS voids,
                         (SELECT count(*) FROM ad_balance_histories)::int AS ledger, (SELECT balance::text FROM advertisers) AS balance`);
    try {
      const before = (await counts()).rows[0];
      const redelivered = await createCompensationHandler(deps)(compensationBatch(compensations));
      expect(redelivered).toMatchObject({ refunded: 0, voided: 0, deadLettered: 0, skipped: 3 });
      const clicks = await createClickBalanceHandler(deps)(
        adEventsBatch([clickEvent(11, 1, { event_id: 'A', event_ts: tsA }), clickEvent(11, 1, { event_id: 'B', event_ts: tsB })]),
      );
      expect(clicks).toMatchObject({ charged: 0, deadLettered: 0 });
      expect((await counts()).rows[0]).toEqual(before);
    } finally {
      await deps.close();
    }

    // Down (this migration and every later one): one table each again, the old keys, every row.
    await migrateSteps(historyDb.url, 'down', migrationsFrom(migration));
    expect((await pool.query(`SELECT ${logColumns} FROM duplicate_clicks ORDER BY compensation_id`)).rows).toEqual(logBefore.rows);
    expect((await pool.query('SELECT event_id, compensation_id, created_at FROM click_voids ORDER BY event_id')).rows).toEqual(voidsBefore.rows);
    const keys = await pool.query(
      `SELECT conrelid::regclass::text AS tbl, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conname IN ('click_voids_pkey', 'duplicate_clicks_pkey') ORDER BY 1`,
    );
    expect(keys.rows).toEqual([
      { tbl: 'click_voids', def: 'PRIMARY KEY (event_id, advertiser_id, campaign_id)' },
      { tbl: 'duplicate_clicks', def: 'PRIMARY KEY (compensation_id, advertiser_id, campaign_id)' },
    ]);
    const history = await pool.query("SELECT * FROM adstream_maintain_history(current_date, 3, 35, 'drop')");
    expect(history.rows).toEqual([]);
  });
  test('the leaner-charge migration replaces both charge functions and its down restores the definitions it replaced', async () => {
    const migration = '1764960000000_leaner-charge.sql';
    const scratch = await createTestDatabase({ migrate: false });
    try {
      await migrateFirstOnly(scratch.url, migrationsBefore(migration));
      const definitions = () =>
        scratch.pool.query<{ name: string; def: string }>(
          `SELECT p.proname AS name, pg_get_functiondef(p.oid) AS def FROM pg_proc p
            WHERE p.proname IN ('adstream_charge_clicks', 'adstream_charge_priced_clicks') ORDER BY 1`,
        );
      const before = (await definitions()).rows;
      expect(before.map((r) => r.name)).toEqual(['adstream_charge_clicks', 'adstream_charge_priced_clicks']);

      expect(await migrate(scratch.url)).toMatch(/1764960000000_leaner-charge/);
      const after = (await definitions()).rows;
      expect(after.map((r) => r.def)).not.toContain(before[0].def);
      expect(after.map((r) => r.def)).not.toContain(before[1].def);
      const kept = await scratch.pool.query<{ def: string }>(
        "SELECT definition AS def FROM adstream_replaced_functions WHERE migration = '1764960000000_leaner-charge' ORDER BY signature",
      );
      expect(kept.rows.map((r) => r.def)).toEqual(before.map((r) => r.def));

      await migrateSteps(scratch.url, 'down', migrationsFrom(migration));
      expect((await definitions()).rows).toEqual(before);
      expect((await scratch.pool.query("SELECT to_regclass('adstream_replaced_functions') AS t")).rows[0].t).toBeNull();
    } finally {
      await scratch.drop();
    }
  });

  test('the opened-budget-days migration gives the charge the day budget-reset opened and its down restores the charge it changed', async () => {
    const migration = '1765000000000_opened-budget-days.sql';
    const scratch = await createTestDatabase({ migrate: false });
    try {
      await migrateFirstOnly(scratch.url, migrationsBefore(migration));
      const definition = async () =>
        (
          await scratch.pool.query<{ def: string }>(
            "SELECT pg_get_functiondef('adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)'::regprocedure) AS def",
          )
        ).rows[0].def;
      const before = await definition();

      expect(await migrate(scratch.url)).toMatch(/1765000000000_opened-budget-days/);
      const after = await definition();
      expect(after).not.toContain('$7::date');
      expect(after).toContain('pg_advisory_xact_lock_shared(1764990000, 1)');
      expect(after).toContain("'event_ts', floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint");
      const opened = await scratch.pool.query<{ day: boolean }>("SELECT adstream_open_budget_day('2026-03-02') AS day");
      const again = await scratch.pool.query<{ day: boolean }>("SELECT adstream_open_budget_day('2026-03-01') AS day");
      expect([opened.rows[0].day, again.rows[0].day]).toEqual([true, false]);

      await migrateSteps(scratch.url, 'down', migrationsFrom(migration));
      expect(await definition()).toBe(before);
      const gone = await scratch.pool.query(
        "SELECT to_regclass('budget_days_opened') AS t, to_regprocedure('adstream_open_budget_day(date)') AS f, (SELECT count(*)::int FROM adstream_replaced_functions WHERE migration = '1765000000000_opened-budget-days') AS kept",
      );
      expect(gone.rows[0]).toEqual({ t: null, f: null, kept: 0 });
    } finally {
      await scratch.drop();
    }
  });

  test('the partitioned-dead-letters-outbox migration moves dead letters and the outbox into daily partitions; redeliveries write nothing twice; down restores them', async () => {
    const migration = '1764980000000_partitioned-dead-letters-outbox.sql';
    await migrateFirstOnly(queuesDb.url, migrationsBefore(migration));
    const pool = queuesDb.pool;
    const chargeFunction = () =>
      pool.query<{ def: string }>(
        "SELECT pg_get_functiondef('adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)'::regprocedure) AS def",
      );
    const maintenanceFunction = () =>
      pool.query<{ def: string }>("SELECT pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure) AS def");
    const functionBefore = (await chargeFunction()).rows[0].def;
    const maintenanceBefore = (await maintenanceFunction()).rows[0].def;
    // As the released workers left them: campaign 11 at half its budget today, the warning (published)
    // and the pause (not published yet) of today already announced, an outbox row of 2021 with a key
    // naming no day; a bad record dead-lettered an hour ago (not re-driven) and one of 2021 re-driven.
    const now = Date.now();
    const today = budgetDayOf(now);
    const recordedAt = now - 3_600_000;
    const broken = Buffer.from('{"event_type": "CLICK", not json');
    await pool.query(
      `INSERT INTO advertisers (advertiser_id, balance) VALUES (1, 1000);
       INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget) VALUES (11, 1, 50, 100);
       INSERT INTO campaign_daily_spend (campaign_id, spend_date, spend, clicks, daily_budget) VALUES (11, '${today}', 50, 1, 100);
       INSERT INTO outbox (kind, idempotency_key, payload, created_at, published_at, sns_published_at)
         VALUES ('BUDGET_WARNING', 'BUDGET_WARNING:11:${today}:100', '{"campaign_id": 11}', now() - interval '2 minutes', now(), now());
       INSERT INTO outbox (kind, idempotency_key, payload, created_at)
         VALUES ('CAMPAIGN_PAUSED', 'CAMPAIGN_PAUSED:11:${today}:1', '{"campaign_id": 11}', now() - interval '1 minute'),
                ('BUDGET_WARNING', 'legacy-key', '{}', '2021-03-04T01:00:00Z');
       INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, detail, raw_value, raw_value_bytes, created_at)
         VALUES ('click-balance', 'ad-events', 0, 5, 'INVALID_JSON', 'value is not JSON', '\\x${broken.toString('hex')}', ${broken.length}, to_timestamp(${recordedAt} / 1000.0));
       INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, created_at, redriven_at, redrive_outcome, first_reason)
         VALUES ('compensation', 'compensation-events', 2, 9, 'CLICK_MISMATCH', '2021-03-04T01:00:00Z', '2021-03-05T00:00:00Z', 'APPLIED', 'CLICK_MISMATCH');`,
    );
    const outboxColumns = 'id::text, kind, idempotency_key, payload, created_at, published_at, sns_published_at, kafka_published_at, attempts, last_error';
    const letterColumns =
      'id::text, handler, topic, kafka_partition, kafka_offset::text, reason, detail, raw_value, raw_value_bytes, created_at, redriven_at, redrive_outcome, redrive_attempts, first_reason';
    const outboxRows = () => pool.query(`SELECT ${outboxColumns} FROM outbox ORDER BY id`);
    const letterRows = () => pool.query(`SELECT ${letterColumns} FROM dead_letters ORDER BY id`);
    const outboxBefore = (await outboxRows()).rows;
    const lettersBefore = (await letterRows()).rows;

    expect(await migrate(queuesDb.url)).toMatch(/1764980000000_partitioned-dead-letters-outbox/);

    expect((await outboxRows()).rows).toEqual(outboxBefore);
    expect((await letterRows()).rows).toEqual(lettersBefore);
    // An outbox row in the day its key names (else its created_at's); a dead letter, whose record's
    // timestamp was not kept, in the day it was recorded on.
    const placed = await pool.query(
      `SELECT idempotency_key AS id, spend_date::text AS day, tableoid::regclass::text AS part FROM outbox
       UNION ALL SELECT 'dead-letter-' || kafka_offset, record_day::text, tableoid::regclass::text FROM dead_letters ORDER BY 1`,
    );
    const recordedDay = budgetDayOf(recordedAt);
    expect(placed.rows).toEqual([
      { id: `BUDGET_WARNING:11:${today}:100`, day: today, part: `outbox_p${today.replaceAll('-', '')}` },
      { id: `CAMPAIGN_PAUSED:11:${today}:1`, day: today, part: `outbox_p${today.replaceAll('-', '')}` },
      { id: 'dead-letter-5', day: recordedDay, part: `dead_letters_p${recordedDay.replaceAll('-', '')}` },
      { id: 'dead-letter-9', day: '2021-03-04', part: 'dead_letters_default' },
      { id: 'legacy-key', day: '2021-03-04', part: 'outbox_default' },
    ]);
    const grants = await pool.query(
      `SELECT table_name, grantee, string_agg(privilege_type, ',' ORDER BY privilege_type) AS privileges
         FROM information_schema.role_table_grants
        WHERE table_name IN ('dead_letters', 'outbox') AND grantee LIKE 'adstream_%' GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    expect(grants.rows).toEqual([
      { table_name: 'dead_letters', grantee: 'adstream_click_balance', privileges: 'INSERT,SELECT' },
      { table_name: 'dead_letters', grantee: 'adstream_compensation', privileges: 'INSERT,SELECT' },
      { table_name: 'dead_letters', grantee: 'adstream_ranking_cache', privileges: 'INSERT,SELECT' },
      { table_name: 'dead_letters', grantee: 'adstream_reconcile', privileges: 'SELECT' },
      { table_name: 'outbox', grantee: 'adstream_budget_reset', privileges: 'INSERT,SELECT,UPDATE' },
      { table_name: 'outbox', grantee: 'adstream_click_balance', privileges: 'INSERT,SELECT,UPDATE' },
      { table_name: 'outbox', grantee: 'adstream_compensation', privileges: 'INSERT,SELECT,UPDATE' },
      { table_name: 'outbox', grantee: 'adstream_outbox_sweep', privileges: 'SELECT,UPDATE' },
      { table_name: 'outbox', grantee: 'adstream_reconcile', privileges: 'SELECT' },
    ]);

    // The workers on the migrated tables. The bad record redelivered, with the Kafka timestamp it
    // was produced at: not recorded again. A click bringing campaign 11 to its budget: charged,
    // and its warning and pause, announced already, are not written twice.
    const deps = workerDeps({ databaseUrl: queuesDb.url, keyPrefix: 'unused:', redisUrl: null });
    try {
      const redelivered = adEventsBatch([broken], 0, 5);
      const record = redelivered.records['ad-events-0'][0] as { timestamp?: number };
      record.timestamp = recordedAt - 60_000;
      expect(await createClickBalanceHandler(deps)(redelivered)).toMatchObject({ deadLettered: 1 });
      expect((await pool.query('SELECT count(*)::int AS n FROM dead_letters')).rows[0].n).toBe(2);
      const click = await createClickBalanceHandler(deps)(adEventsBatch([clickEvent(11, 1)], 0, 6));
      expect(click).toMatchObject({ charged: 1, outboxWritten: 0 });
      expect((await pool.query('SELECT count(*)::int AS n FROM outbox')).rows[0].n).toBe(3);
      expect((await pool.query('SELECT status, status_seq::int FROM campaigns WHERE campaign_id = 11')).rows).toEqual([{ status: 'PAUSED', status_seq: 1 }]);
    } finally {
      await deps.close();
    }
    // New rows continue the old ids.
    const [{ max }] = (await pool.query('SELECT max(id)::int AS max FROM outbox')).rows;
    const [{ id: nextId }] = (
      await pool.query(`INSERT INTO outbox (kind, idempotency_key, payload, spend_date) VALUES ('BUDGET_WARNING', 'new', '{}', current_date) RETURNING id::int`)
    ).rows;
    expect(nextId).toBeGreaterThan(max);

    // Down: one table each again, the old keys, every row, the charge function as it was.
    const outboxNow = (await outboxRows()).rows;
    const lettersNow = (await letterRows()).rows;
    await migrateSteps(queuesDb.url, 'down', migrationsFrom(migration));
    expect((await outboxRows()).rows).toEqual(outboxNow);
    expect((await letterRows()).rows).toEqual(lettersNow);
    const keys = await pool.query(
      `SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conname IN ('dead_letters_pkey', 'dead_letters_coordinates_key', 'outbox_pkey', 'outbox_idempotency_key_key') ORDER BY 1, 2`,
    );
    expect(keys.rows).toEqual([
      { tbl: 'dead_letters', conname: 'dead_letters_coordinates_key', def: 'UNIQUE (topic, kafka_partition, kafka_offset, handler)' },
      { tbl: 'dead_letters', conname: 'dead_letters_pkey', def: 'PRIMARY KEY (id)' },
      { tbl: 'outbox', conname: 'outbox_idempotency_key_key', def: 'UNIQUE (idempotency_key)' },
      { tbl: 'outbox', conname: 'outbox_pkey', def: 'PRIMARY KEY (id)' },
    ]);
    expect((await chargeFunction()).rows[0].def).toBe(functionBefore);
    expect((await maintenanceFunction()).rows[0].def).toBe(maintenanceBefore);
    const history = await pool.query("SELECT * FROM adstream_maintain_history(current_date, 3, 35, 'drop')");
    expect(history.rows).toEqual([]);
  });

  test('the recent-history-days-kept migration makes the expiry check the day written into, and its down restores the check it replaced', async () => {
    const migration = '1764990000000_recent-history-days-kept.sql';
    const scratch = await createTestDatabase({ migrate: false });
    try {
      await migrateFirstOnly(scratch.url, migrationsBefore(migration));
      const maintenance = async () =>
        (await scratch.pool.query<{ def: string }>("SELECT pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure) AS def"))
          .rows[0].def;
      const before = await maintenance();

      // This migration alone: later ones rebuild the four-argument function around the five-argument one.
      await migrateSteps(scratch.url, 'up', 1);
      expect(await maintenance()).toContain('adstream_history_day_pending(tbl, part.relname, today - retention_days - 1)');

      await migrateSteps(scratch.url, 'down', 1);
      expect(await maintenance()).toBe(before);
      expect((await scratch.pool.query("SELECT to_regprocedure('adstream_history_day_pending(text, text, date)') AS f")).rows[0].f).toBeNull();
    } finally {
      await scratch.drop();
    }
  });

  test('the upkeep-four-argument-wrapper migration leaves one upkeep body, and its down restores the four-argument one', async () => {
    const migration = '1765060000000_upkeep-four-argument-wrapper.sql';
    const scratch = await createTestDatabase({ migrate: false });
    try {
      await migrateFirstOnly(scratch.url, migrationsBefore(migration));
      const definition = async (signature: string) =>
        (await scratch.pool.query<{ def: string }>('SELECT pg_get_functiondef($1::regprocedure) AS def', [signature])).rows[0].def;
      const fourArgs = 'adstream_maintain_history(date, integer, integer, text)';
      const fiveArgs = 'adstream_maintain_history(date, integer, integer, text, text)';
      const before = await definition(fourArgs);
      const perTable = await definition(fiveArgs);

      await migrateSteps(scratch.url, 'up', 1);
      const after = await definition(fourArgs);
      // The partition DDL is in the five-argument function only; the four-argument one calls it.
      expect(after).not.toMatch(/PARTITION OF|DETACH PARTITION|ledger_expired_totals/);
      expect(after).toContain('adstream_maintain_history(today, ahead_days, retention_days, expired, tbl)');
      expect(await definition(fiveArgs)).toBe(perTable);
      expect(perTable).toMatch(/PARTITION OF/);

      await migrateSteps(scratch.url, 'down', 1);
      expect(await definition(fourArgs)).toBe(before);
    } finally {
      await scratch.drop();
    }
  });
});
