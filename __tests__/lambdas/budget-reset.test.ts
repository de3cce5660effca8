import { createBudgetResetHandler, budgetDayToOpen } from '../../lambdas/budget-reset/resume-campaigns';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { checkAgainst, campaignEventContract } from '../../contracts';
import { adEventsBatch, clickEvent } from './support/kafka-fixtures';
import {
  budgetDayOf,
  countRows,
  isolatedWorkerStores,
  seedAdvertiser,
  seedCampaign,
  startOfNextDay,
} from './support/test-database';

const stores = isolatedWorkerStores();

function deps() {
  return stores.deps();
}

async function statusOf(campaignId: number): Promise<{ status: string; paused_reason: string | null }> {
  const result = await stores.pool.query('SELECT status, paused_reason FROM campaigns WHERE campaign_id = $1', [campaignId]);
  return result.rows[0];
}

describe('budget-reset', () => {
  test('opens the budget day of the scheduled time in the budget time zone', () => {
    // 15:00Z is midnight in Seoul.
    expect(budgetDayToOpen({ scheduled_time: '2026-11-21T15:00:00Z' }, 'Asia/Seoul', 0)).toBe('2026-11-22');
    expect(budgetDayToOpen({ time: '2026-11-21T14:59:59Z' }, 'Asia/Seoul', 0)).toBe('2026-11-21');
    expect(budgetDayToOpen({ budget_day: '2026-12-01' }, 'Asia/Seoul', 0)).toBe('2026-12-01');
    expect(budgetDayToOpen({}, 'UTC', Date.UTC(2026, 0, 2, 3))).toBe('2026-01-02');
    expect(() => budgetDayToOpen({ scheduled_time: 'yesterday' }, 'Asia/Seoul', 0)).toThrow(/ISO-8601/);
    expect(() => budgetDayToOpen({ budget_day: '2026/12/01' }, 'Asia/Seoul', 0)).toThrow(/YYYY-MM-DD/);
  });

  test('resumes only campaigns paused for BUDGET_EXHAUSTED, and running it twice changes nothing', async () => {
    await seedAdvertiser(stores.pool, 1, '1000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, status: 'PAUSED', pausedReason: 'BUDGET_EXHAUSTED' });
    await seedCampaign(stores.pool, { campaignId: 12, advertiserId: 1, status: 'PAUSED', pausedReason: 'MANUAL' });
    await seedCampaign(stores.pool, { campaignId: 13, advertiserId: 1, status: 'ACTIVE' });
    await seedCampaign(stores.pool, { campaignId: 14, advertiserId: 1, status: 'DELETED' });
    const day = '2030-01-15';
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
    expect(resumed.rows[0].idempotency_key).toBe(`CAMPAIGN_RESUMED:11:${day}`);
    expect(resumed.rows[0].payload).toMatchObject({ event_id: 'campaign-resumed-11-20300115', status: 'ACTIVE', campaign_id: 11 });
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
    const reset = await createBudgetResetHandler(deps())({ scheduled_time: new Date(midnight).toISOString() });

    expect(reset).toMatchObject({ resumed: 1, budgetDay: budgetDayOf(midnight) });
    expect(await statusOf(21)).toEqual({ status: 'ACTIVE', paused_reason: null });
    await clicks(adEventsBatch(Array.from({ length: 4 }, () => clickEvent(21, 2, { event_ts: midnight + 60_000 }))));
    expect(await countRows(stores.pool, 'outbox', "kind = 'BUDGET_WARNING' AND payload->>'campaign_id' = '21'")).toBe(2);
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_PAUSED' AND payload->>'campaign_id' = '21'")).toBe(2);
  });

  test('a campaign that already exhausted the new day before the reset ran stays paused', async () => {
    await seedAdvertiser(stores.pool, 3, '100000');
    await seedCampaign(stores.pool, { campaignId: 31, advertiserId: 3, cpc: '600', dailyBudget: '1000' });
    const clicks = createClickBalanceHandler(deps());
    const midnight = startOfNextDay('Asia/Seoul', 0);
    await clicks(adEventsBatch(Array.from({ length: 2 }, () => clickEvent(31, 3)))); // today: exhausted, paused
    await clicks(adEventsBatch(Array.from({ length: 2 }, () => clickEvent(31, 3, { event_ts: midnight + 1000 }))), ); // tomorrow: exhausted too
    const reset = await createBudgetResetHandler(deps())({ scheduled_time: new Date(midnight).toISOString() });
    expect(reset.resumed).toBe(0);
    expect(await statusOf(31)).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
  });
});
