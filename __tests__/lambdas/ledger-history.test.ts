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
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { balanceOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

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
    // A charge a week ago (in the migration's first partition: 01:00 UTC of that day, whatever the
    // time of this run; now minus a week plus an hour fell into the next day from 23:00 UTC) and
    // one today.
    const weekAgo = Math.floor(Date.now() / DAY_MS) * DAY_MS - 7 * DAY_MS + 3600_000;
    await createClickBalanceHandler(stores.deps({ budgetTimeZone: 'UTC' }))(adEventsBatch([clickEvent(11, 1, { event_ts: weekAgo }), clickEvent(11, 1)]));
    const oldest = (await partitions()).find((p) => p.startsWith('ad_balance_histories_p')) as string;
    expect(await countRows(stores.pool, 'ad_balance_histories')).toBe(2);
    // Written back then, as a click of that day usually is (a day written into within the
    // retention is kept: the last test).
    await stores.pool.query(`UPDATE ${oldest} SET created_at = created_at - interval '7 days'`);

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

  test('a late click charged or voided in a day about to expire is still found by a replay of its record: the day is kept while its rows are recent', async () => {
    // A click dated 34 days before the handler's clock (late, but accepted: event times back to
    // 2020 are charged to their own day) lands in that day's partition, one day inside the 35-day
    // retention; two days later the day is past the retention, while the Kafka record, two days
    // old, can still be delivered again. The same for the void a compensation records for a late
    // click that has not arrived yet. The clock is the real one: rows carry the database's.
    const base = Date.now();
    const clock = (days: number) => stores.deps({ now: () => base + days * DAY_MS, budgetTimeZone: 'UTC' });
    const history = { retentionDays: 35, aheadDays: 2, expired: 'detach' } as const;
    await seedAdvertiser(stores.pool, 3, '10000');
    await seedCampaign(stores.pool, { campaignId: 31, advertiserId: 3, cpc: '10', dailyBudget: null });
    // The days around the late click's were created ahead back then, as every day is.
    await createBudgetResetHandler(clock(-35), history)({});
    const batch = adEventsBatch([clickEvent(31, 3, { event_ts: base - 34 * DAY_MS }), clickEvent(31, 3, { event_ts: base })], 4, 0);
    expect(await createClickBalanceHandler(clock(0))(batch)).toMatchObject({ charged: 2 });
    expect(await countRows(stores.pool, dayName(base - 34 * DAY_MS), 'advertiser_id = 3')).toBe(1);
    const refunded = clickEvent(31, 3, { event_ts: base - 34 * DAY_MS });
    expect(await createCompensationHandler(clock(0))(compensationBatch([compensationEvent(refunded)]))).toMatchObject({ voided: 1 });

    const reset = await createBudgetResetHandler(clock(2), history)({});
    const replay = await createClickBalanceHandler(clock(2))(batch);
    const lateRefunded = await createClickBalanceHandler(clock(2))(adEventsBatch([refunded], 4, 2));

    expect(replay).toMatchObject({ charged: 0, skipped: 2 });
    expect(lateRefunded).toMatchObject({ charged: 0, voided: 1 });
    expect(await balanceOf(stores.pool, 3)).toBe('9980');
    expect(await countRows(stores.pool, 'ad_balance_histories', 'advertiser_id = 3')).toBe(2);
    // Kept and reported until its rows were written a retention (and a day) ago; then it expires as usual.
    for (const table of ['ad_balance_histories', 'click_voids', 'duplicate_clicks']) {
      expect(await partitions(table)).toContain(dayName(base - 34 * DAY_MS, table));
    }
    expect(reset.partitionsKeptPending).toBe(3);
    await createBudgetResetHandler(clock(36), history)({});
    expect(await partitions()).toContain(dayName(base - 34 * DAY_MS));
    await createBudgetResetHandler(clock(37), history)({});
    expect(await partitions()).not.toContain(dayName(base - 34 * DAY_MS));
    expect(await countRows(stores.pool, `archived_${dayName(base - 34 * DAY_MS)}`)).toBe(1);
  });
});

describe('partition upkeep beside charges in flight', () => {
  /** Lock requests on `table` still waiting, of any mode. */
  async function waitingOn(table: string): Promise<number> {
    return countRows(stores.pool, 'pg_locks l JOIN pg_class c ON c.oid = l.relation', `NOT l.granted AND c.relname = '${table}'`);
  }
  async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
    for (let i = 0; i < 250; i += 1) {
      if (await condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  test('the daily upkeep never deadlocks with a charge: a charge locks the voids before the ledger, the upkeep the other way round', async () => {
    await seedAdvertiser(stores.pool, 41, '100000');
    await seedCampaign(stores.pool, { campaignId: 411, advertiserId: 41, cpc: '10', dailyBudget: null });
    // A reader of the ledger (a reconcile run, a report) holds it when the upkeep of a day whose
    // partitions do not exist yet starts: the upkeep waits for the ledger, a charge arriving
    // meanwhile takes the voids and queues behind it for the ledger.
    const reader = await stores.pool.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM ad_balance_histories');
      const ahead = Date.now() + 20 * DAY_MS;
      const upkeep = createBudgetResetHandler(stores.deps({ now: () => ahead, budgetTimeZone: 'UTC' }), { retentionDays: 35, aheadDays: 2, expired: 'detach' })(
        {},
      );
      await until(async () => (await waitingOn('ad_balance_histories')) === 1, 'the upkeep to wait for the ledger');
      const charge = createClickBalanceHandler(stores.deps({ budgetTimeZone: 'UTC' }))(adEventsBatch([clickEvent(411, 41), clickEvent(411, 41)]));
      await until(async () => (await waitingOn('ad_balance_histories')) === 2, 'the charge to queue behind the upkeep');
      await reader.query('COMMIT');

      const [upkept, charged] = await Promise.allSettled([upkeep, charge]);

      expect(charged).toMatchObject({ status: 'fulfilled', value: { charged: 2 } });
      expect(upkept).toMatchObject({ status: 'fulfilled' });
    } finally {
      reader.release();
    }
    expect(await balanceOf(stores.pool, 41)).toBe('99980');
  });

  test('behind a long reader the upkeep gives way after 2 s instead of holding charges behind it, and the next run catches up', async () => {
    await seedAdvertiser(stores.pool, 42, '100000');
    await seedCampaign(stores.pool, { campaignId: 421, advertiserId: 42, cpc: '10', dailyBudget: null });
    // 10:00 UTC of a day a month ahead: the next run, an hour later, is the same day.
    const ahead = Math.floor((Date.now() + 30 * DAY_MS) / DAY_MS) * DAY_MS + 10 * 3600_000;
    const history = { retentionDays: 35, aheadDays: 2, expired: 'detach' } as const;
    const reader = await stores.pool.connect();
    let first;
    try {
      // A reconciliation reads the voids in one snapshot for longer than the upkeep waits.
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM click_voids');
      const upkeep = createBudgetResetHandler(stores.deps({ now: () => ahead, budgetTimeZone: 'UTC' }), history)({});
      await until(async () => (await waitingOn('click_voids')) === 1, 'the upkeep to wait for the voids');
      // A charge queued behind the upkeep's lock request goes through once the upkeep gives up,
      // while the reader still holds the voids.
      const charged = await createClickBalanceHandler(stores.deps({ budgetTimeZone: 'UTC' }))(adEventsBatch([clickEvent(421, 42)]));
      expect(charged).toMatchObject({ charged: 1 });
      first = await upkeep;
    } finally {
      await reader.query('COMMIT');
      reader.release();
    }
    expect(first).toMatchObject({ partitionTablesPostponed: 1, partitionsCreated: 12 });
    expect(await partitions('click_voids')).not.toContain(dayName(ahead, 'click_voids'));
    const next = await createBudgetResetHandler(stores.deps({ now: () => ahead + 3600_000, budgetTimeZone: 'UTC' }), history)({});
    expect(next).toMatchObject({ partitionTablesPostponed: 0, partitionsCreated: 3 });
    expect(await partitions('click_voids')).toContain(dayName(ahead, 'click_voids'));
  });

  test('the four-argument upkeep (manual runs) is the per-table one for each table: the same 2 s limit behind a reader, the same work once free', async () => {
    const reader = await stores.pool.connect();
    const today = new Date(Date.now() + 60 * DAY_MS).toISOString().slice(0, 10);
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM duplicate_clicks');
      const started = performance.now();
      const manual = stores.pool.query("SELECT * FROM adstream_maintain_history($1::date, 2, 35, 'detach')", [today]).then(
        () => 'completed',
        (error: { code?: string }) => error.code,
      );
      const outcome = await Promise.race([manual, new Promise((resolve) => setTimeout(() => resolve('still waiting after 6 s'), 6000))]);
      // lock_not_available, from the per-table function's lock_timeout; nothing of the run is kept.
      expect(outcome).toBe('55P03');
      expect(performance.now() - started).toBeLessThan(4000);
      expect(await partitions()).not.toContain(`ad_balance_histories_p${today.replace(/-/g, '')}`);
    } finally {
      await reader.query('COMMIT');
      reader.release();
    }
    const { rows } = await stores.pool.query<{ action: string; partition_name: string }>("SELECT * FROM adstream_maintain_history($1::date, 2, 35, 'detach')", [
      today,
    ]);
    const perTable = ['ad_balance_histories', 'click_voids', 'duplicate_clicks', 'dead_letters', 'outbox'];
    // The tables in the upkeep's order, three days each.
    expect(rows.filter((r) => r.action === 'created').map((r) => r.partition_name.replace(/_p\d{8}$/, ''))).toEqual(perTable.flatMap((t) => [t, t, t]));
  });
});
