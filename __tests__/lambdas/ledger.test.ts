/**
 * The ledger reconciles: top-ups and adjustments recorded by `npm run ledger` are ledger entries,
 * idempotent by their external reference, and the reconciliation (the scheduled function and
 * `npm run reconcile`) finds every kind of drift, by id, on real Postgres after the real
 * handlers charged and refunded.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { recordLedgerEntry } from '../../lambdas/shared/ledger-entries';
import * as reconcile from '../../lambdas/reconcile/reconcile-ledger';
import { createReconcileHandler, reconcileLedger, RECONCILE_METRICS } from '../../lambdas/reconcile/reconcile-ledger';
import { RECONCILE_SIZING } from '../../constructs/aws/reconciliation';
import { createObservability } from '../../lambdas/shared/observability';
import { ledgerCommand } from '../../scripts/ledger';
import { reconcileCommand } from '../../scripts/reconcile';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { captureJsonLines } from './support/capture-output';
import { balanceOf, countRows, createTestDatabase, REPO_ROOT, TestDatabase, workerDeps } from './support/test-database';

const run = promisify(execFile);
const TSX = path.join(REPO_ROOT, 'node_modules/.bin/tsx');

let db: TestDatabase;
const TZ = 'Asia/Seoul';

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query('INSERT INTO advertisers (advertiser_id, balance) VALUES (1, 0), (2, 0), (3, 0)');
  await db.pool.query("INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget) VALUES (11, 1, '120.10', '100000'), (21, 2, '0.000001', NULL)");
});

afterAll(async () => {
  await db.drop();
});

const topUp = (advertiserId: string, amount: string, externalRef: string, dryRun = false) =>
  recordLedgerEntry(db.pool, { type: 'TOPUP', advertiserId, amount, externalRef, budgetTimeZone: TZ, dryRun });

describe('ledger entries', () => {
  test('a top-up is a ledger entry that moves the balance by exactly its amount, once per external reference', async () => {
    expect(await topUp('1', '0.1', 'PAY-1')).toMatchObject({ outcome: 'recorded', amount: '0.1', balanceBefore: '0', balanceAfter: '0.1' });
    expect(await topUp('1', '0.2', 'PAY-2')).toMatchObject({ outcome: 'recorded', balanceAfter: '0.3' });
    // The same reference again (a retried command): nothing moves.
    expect(await topUp('1', '0.2', 'PAY-2')).toMatchObject({ outcome: 'already-recorded', balanceAfter: '0.3' });
    expect(await balanceOf(db.pool, 1)).toBe('0.3');
    const rows = await db.pool.query('SELECT event_id, type, amount::text, campaign_id FROM ad_balance_histories WHERE advertiser_id = 1 ORDER BY id');
    expect(rows.rows).toEqual([
      { event_id: 'ledger:PAY-1', type: 'TOPUP', amount: '0.1', campaign_id: null },
      { event_id: 'ledger:PAY-2', type: 'TOPUP', amount: '0.2', campaign_id: null },
    ]);
  });

  test('a dry run shows the balance it would leave and writes nothing', async () => {
    expect(await topUp('1', '1000000.000001', 'PAY-DRY', true)).toMatchObject({ outcome: 'dry-run', balanceBefore: '0.3', balanceAfter: '1000000.300001' });
    expect(await balanceOf(db.pool, 1)).toBe('0.3');
    expect((await db.pool.query("SELECT count(*)::int AS n FROM ledger_entry_refs WHERE external_ref = 'PAY-DRY'")).rows[0].n).toBe(0);
  });

  test('a reference reused for another amount or advertiser is refused and moves nothing', async () => {
    await expect(topUp('1', '0.5', 'PAY-2')).rejects.toThrow(/PAY-2 was already recorded as TOPUP 0.2 for advertiser 1/);
    await expect(topUp('2', '0.2', 'PAY-2')).rejects.toThrow(/already recorded/);
    expect(await balanceOf(db.pool, 1)).toBe('0.3');
    expect(await balanceOf(db.pool, 2)).toBe('0');
  });

  test('bad input is refused with a clear error: negative top-up, zero, 7 fraction digits, unknown advertiser, adjustment without reason', async () => {
    await expect(topUp('1', '-5', 'X1')).rejects.toThrow(/top-up amount must be positive/);
    await expect(topUp('1', '0.00', 'X2')).rejects.toThrow(/must not be zero/);
    await expect(topUp('1', '0.0000001', 'X3')).rejects.toThrow(/at most 6 fraction digits/);
    await expect(topUp('1', '1e3', 'X4')).rejects.toThrow(/decimal/);
    await expect(topUp('99', '5', 'X5')).rejects.toThrow(/advertiser 99 does not exist/);
    await expect(recordLedgerEntry(db.pool, { type: 'ADJUSTMENT', advertiserId: '1', amount: '-1', externalRef: 'X6', budgetTimeZone: TZ })).rejects.toThrow(
      /needs a reason/,
    );
    expect((await db.pool.query("SELECT count(*)::int AS n FROM ledger_entry_refs WHERE external_ref LIKE 'X%'")).rows[0].n).toBe(0);
  });

  test('concurrent recordings of one reference move the balance once', async () => {
    const results = await Promise.allSettled([topUp('3', '7.77', 'PAY-RACE'), topUp('3', '7.77', 'PAY-RACE'), topUp('3', '7.77', 'PAY-RACE')]);
    expect(results.filter((r) => r.status === 'fulfilled' && r.value.outcome === 'recorded')).toHaveLength(1);
    expect(await balanceOf(db.pool, 3)).toBe('7.77');
  });

  test('the database refuses what the ledger must never hold: a charge without campaign, a zero or negative charge', async () => {
    await expect(
      db.pool.query("INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, spend_date) VALUES ('c', 'DEDUCT', 1, 1, current_date)"),
    ).rejects.toThrow(/ad_balance_histories_campaign_check/);
    await expect(
      db.pool.query(
        "INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date) VALUES ('d', 'REFUND', -1, 1, 11, current_date)",
      ),
    ).rejects.toThrow(/ad_balance_histories_amount_check/);
    await expect(
      db.pool.query("INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, spend_date) VALUES ('e', 'ADJUSTMENT', 0, 1, current_date)"),
    ).rejects.toThrow(/ad_balance_histories_amount_check/);
  });

  test('npm run ledger: topup and adjust with a dry run; a known error prints one line without a stack trace', async () => {
    const env = { ...process.env, DATABASE_URL: db.url, BUDGET_TIME_ZONE: TZ };
    expect((await ledgerCommand(['topup', '--advertiser', '2', '--amount', '500.00', '--ref', 'PAY-CLI', '--dry-run'], env)).output).toBe(
      'dry run (nothing written): would record TOPUP 500.00 for advertiser 2, ref PAY-CLI: balance 0 -> 500.00',
    );
    expect((await ledgerCommand(['topup', '--advertiser', '2', '--amount', '500.00', '--ref', 'PAY-CLI'], env)).output).toMatch(
      /^recorded TOPUP 500.00 .* balance 0 -> 500.00$/,
    );
    expect((await ledgerCommand(['adjust', '--advertiser', '2', '--amount=-0.50', '--ref', 'TICKET-9', '--reason', 'goodwill reversal'], env)).output).toMatch(
      /balance 500.00 -> 499.50$/,
    );
    const refs = await db.pool.query("SELECT type, amount::text, reason FROM ledger_entry_refs WHERE external_ref = 'TICKET-9'");
    expect(refs.rows).toEqual([{ type: 'ADJUSTMENT', amount: '-0.50', reason: 'goodwill reversal' }]);

    const failed = await run(TSX, ['scripts/ledger.ts', 'topup', '--advertiser', '2', '--amount=-3', '--ref', 'R'], { cwd: REPO_ROOT, env }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr.trim()).toBe('a top-up amount must be positive; take money back with an adjustment');
    const help = await run(TSX, ['scripts/ledger.ts', '--help'], { cwd: REPO_ROOT, env });
    expect(help.stdout).toMatch(/^usage: npm run ledger -- <topup\|adjust>/);
  });
});

describe('reconciliation', () => {
  test('charges, refunds and top-ups from the real handlers reconcile; every kind of drift is found by id', async () => {
    const deps = workerDeps({ databaseUrl: db.url, keyPrefix: 'unused:', redisUrl: null });
    try {
      await topUp('1', '10000', 'PAY-BIG');
      const clicks = [clickEvent(11, 1), clickEvent(11, 1), clickEvent(11, 1), clickEvent(21, 2)];
      expect(await createClickBalanceHandler(deps)(adEventsBatch(clicks))).toMatchObject({ charged: 4 });
      expect(await createCompensationHandler(deps)(compensationBatch([compensationEvent(clicks[1])]))).toMatchObject({ refunded: 1 });
      // A void before its click: the click is never charged.
      const late = clickEvent(11, 1);
      expect(await createCompensationHandler(deps)(compensationBatch([compensationEvent(late)], 0, 5))).toMatchObject({ voided: 1 });
      expect(await createClickBalanceHandler(deps)(adEventsBatch([late], 0, 10))).toMatchObject({ charged: 0 });
    } finally {
      await deps.close();
    }
    const clean = await reconcileLedger(db.pool);
    expect(clean.drift).toBe(0);

    // Drift of every kind, written behind the handlers' back.
    await db.pool.query('UPDATE advertisers SET balance = balance + 0.000001 WHERE advertiser_id = 2');
    await db.pool.query('UPDATE campaign_daily_spend SET spend = spend - 0.000001 WHERE campaign_id = 21');
    // A voided click charged anyway, consistently in balance and spend (as a broken handler would).
    const voided = await db.pool.query<{ event_id: string }>('SELECT event_id FROM click_voids LIMIT 1');
    await db.pool.query(
      `WITH day AS (SELECT spend_date FROM campaign_daily_spend WHERE campaign_id = 11 LIMIT 1),
            charge AS (INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date)
                       SELECT $1, 'DEDUCT', 120.10, 1, 11, spend_date FROM day),
            spend AS (UPDATE campaign_daily_spend SET spend = spend + 120.10 WHERE campaign_id = 11 AND spend_date = (SELECT spend_date FROM day))
       UPDATE advertisers SET balance = balance - 120.10 WHERE advertiser_id = 1`,
      [voided.rows[0].event_id],
    );
    const refunded = await db.pool.query<{ duplicate_event_id: string; original_event_id: string }>(
      "SELECT duplicate_event_id, original_event_id FROM duplicate_clicks WHERE outcome = 'REFUNDED'",
    );
    const { duplicate_event_id: dup, original_event_id: orig } = refunded.rows[0];
    await db.pool.query(
      `INSERT INTO duplicate_clicks (compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id, duplicate_event_ts, original_event_ts, outcome, refunded_amount, spend_date)
       VALUES ('again', $1, $2, 1, 11, 'ad', 'dev', now(), now(), 'REFUNDED', 120.10, current_date),
              ('orig', $2, 'first', 1, 11, 'ad', 'dev', now(), now(), 'REFUNDED', 120.10, current_date)`,
      [dup, orig],
    );
    await db.pool.query(
      "INSERT INTO outbox (kind, idempotency_key, payload, created_at, spend_date) VALUES ('BUDGET_WARNING', 'stuck', '{}', now() - interval '1 hour', current_date), ('BUDGET_WARNING', 'fresh', '{}', now(), current_date)",
    );

    const report = await reconcileLedger(db.pool);
    expect(report.checks.balance.ids).toEqual(['2']);
    expect(report.checks.balance.rows[0]).toMatchObject({ balance: '499.500000', ledger: '499.499999' });
    expect(report.checks.spend.count).toBe(1);
    expect(report.checks.spend.ids[0]).toMatch(/^21\//);
    expect(report.checks.chargedAndVoided.ids).toEqual([voided.rows[0].event_id]);
    expect(report.checks.refundedTwice.ids).toEqual([dup]);
    expect(report.checks.originalRefunded.ids).toEqual([orig]);
    expect(report.checks.outboxUnpublished.count).toBe(1);
    expect(report.drift).toBe(6);

    // The command: exit 1 and the offending ids printed.
    const command = await reconcileCommand([], { ...process.env, DATABASE_URL: db.url });
    expect(command.code).toBe(1);
    expect(command.output).toContain('ledger does NOT reconcile: 6 offending rows');
    expect(command.output).toContain(`id=${orig}`);

    // The scheduled function: an ERROR line with the ids and a drift metric of 6.
    const previous = process.env.POWERTOOLS_METRICS_DISABLED;
    delete process.env.POWERTOOLS_METRICS_DISABLED;
    const { lines } = await captureJsonLines(() => createReconcileHandler({ pool: async () => db.pool, observability: createObservability('reconcile') })({}));
    if (previous !== undefined) process.env.POWERTOOLS_METRICS_DISABLED = previous;
    const error = lines.find((line) => line.message === 'ledger does not reconcile') as {
      level: string;
      offending: Record<string, { rows: { id: string }[] }>;
    };
    expect(error.level).toBe('ERROR');
    expect(error.offending.originalRefunded.rows[0].id).toBe(orig);
    const emf = lines.find((line) => '_aws' in line) as Record<string, unknown>;
    expect(emf[RECONCILE_METRICS.drift]).toBe(6);
    // How long the run took, for the alarm that warns before the growing ledger outlasts the function.
    expect(emf[RECONCILE_METRICS.seconds]).toEqual(expect.any(Number));
  });

  test('a reconciliation that cannot run emits no drift metric and throws, so the alarm breaches on missing data', async () => {
    const handler = createReconcileHandler({
      pool: async () => Promise.reject(new Error('connect ECONNREFUSED')),
      observability: createObservability('reconcile'),
    });
    const { error, lines } = await captureJsonLines(() => handler({}));
    expect(String(error)).toMatch(/ECONNREFUSED/);
    expect(lines.find((line) => line.message === 'reconciliation could not run')).toMatchObject({ level: 'ERROR' });
    expect(lines.some((line) => '_aws' in line)).toBe(false);
  });
});

/**
 * Runs `body` on a database of its own (the drift it makes stays there) holding advertiser
 * `advertiserId`, topped up with 100, and its campaign `campaignId` at `cpc`, without a budget.
 */
async function withFundedCampaign(
  advertiserId: number,
  campaignId: number,
  cpc: string,
  body: (own: TestDatabase, deps: ReturnType<typeof workerDeps>) => Promise<void>,
): Promise<void> {
  const own = await createTestDatabase();
  const deps = workerDeps({ databaseUrl: own.url, keyPrefix: 'unused:', redisUrl: null });
  try {
    await own.pool.query('INSERT INTO advertisers (advertiser_id, balance) VALUES ($1, 0)', [advertiserId]);
    await own.pool.query('INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget) VALUES ($1, $2, $3, NULL)', [campaignId, advertiserId, cpc]);
    await recordLedgerEntry(own.pool, {
      type: 'TOPUP',
      advertiserId: String(advertiserId),
      amount: '100',
      externalRef: `PAY-${advertiserId}`,
      budgetTimeZone: TZ,
    });
    await body(own, deps);
  } finally {
    await deps.close();
    await own.drop();
  }
}

describe('reconciliation on a ledger that grows', () => {
  /** Every node of an EXPLAIN (FORMAT JSON) plan. */
  function nodes(plan: Record<string, unknown>): Array<Record<string, unknown>> {
    return [plan, ...((plan.Plans as Array<Record<string, unknown>> | undefined) ?? []).flatMap(nodes)];
  }

  test('chargedTwice streams the per-day unique indexes in event-id order instead of hashing or sorting every charge', async () => {
    // 10 million DEDUCTs took 55 s hashed (spilling to disk; the workers' 30 s statement timeout
    // cut it at about 5 million) and under 6 s merged from the indexes (docs/operations.md, Known gaps).
    const own = await createTestDatabase();
    try {
      await own.pool.query(`
        INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date)
        SELECT 'plan-' || g, 'DEDUCT', 1, 1, 11, current_date - (g % 5) FROM generate_series(1, 2000) g`);
      await planAndRun(own);
    } finally {
      await own.drop();
    }
  });

  async function planAndRun(own: TestDatabase): Promise<void> {
    await own.pool.query('ANALYZE ad_balance_histories');
    const client = await own.pool.connect();
    try {
      await client.query('BEGIN');
      for (const [name, value] of Object.entries(reconcile.RECONCILE_CHECK_SETTINGS?.chargedTwice ?? {})) {
        await client.query('SELECT set_config($1, $2, true)', [name, value]);
      }
      const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>(
        `EXPLAIN (FORMAT JSON) ${reconcile.RECONCILE_CHECKS.chargedTwice}`,
      );
      const plan = nodes(rows[0]['QUERY PLAN'][0].Plan);
      const overLedger = plan.filter((node) => node['Node Type'] === 'Merge Append');
      expect(overLedger).toHaveLength(1);
      expect(plan.filter((node) => node['Node Type'] === 'Aggregate' && node.Strategy === 'Hashed')).toEqual([]);
      // The only sort allowed is of the (few) event ids found twice (a CTE scan), never over the ledger's rows.
      const readsLedger = (node: Record<string, unknown>) =>
        ['Merge Append', 'Append'].includes(String(node['Node Type'])) || String(node['Relation Name'] ?? '').startsWith('ad_balance_histories');
      const sortsOfLedger = plan.filter(
        (node) => node['Node Type'] === 'Sort' && ((node.Plans as Array<Record<string, unknown>> | undefined) ?? []).some(readsLedger),
      );
      expect(sortsOfLedger).toEqual([]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    // The settings are the check's own (set for it, restored after it), and the report says how long each check took.
    const report = await reconcileLedger(own.pool);
    expect(report.checks.chargedTwice.durationMs).toEqual(expect.any(Number));
    expect(report.checks.chargedTwice.count).toBe(0);
  }

  test("the scheduled function's statements may run past the workers' 30 s, within its own timeout", () => {
    expect(reconcile.RECONCILE_POOL_OVERRIDES?.statement_timeout).toBeGreaterThan(30_000);
    expect(reconcile.RECONCILE_POOL_OVERRIDES?.query_timeout).toBeLessThan(RECONCILE_SIZING.timeoutSeconds * 1000);
  });
});

describe('reconciliation of money consistent in balance and spend but wrong', () => {
  test('a click charged on two days and a refund of a click never charged are found, with advertiser, campaign and amount', async () => {
    await withFundedCampaign(6, 61, '3.000001', async (own, deps) => {
      const click = clickEvent(61, 6, { event_ts: Date.now() - 4 * 86_400_000 });
      expect(await createClickBalanceHandler(deps)(adEventsBatch([click]))).toMatchObject({ charged: 1 });
      expect((await reconcileLedger(own.pool)).drift).toBe(0);

      // The known gap of the charge (lambdas/README.md): the same click re-stamped three days
      // later is charged again, balance and spend moved consistently.
      expect(await createClickBalanceHandler(deps)(adEventsBatch([{ ...click, event_ts: Date.now() - 86_400_000 }], 0, 1))).toMatchObject({ charged: 1 });
      expect(await balanceOf(own.pool, 6)).toBe('93.999998');
      // A refund of a click never charged, written behind the handlers' back with the balance and
      // the spend of the day moved as a refund moves them.
      await own.pool.query(
        `WITH day AS (SELECT spend_date FROM campaign_daily_spend WHERE campaign_id = 61 ORDER BY spend_date LIMIT 1),
              refund AS (INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date)
                         SELECT 'never-charged', 'REFUND', 1.5, 6, 61, spend_date FROM day),
              spend AS (UPDATE campaign_daily_spend SET spend = spend - 1.5 WHERE campaign_id = 61 AND spend_date = (SELECT spend_date FROM day))
         UPDATE advertisers SET balance = balance + 1.5 WHERE advertiser_id = 6`,
      );

      const report = await reconcileLedger(own.pool);
      expect(report.checks.balance.count + report.checks.spend.count).toBe(0);
      expect(report.checks.chargedTwice.rows).toEqual([{ id: click.event_id, advertiser_id: '6', campaign_id: '61', charges: '2', amount: '6.000002' }]);
      expect(report.checks.refundedNotCharged.rows).toEqual([
        { id: 'never-charged', advertiser_id: '6', campaign_id: '61', spend_date: expect.any(String), amount: '1.5' },
      ]);
      expect(report.drift).toBe(2);
    });
  });
});

describe('reconciliation after history days expired', () => {
  test('a ledger day expired by adstream_maintain_history() leaves no drift, and drift made after it is still found', async () => {
    await withFundedCampaign(5, 51, '2.500001', async (own, deps) => {
      const clicks = [clickEvent(51, 5), clickEvent(51, 5), clickEvent(51, 5)];
      expect(await createClickBalanceHandler(deps)(adEventsBatch(clicks))).toMatchObject({ charged: 3 });
      expect(await createCompensationHandler(deps)(compensationBatch([compensationEvent(clicks[1])]))).toMatchObject({ refunded: 1 });
      expect((await reconcileLedger(own.pool)).drift).toBe(0);

      // Forty days on, with the shortest retention: the days of the top-up and the charges are
      // dropped (they were written more than the retention and a day before).
      const expired = await own.pool.query<{ action: string; partition_name: string }>(
        "SELECT * FROM adstream_maintain_history(current_date + 40, 2, 35, 'drop') WHERE partition_name LIKE 'ad_balance_histories_p%' AND action = 'dropped'",
      );
      expect(expired.rows.length).toBeGreaterThan(0);
      expect(await countRows(own.pool, 'ad_balance_histories')).toBe(0);
      expect(await balanceOf(own.pool, 5)).toBe('94.999998');

      const report = await reconcileLedger(own.pool);
      expect({ drift: report.drift, balance: report.checks.balance.rows, spend: report.checks.spend.rows }).toEqual({ drift: 0, balance: [], spend: [] });

      // Drift made after the expiry is found as before: a balance moved without a ledger row,
      // and an expired day's spend changed.
      await own.pool.query('UPDATE advertisers SET balance = balance - 0.000001 WHERE advertiser_id = 5');
      await own.pool.query('UPDATE campaign_daily_spend SET spend = spend + 1 WHERE campaign_id = 51');
      const drifted = await reconcileLedger(own.pool);
      expect(drifted.checks.balance.rows).toEqual([{ id: '5', balance: '94.999997', ledger: '94.999998' }]);
      expect(drifted.checks.spend.rows).toEqual([expect.objectContaining({ spend: '6.000002', ledger: '5.000002' })]);
      expect(drifted.drift).toBe(2);
    });
  });
});
