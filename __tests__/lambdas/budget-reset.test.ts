import { createBudgetResetHandler, budgetDayToOpen, resetDays } from '../../lambdas/budget-reset/resume-campaigns';
import { BudgetResetRequestError, DatabaseUnavailableError } from '../../lambdas/shared/errors';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { checkAgainst, campaignEventContract } from '../../contracts';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { budgetDayOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign, startOfNextDay } from './support/test-database';

const stores = isolatedWorkerStores();

// Each test is a timeline of its own on the file's database: the days one test's resets opened
// (tomorrow, for most) are not open in the next one, whose clock may read today.
afterEach(async () => {
  await stores.pool.query('DELETE FROM budget_days_opened');
});

function deps() {
  return stores.deps();
}

async function statusOf(campaignId: number): Promise<{ status: string; paused_reason: string | null }> {
  const result = await stores.pool.query('SELECT status, paused_reason FROM campaigns WHERE campaign_id = $1', [campaignId]);
  return result.rows[0];
}

/**
 * Charges `clicks` by a clock reading `chargeAt` while a reset scheduled at `midnight` runs by a
 * clock reading `resetAt`: a trigger holds the batch inside its charge statement (0.4 s on the
 * day spend of the clicks' campaign), and the reset starts meanwhile.
 */
async function resetDuringCharge(clicks: ReadonlyArray<ReturnType<typeof clickEvent>>, chargeAt: number, resetAt: number, midnight: number): Promise<void> {
  await stores.pool.query(`
    CREATE FUNCTION slow_spend() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.campaign_id = ${Number(clicks[0].campaign_id)} THEN PERFORM pg_sleep(0.4); END IF; RETURN NEW; END $$;
    CREATE TRIGGER slow_spend BEFORE INSERT ON campaign_daily_spend FOR EACH ROW EXECUTE FUNCTION slow_spend();`);
  try {
    const charging = createClickBalanceHandler(stores.deps({ now: () => chargeAt }))(adEventsBatch(clicks));
    await new Promise((resolve) => setTimeout(resolve, 150));
    await createBudgetResetHandler(stores.deps({ now: () => resetAt }))({ scheduled_time: new Date(midnight).toISOString() });
    await charging;
  } finally {
    await stores.pool.query('DROP TRIGGER slow_spend ON campaign_daily_spend; DROP FUNCTION slow_spend();');
  }
}

describe('budget-reset', () => {
  test('opens the budget day of the scheduled time in the budget time zone', () => {
    // 15:00Z is midnight in Seoul.
    const now = Date.parse('2026-12-01T16:00:00Z'); // 2026-12-02 01:00 in Seoul
    // 15:00Z is midnight in Seoul.
    expect(budgetDayToOpen({ scheduled_time: '2026-11-21T15:00:00Z' }, 'Asia/Seoul', now)).toBe('2026-11-22');
    expect(budgetDayToOpen({ time: '2026-11-21T14:59:59Z' }, 'Asia/Seoul', now)).toBe('2026-11-21');
    expect(budgetDayToOpen({ budget_day: '2026-12-01' }, 'Asia/Seoul', now)).toBe('2026-12-01');
    expect(budgetDayToOpen({}, 'UTC', Date.UTC(2026, 0, 2, 3))).toBe('2026-01-02');
    expect(() => budgetDayToOpen({ scheduled_time: 'yesterday' }, 'Asia/Seoul', now)).toThrow(/ISO-8601/);
    expect(() => budgetDayToOpen({ budget_day: '2026/12/01' }, 'Asia/Seoul', now)).toThrow(/YYYY-MM-DD/);
    expect(() => budgetDayToOpen({ budget_day: '2026-02-30' }, 'Asia/Seoul', now)).toThrow(BudgetResetRequestError);
    expect(() => budgetDayToOpen({ budget_day: '2026-12-03' }, 'Asia/Seoul', now)).toThrow(/has not begun.*current budget day is 2026-12-02/);
    expect(() => budgetDayToOpen({ scheduled_time: '2026-12-02T15:00:00Z' }, 'Asia/Seoul', now)).toThrow(BudgetResetRequestError);
    // A schedule firing a few seconds early by this clock still opens its day, which counts as begun.
    const justBeforeMidnight = Date.parse('2026-12-02T14:59:58Z');
    expect(resetDays({ scheduled_time: '2026-12-02T15:00:00Z' }, 'Asia/Seoul', justBeforeMidnight)).toEqual({
      budgetDay: '2026-12-03',
      currentDay: '2026-12-03',
      pastFirstHour: false,
    });
    expect(() => resetDays({ budget_day: '2026-12-03' }, 'Asia/Seoul', justBeforeMidnight)).toThrow(BudgetResetRequestError);
  });

  test('resumes only campaigns paused for BUDGET_EXHAUSTED, and running it twice changes nothing', async () => {
    await seedAdvertiser(stores.pool, 1, '1000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    await seedCampaign(stores.pool, { campaignId: 12, advertiserId: 1, status: 'PAUSED', pausedReason: 'MANUAL' });
    await seedCampaign(stores.pool, { campaignId: 13, advertiserId: 1, status: 'ACTIVE' });
    await seedCampaign(stores.pool, { campaignId: 14, advertiserId: 1, status: 'DELETED' });
    const day = '2026-01-15';
    const handler = createBudgetResetHandler(deps());

    const first = await handler({ budget_day: day });
    const second = await handler({ budget_day: day });

    expect(first).toMatchObject({ resumed: 1, outboxWritten: 1, budgetDay: day });
    expect(second).toMatchObject({ resumed: 0, outboxWritten: 0 });
    expect(await statusOf(11)).toEqual({ status: 'ACTIVE', paused_reason: null });
    expect(await statusOf(12)).toEqual({ status: 'PAUSED', paused_reason: 'MANUAL' });
    expect(await statusOf(13)).toEqual({ status: 'ACTIVE', paused_reason: null });
    expect(await statusOf(14)).toEqual({ status: 'DELETED', paused_reason: null });
    const resumed = await stores.pool.query("SELECT idempotency_key, payload FROM outbox WHERE kind = 'CAMPAIGN_RESUMED'");
    expect(resumed.rows).toHaveLength(1);
    expect(resumed.rows[0].idempotency_key).toBe(`CAMPAIGN_RESUMED:11:${day}:1`);
    expect(resumed.rows[0].payload).toMatchObject({ event_id: 'campaign-resumed-11-20260115-1', status: 'ACTIVE', campaign_id: 11 });
    expect(checkAgainst(campaignEventContract, resumed.rows[0].payload).ok).toBe(true);
  });

  test('after a budget-exhausted day the reset resumes the campaign and the new day warns afresh', async () => {
    await seedAdvertiser(stores.pool, 2, '100000');
    await seedCampaign(stores.pool, { campaignId: 21, advertiserId: 2, cpc: '250', dailyBudget: '1000' });
    const clicks = createClickBalanceHandler(deps());
    await clicks(adEventsBatch(Array.from({ length: 4 }, () => clickEvent(21, 2))));
    expect(await statusOf(21)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
    const paused = await stores.pool.query("SELECT payload FROM outbox WHERE kind = 'CAMPAIGN_PAUSED' AND payload->>'campaign_id' = '21'");
    expect(checkAgainst(campaignEventContract, paused.rows[0].payload).ok).toBe(true);

    const midnight = startOfNextDay('Asia/Seoul', 0);
    const atMidnight = () => stores.deps({ now: () => midnight + 1000 });
    const reset = await createBudgetResetHandler(atMidnight())({ scheduled_time: new Date(midnight).toISOString() });

    expect(reset).toMatchObject({ resumed: 1, budgetDay: budgetDayOf(midnight) });
    expect(await statusOf(21)).toEqual({ status: 'ACTIVE', paused_reason: null });
    const newDay = createClickBalanceHandler(stores.deps({ now: () => midnight + 120_000 }));
    await newDay(adEventsBatch(Array.from({ length: 4 }, () => clickEvent(21, 2, { event_ts: midnight + 60_000 }))));
    expect(await countRows(stores.pool, 'outbox', "kind = 'BUDGET_WARNING' AND payload->>'campaign_id' = '21'")).toBe(2);
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_PAUSED' AND payload->>'campaign_id' = '21'")).toBe(2);
  });

  test('a campaign that already exhausted the new day before the reset ran stays paused', async () => {
    await seedAdvertiser(stores.pool, 3, '100000');
    await seedCampaign(stores.pool, { campaignId: 31, advertiserId: 3, cpc: '600', dailyBudget: '1000' });
    const clicks = createClickBalanceHandler(deps());
    const midnight = startOfNextDay('Asia/Seoul', 0);
    await clicks(adEventsBatch(Array.from({ length: 2 }, () => clickEvent(31, 3)))); // today: exhausted, paused
    await clicks(adEventsBatch(Array.from({ length: 2 }, () => clickEvent(31, 3, { event_ts: midnight + 1000 })))); // tomorrow: exhausted too
    const reset = await createBudgetResetHandler(stores.deps({ now: () => midnight + 1000 }))({ scheduled_time: new Date(midnight).toISOString() });
    expect(reset.resumed).toBe(0);
    expect(await statusOf(31)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
  });

  test('a reset for another day than the current one never resumes a campaign exhausted today', async () => {
    await seedAdvertiser(stores.pool, 4, '100000');
    await seedCampaign(stores.pool, { campaignId: 41, advertiserId: 4, cpc: '500', dailyBudget: '1000' });
    await createClickBalanceHandler(deps())(adEventsBatch(Array.from({ length: 2 }, () => clickEvent(41, 4))));
    expect(await statusOf(41)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
    const yesterday = budgetDayOf(Date.now() - 24 * 3600 * 1000);
    const late = await createBudgetResetHandler(deps())({ budget_day: yesterday });
    const early = await createBudgetResetHandler(deps())({ scheduled_time: new Date(Date.now() - 24 * 3600 * 1000).toISOString() });
    expect([late.resumed, early.resumed]).toEqual([0, 0]);
    expect(await statusOf(41)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
  });

  test('a future or impossible day is refused with a clear error and changes nothing', async () => {
    await seedAdvertiser(stores.pool, 5, '1000');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    const handler = createBudgetResetHandler(deps());
    const tomorrow = budgetDayOf(startOfNextDay());
    await expect(handler({ budget_day: tomorrow })).rejects.toThrow(BudgetResetRequestError);
    await expect(handler({ budget_day: tomorrow })).rejects.toThrow(/has not begun/);
    const impossible = handler({ budget_day: '2026-02-30' });
    await expect(impossible).rejects.toThrow(BudgetResetRequestError);
    await expect(handler({ budget_day: '2026-02-30' })).rejects.not.toBeInstanceOf(DatabaseUnavailableError);
    expect(await statusOf(51)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
  });

  test('a reset racing a batch that exhausts the new day leaves the campaign paused', async () => {
    await seedAdvertiser(stores.pool, 6, '100000');
    await seedCampaign(stores.pool, { campaignId: 61, advertiserId: 6, cpc: '100', dailyBudget: '100', status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    // The batch's charge statement takes a while, and the reset starts while it runs.
    const clicks = Array.from({ length: 6 }, () => clickEvent(61, 6, { event_ts: midnight + 1000 }));
    await resetDuringCharge(clicks, midnight + 5000, midnight + 5000, midnight);
    expect(await statusOf(61)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
  });

  test('at midnight the reset pauses an ACTIVE campaign whose clicks dated ahead already exhausted the new day', async () => {
    await seedAdvertiser(stores.pool, 7, '100000');
    await seedCampaign(stores.pool, { campaignId: 71, advertiserId: 7, cpc: '100', dailyBudget: '200' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    await createClickBalanceHandler(deps())(adEventsBatch(Array.from({ length: 3 }, () => clickEvent(71, 7, { event_ts: midnight + 1000 }))));
    expect(await statusOf(71)).toEqual({ status: 'ACTIVE', paused_reason: null });
    const reset = await createBudgetResetHandler(stores.deps({ now: () => midnight + 2000 }))({ scheduled_time: new Date(midnight).toISOString() });
    expect(reset.paused).toBe(1);
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_PAUSED' AND payload->>'campaign_id' = '71'")).toBe(1);
    expect(await statusOf(71)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
  });

  test('a batch whose clock still reads the old day, charged after the reset opened the new day, does not pause the campaign through it', async () => {
    await seedAdvertiser(stores.pool, 8, '100000');
    await seedCampaign(stores.pool, { campaignId: 81, advertiserId: 8, cpc: '100', dailyBudget: '200' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    // The schedule fired at midnight; this batch's invocation read its clock just before it.
    const reset = await createBudgetResetHandler(stores.deps({ now: () => midnight + 1000 }))({ scheduled_time: new Date(midnight).toISOString() });
    expect(reset.budgetDay).toBe(budgetDayOf(midnight));
    await createClickBalanceHandler(stores.deps({ now: () => midnight - 500 }))(
      adEventsBatch(Array.from({ length: 2 }, () => clickEvent(81, 8, { event_ts: midnight - 2000 }))),
    );
    // The old day's spend reached its budget, but that day is over: the new day has spent nothing.
    expect(await statusOf(81)).toEqual({ status: 'ACTIVE', paused_reason: null });
    expect(
      await countRows(stores.pool, 'campaign_daily_spend', 'campaign_id = 81 AND spend_date = $1::date AND spend = 200', [budgetDayOf(midnight - 2000)]),
    ).toBe(1);
  });

  test('a batch of the old day still charging while the reset runs does not leave the campaign paused through the new day', async () => {
    await seedAdvertiser(stores.pool, 9, '100000');
    await seedCampaign(stores.pool, { campaignId: 91, advertiserId: 9, cpc: '100', dailyBudget: '200' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    // The batch's clock reads the last second of the old day; it exhausts that day's budget.
    const clicks = Array.from({ length: 2 }, () => clickEvent(91, 9, { event_ts: midnight - 2000 }));
    await resetDuringCharge(clicks, midnight - 1000, midnight + 1000, midnight);
    expect(await statusOf(91)).toEqual({ status: 'ACTIVE', paused_reason: null });
    // The batch either paused first and the reset resumed after it, or it waited and paused nothing.
    const changes = await stores.pool.query(
      "SELECT kind FROM outbox WHERE payload->>'campaign_id' = '91' AND kind IN ('CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED') ORDER BY id",
    );
    expect([[], ['CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED']]).toContainEqual(changes.rows.map((r) => r.kind));
  });

  test('the same reset delivered again later that day resumes nothing: a refund under the budget still waits for the next day', async () => {
    await seedAdvertiser(stores.pool, 10, '100000');
    await seedCampaign(stores.pool, { campaignId: 101, advertiserId: 10, cpc: '100', dailyBudget: '200' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    const schedule = { scheduled_time: new Date(midnight).toISOString() };
    const first = await createBudgetResetHandler(stores.deps({ now: () => midnight + 1000 }))(schedule);
    expect(first.budgetDay).toBe(budgetDayOf(midnight));
    const clicks = Array.from({ length: 2 }, () => clickEvent(101, 10, { event_ts: midnight + 60_000 }));
    await createClickBalanceHandler(stores.deps({ now: () => midnight + 61_000 }))(adEventsBatch(clicks));
    expect(await statusOf(101)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
    await createCompensationHandler(stores.deps({ now: () => midnight + 62_000 }))(compensationBatch([compensationEvent(clicks[1])]));
    expect(await countRows(stores.pool, 'campaign_daily_spend', 'campaign_id = 101 AND spend = 100')).toBe(1);
    // EventBridge delivers at least once (and Lambda retries a run that threw after its commit).
    const again = await createBudgetResetHandler(stores.deps({ now: () => midnight + 180_000 }))(schedule);
    expect(again).toMatchObject({ budgetDay: budgetDayOf(midnight), resumed: 0, paused: 0, outboxWritten: 0 });
    expect(await statusOf(101)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
  });

  test('the first scheduled run after the upgrade to hourly resets, past the first hour of its day, takes that day as opened by the daily schedule and resumes nothing', async () => {
    // Before migration 1765000000000 a reset ran once a day, at midnight, and kept no record of the
    // days it opened: the first hourly run of the upgraded stack finds budget_days_opened empty.
    await seedAdvertiser(stores.pool, 15, '100000');
    await seedCampaign(stores.pool, { campaignId: 151, advertiserId: 15, cpc: '100', dailyBudget: '200' });
    await seedCampaign(stores.pool, { campaignId: 152, advertiserId: 15, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    const day = budgetDayOf(midnight);
    // That day, after the daily schedule's midnight run: campaign 151 exhausts its budget and is
    // paused, then a refund brings its spend back under the budget (a refund never resumes one).
    const clicks = Array.from({ length: 2 }, () => clickEvent(151, 15, { event_ts: midnight + 3600_000 }));
    await createClickBalanceHandler(stores.deps({ now: () => midnight + 3601_000 }))(adEventsBatch(clicks));
    await createCompensationHandler(stores.deps({ now: () => midnight + 3602_000 }))(compensationBatch([compensationEvent(clicks[1])]));
    expect(await statusOf(151)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });

    const twoPm = midnight + 14 * 3600_000;
    const first = await createBudgetResetHandler(stores.deps({ now: () => twoPm + 1000 }))({ scheduled_time: new Date(twoPm).toISOString() });

    expect(first).toMatchObject({ budgetDay: day, resumed: 0, paused: 0, outboxWritten: 0, alreadyOpened: true });
    expect(await statusOf(151)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
    // 152 was paused before that day: the midnight run it missed is not known to have resumed it,
    // and it stays paused until the next day opens, as under the daily schedule.
    expect(await statusOf(152)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
    expect((await stores.pool.query('SELECT budget_day::text AS day FROM budget_days_opened')).rows).toEqual([{ day }]);
    const nextMidnight = startOfNextDay('Asia/Seoul', 0, midnight + 3600_000);
    const next = await createBudgetResetHandler(stores.deps({ now: () => nextMidnight + 1000 }))({ scheduled_time: new Date(nextMidnight).toISOString() });
    expect(next).toMatchObject({ budgetDay: budgetDayOf(nextMidnight), alreadyOpened: false });
    expect([await statusOf(151), await statusOf(152)]).toEqual([
      { status: 'ACTIVE', paused_reason: null },
      { status: 'ACTIVE', paused_reason: null },
    ]);
  });

  test('on a database that never opened a day, the run of the first hour of a day opens it, as do manual runs (a budget_day or an empty event)', async () => {
    await seedAdvertiser(stores.pool, 16, '1000');
    await seedCampaign(stores.pool, { campaignId: 161, advertiserId: 16, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    const halfPast = midnight + 30 * 60_000;
    const atHalfPast = await createBudgetResetHandler(stores.deps({ now: () => halfPast + 1000 }))({ scheduled_time: new Date(halfPast).toISOString() });
    expect(atHalfPast).toMatchObject({ budgetDay: budgetDayOf(midnight), resumed: 1, alreadyOpened: false });
    await stores.pool.query('DELETE FROM budget_days_opened');
    await stores.pool.query("UPDATE campaigns SET status = 'PAUSED', paused_reason = 'BUDGET_EXHAUSTED' WHERE campaign_id = 161");
    const manual = await createBudgetResetHandler(stores.deps({ now: () => midnight + 14 * 3600_000 }))({ budget_day: budgetDayOf(midnight) });
    expect(manual).toMatchObject({ resumed: 1, alreadyOpened: false });
    await stores.pool.query('DELETE FROM budget_days_opened');
    await stores.pool.query("UPDATE campaigns SET status = 'PAUSED', paused_reason = 'BUDGET_EXHAUSTED' WHERE campaign_id = 161");
    const unscheduled = await createBudgetResetHandler(stores.deps({ now: () => midnight + 14 * 3600_000 }))({});
    expect(unscheduled).toMatchObject({ budgetDay: budgetDayOf(midnight), resumed: 1, alreadyOpened: false });
  });

  test('in a zone whose midnight DST skips, the first run of the day (01:00) opens it and the next hour changes nothing', async () => {
    await seedAdvertiser(stores.pool, 11, '1000');
    await seedCampaign(stores.pool, { campaignId: 111, advertiserId: 11, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    // Havana moves its clocks from 00:00 to 01:00 on 2026-03-08: no midnight that day for the schedule.
    const zone = 'America/Havana';
    const oneAm = Date.parse('2026-03-08T05:00:00Z');
    expect([budgetDayOf(oneAm - 1, zone), budgetDayOf(oneAm, zone)]).toEqual(['2026-03-07', '2026-03-08']);
    const run = (at: number) =>
      createBudgetResetHandler(stores.deps({ now: () => at + 1000, budgetTimeZone: zone }))({ scheduled_time: new Date(at).toISOString() });
    expect(await run(oneAm)).toMatchObject({ budgetDay: '2026-03-08', alreadyOpened: false });
    expect(await statusOf(111)).toEqual({ status: 'ACTIVE', paused_reason: null });
    expect(await run(oneAm + 3600_000)).toMatchObject({ budgetDay: '2026-03-08', resumed: 0, paused: 0, alreadyOpened: true });
  });

  test('a resume announced after a pause it undoes is stamped later, even when the reset began before the pausing batch', async () => {
    await seedAdvertiser(stores.pool, 12, '100000');
    await seedAdvertiser(stores.pool, 13, '100000');
    await seedCampaign(stores.pool, { campaignId: 121, advertiserId: 12, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    await seedCampaign(stores.pool, { campaignId: 131, advertiserId: 13, cpc: '100', dailyBudget: '200' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    // Another batch holds advertiser 12: the reset begins, then waits for it in its advertiser locks.
    const holder = await stores.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM advertisers WHERE advertiser_id = 12 FOR UPDATE');
      const resetting = createBudgetResetHandler(stores.deps({ now: () => midnight + 1000 }))({ scheduled_time: new Date(midnight).toISOString() });
      const waiting = async () => countRows(stores.pool, 'pg_locks l JOIN pg_class c ON c.oid = l.relation', "NOT l.granted AND c.relname = 'advertisers'");
      for (let i = 0; i < 100 && (await waiting()) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      // Meanwhile a batch whose clock reads the old day exhausts campaign 131 of that day and pauses it.
      await createClickBalanceHandler(stores.deps({ now: () => midnight - 1000 }))(
        adEventsBatch(Array.from({ length: 2 }, () => clickEvent(131, 13, { event_ts: midnight - 2000 }))),
      );
      await holder.query('COMMIT');
      await resetting;
    } finally {
      holder.release();
    }
    expect(await statusOf(131)).toEqual({ status: 'ACTIVE', paused_reason: null });
    const events = await stores.pool.query<{ kind: string; event_ts: string }>(
      "SELECT kind, payload->>'event_ts' AS event_ts FROM outbox WHERE payload->>'campaign_id' = '131' AND kind <> 'BUDGET_WARNING' ORDER BY id",
    );
    expect(events.rows.map((r) => r.kind)).toEqual(['CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED']);
    // The ranking keeps the campaign event with the latest event_ts: the resume must be the later one.
    expect(BigInt(events.rows[1].event_ts)).toBeGreaterThan(BigInt(events.rows[0].event_ts));
  });

  test('the same schedule delivered twice at once opens the day once and announces each resume once', async () => {
    await seedAdvertiser(stores.pool, 14, '1000');
    await seedCampaign(stores.pool, { campaignId: 141, advertiserId: 14, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    const midnight = startOfNextDay('Asia/Seoul', 0);
    const schedule = { scheduled_time: new Date(midnight).toISOString() };
    const runs = await Promise.all([1000, 1500].map((ms) => createBudgetResetHandler(stores.deps({ now: () => midnight + ms }))(schedule)));
    expect(runs.map((r) => r.alreadyOpened).sort()).toEqual([false, true]);
    expect(await statusOf(141)).toEqual({ status: 'ACTIVE', paused_reason: null });
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_RESUMED' AND payload->>'campaign_id' = '141'")).toBe(1);
  });
});
