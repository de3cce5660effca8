/**
 * Migrations apply to a database that already holds data: the released schema is migrated and
 * filled the way the old workers left it, then the later migrations run over it.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { adEventsBatch, clickEvent } from './support/kafka-fixtures';
import { reconcileLedger } from '../../lambdas/reconcile/reconcile-ledger';
import { createTestDatabase, migrate, REPO_ROOT, TestDatabase, workerDeps } from './support/test-database';

const run = promisify(execFile);

async function migrateFirstOnly(url: string): Promise<void> {
  const bin = path.join(REPO_ROOT, 'node_modules/node-pg-migrate/bin/node-pg-migrate.js');
  await run(process.execPath, [bin, 'up', '1', '--migrations-dir', 'db/migrations', '--use-glob=false', '--migration-file-language', 'sql'], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: url },
  });
}

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await db.drop();
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

  test('the ledger-entries migration records an opening ADJUSTMENT per advertiser so that balance = Σ ledger, and reconciles', async () => {
    // Continues on the database above (released schema + data, money defects migrated): roll the
    // ledger migration back, add legacy balances and charges, migrate again.
    const bin = path.join(REPO_ROOT, 'node_modules/node-pg-migrate/bin/node-pg-migrate.js');
    await run(process.execPath, [bin, 'down', '1', '--migrations-dir', 'db/migrations', '--use-glob=false', '--migration-file-language', 'sql'], {
      cwd: REPO_ROOT,
      env: { ...process.env, DATABASE_URL: db.url },
    });
    await db.pool.query(`
      INSERT INTO advertisers (advertiser_id, balance) VALUES (2, 0), (3, 55.000001);
      INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date)
        VALUES ('legacy-refund', 'REFUND', 0.5, 1, 11, '2026-11-30');`);
    const before = await db.pool.query("SELECT advertiser_id::int, balance::text FROM advertisers ORDER BY 1");

    expect(await migrate(db.url)).toMatch(/1764700000000_ledger-entries/);

    const after = await db.pool.query("SELECT advertiser_id::int, balance::text FROM advertisers ORDER BY 1");
    expect(after.rows).toEqual(before.rows);
    const openings = await db.pool.query("SELECT advertiser_id::int, amount::text, event_id FROM ad_balance_histories WHERE type = 'ADJUSTMENT' ORDER BY 1");
    const net = await db.pool.query("SELECT coalesce(sum(CASE WHEN type = 'DEDUCT' THEN -amount ELSE 0 END), 0)::text AS deducted FROM ad_balance_histories WHERE advertiser_id = 1 AND type = 'DEDUCT'");
    // Advertiser 1: 1000 at the start, one click charged by the test above, a legacy refund of 0.5.
    expect(openings.rows[0]).toMatchObject({ advertiser_id: 1, event_id: 'ledger:opening:1' });
    expect(openings.rows.slice(1)).toEqual([{ advertiser_id: 3, amount: '55.000001', event_id: 'ledger:opening:3' }]);
    const balance1 = after.rows[0].balance;
    const sum = await db.pool.query<{ ok: boolean }>("SELECT $1::numeric = $2::numeric + $3::numeric + 0.5 AS ok", [balance1, openings.rows[0].amount, net.rows[0].deducted]);
    expect(sum.rows[0].ok).toBe(true);
    const refs = await db.pool.query("SELECT external_ref, type FROM ledger_entry_refs ORDER BY 1");
    expect(refs.rows).toEqual([{ external_ref: 'opening:1', type: 'ADJUSTMENT' }, { external_ref: 'opening:3', type: 'ADJUSTMENT' }]);
    const report = await reconcileLedger(db.pool);
    expect(report.checks.balance.count).toBe(0);
  });
});
