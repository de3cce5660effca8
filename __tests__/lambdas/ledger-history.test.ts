/**
 * GIVEN the day-partitioned ledger (db/migrations/1764800000000_partitioned-ledger.sql), voids and
 * duplicate log (1764940000000_partitioned-voids-duplicates.sql), dead letters and outbox
 * (1764980000000_partitioned-dead-letters-outbox.sql)
 * WHEN budget-reset runs with the environment's retention (config `database.history`)
 * THEN the daily partitions ahead exist, expired days are detached (kept, renamed archived_*) or
 * dropped, nothing inside the retention is touched, and charging keeps working.
 */
import { ledgerHistoryFromEnv } from '../../lambdas/budget-reset/ledger-history';
import { createBudgetResetHandler } from '../../lambdas/budget-reset/resume-campaigns';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { adEventsBatch, clickEvent } from './support/kafka-fixtures';
import { countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

const stores = isolatedWorkerStores();
const DAY_MS = 24 * 3600 * 1000;

async function partitions(table = 'ad_balance_histories'): Promise<string[]> {
  const { rows } = await stores.pool.query<{ relname: string }>(
    `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
    [table],
  );
  return rows.map((r) => r.relname);
}

const dayName = (ms: number, table = 'ad_balance_histories') => `${table}_p${new Date(ms).toISOString().slice(0, 10).replace(/-/g, '')}`;

describe('ledger history', () => {
  test('budget-reset creates the partitions ahead and detaches the days past the retention, keeping their rows', async () => {
    await seedAdvertiser(stores.pool, 1, '10000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '10', dailyBudget: null });
    // A charge a week ago (in the migration's first partition) and one today.
    const weekAgo = Date.now() - 7 * DAY_MS + 3600_000;
    await createClickBalanceHandler(stores.deps({ budgetTimeZone: 'UTC' }))(adEventsBatch([clickEvent(11, 1, { event_ts: weekAgo }), clickEvent(11, 1)]));
    const oldest = (await partitions()).find((p) => p.startsWith('ad_balance_histories_p')) as string;
    expect(await countRows(stores.pool, 'ad_balance_histories')).toBe(2);

    // 35 days later, 35 days of retention: the days before today expire, today is kept.
    const later = Date.now() + 35 * DAY_MS;
    const summary = await createBudgetResetHandler(stores.deps({ now: () => later, budgetTimeZone: 'UTC' }), {
      retentionDays: 35,
      aheadDays: 3,
      expired: 'detach',
    })({});
    // Four days ahead and seven expired days for each of the ledger, the voids, the duplicate log,
    // the dead letters and the outbox (none of whose days holds a pending row).
    expect(summary).toMatchObject({ partitionsCreated: 20, partitionsKeptPending: 0 });
    expect(summary.partitionsExpired).toBe(35);
    const after = await partitions();
    for (let d = 0; d <= 3; d += 1) expect(after).toContain(dayName(later + d * DAY_MS));
    for (const table of ['click_voids', 'duplicate_clicks', 'dead_letters', 'outbox']) {
      const kept = await partitions(table);
      for (let d = 0; d <= 3; d += 1) expect(kept).toContain(dayName(later + d * DAY_MS, table));
      expect(kept).not.toContain(dayName(Date.now() - 7 * DAY_MS, table));
      expect(kept).toContain(`${table}_default`);
    }
    expect(after).not.toContain(oldest);
    expect(after).toContain(dayName(Date.now()));
    expect(after).toContain('ad_balance_histories_default');
    // Detached, not lost: the archived table holds the week-old charge, the ledger no longer does.
    expect(await countRows(stores.pool, `archived_${oldest}`)).toBe(1);
    expect(await countRows(stores.pool, 'ad_balance_histories')).toBe(1);

    // Idempotent: a second run creates and expires nothing.
    const again = await createBudgetResetHandler(stores.deps({ now: () => later, budgetTimeZone: 'UTC' }), {
      retentionDays: 35,
      aheadDays: 3,
      expired: 'detach',
    })({});
    expect(again).toMatchObject({ partitionsCreated: 0, partitionsExpired: 0 });

    // Dropping: 40 more days (today's partition expires too) with expired = drop removes the partitions without an archive.
    const muchLater = later + 40 * DAY_MS;
    const dropped = await createBudgetResetHandler(stores.deps({ now: () => muchLater, budgetTimeZone: 'UTC' }), {
      retentionDays: 35,
      aheadDays: 2,
      expired: 'drop',
    })({});
    expect(dropped.partitionsExpired).toBeGreaterThan(0);
    const { rows } = await stores.pool.query("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'archived_%'");
    expect(rows[0].n).toBe(summary.partitionsExpired);
    expect(await countRows(stores.pool, 'ad_balance_histories')).toBe(0);
    expect(await partitions()).not.toContain(dayName(Date.now()));
  });

  test('the database refuses a retention that would expire the charges refunds and replays need', async () => {
    await expect(stores.pool.query("SELECT * FROM adstream_maintain_history(current_date, 7, 10, 'drop')")).rejects.toThrow(/at least 35 days/);
    await expect(stores.pool.query("SELECT * FROM adstream_maintain_history(current_date, 7, 400, 'truncate')")).rejects.toThrow(/detach or drop/);
  });

  test('the function reads its retention from the variables the workers stack sets, and names a bad one', () => {
    expect(ledgerHistoryFromEnv({})).toEqual({ retentionDays: 400, aheadDays: 7, expired: 'detach' });
    expect(ledgerHistoryFromEnv({ LEDGER_RETENTION_DAYS: '35', LEDGER_PARTITIONS_AHEAD_DAYS: '14', LEDGER_EXPIRED_PARTITIONS: 'drop' })).toEqual({
      retentionDays: 35,
      aheadDays: 14,
      expired: 'drop',
    });
    expect(() => ledgerHistoryFromEnv({ LEDGER_RETENTION_DAYS: '7' })).toThrow(/LEDGER_RETENTION_DAYS.*35 to 3650/);
    expect(() => ledgerHistoryFromEnv({ LEDGER_EXPIRED_PARTITIONS: 'archive' })).toThrow(/LEDGER_EXPIRED_PARTITIONS/);
  });
});
