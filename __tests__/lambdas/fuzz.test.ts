import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { brokenAdEventValues, brokenCompensationValues, informationalOnlyBrokenClicks } from './support/fuzz';
import { balanceOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

const stores = isolatedWorkerStores();

function deps() {
  return stores.deps();
}

beforeAll(async () => {
  await seedAdvertiser(stores.pool, 1, '5000');
  await seedAdvertiser(stores.pool, 2, '5000');
  await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '10', dailyBudget: '100' });
});

const SEED = 20261121;
const BATCH = 500;

describe('fuzzed records', () => {
  test('4000 broken ad events never crash a batch, are all dead-lettered and never charge money', async () => {
    const values = brokenAdEventValues(SEED, 3800, () => clickEvent(11, 1));
    // Well-formed clicks that still must not be charged: unknown campaign, wrong advertiser.
    for (let i = 0; i < 100; i++) {
      values.splice(i * 38, 0, clickEvent(777_000 + i, 1));
      values.splice(i * 38 + 19, 0, clickEvent(11, 2));
    }
    const handler = createClickBalanceHandler(deps());
    let deadLettered = 0;
    for (let start = 0; start < values.length; start += BATCH) {
      const summary = await handler(adEventsBatch(values.slice(start, start + BATCH), 0, start));
      expect(summary.charged).toBe(0);
      deadLettered += summary.deadLettered;
    }
    expect(deadLettered).toBe(4000);
    expect(await balanceOf(stores.pool, 1)).toBe('5000');
    expect(await balanceOf(stores.pool, 2)).toBe('5000');
    expect(await countRows(stores.pool, 'ad_balance_histories')).toBe(0);
    expect(await countRows(stores.pool, 'outbox')).toBe(0);
    expect(await countRows(stores.pool, 'dead_letters', "handler = 'click-balance'")).toBe(4000);
    const reasons = await stores.pool.query("SELECT reason, count(*)::int AS n FROM dead_letters WHERE handler = 'click-balance' GROUP BY reason");
    const seen = new Set(reasons.rows.map((r) => r.reason));
    for (const reason of [
      'INVALID_JSON',
      'INVALID_UTF8',
      'INVALID_BASE64',
      'OVERSIZED',
      'MISSING_VALUE',
      'CONTRACT_VIOLATION',
      'ABSURD_TIMESTAMP',
      'UNKNOWN_CAMPAIGN',
      'ADVERTISER_MISMATCH',
    ]) {
      expect(seen).toContain(reason);
    }

    // Redelivery of a fuzzed batch records nothing new.
    await handler(adEventsBatch(values.slice(0, BATCH), 0, 0));
    expect(await countRows(stores.pool, 'dead_letters', "handler = 'click-balance'")).toBe(4000);
  });

  test('a valid click in the middle of a fuzzed batch is still charged exactly once', async () => {
    const values = brokenAdEventValues(SEED + 1, 200, () => clickEvent(11, 1));
    values.splice(100, 0, clickEvent(11, 1, { event_id: 'the-one-valid-click' }));
    const handler = createClickBalanceHandler(deps());
    const summary = await handler(adEventsBatch(values, 1, 0));
    await handler(adEventsBatch(values, 1, 0));
    expect(summary).toMatchObject({ records: 201, charged: 1, deadLettered: 200 });
    expect(await balanceOf(stores.pool, 1)).toBe('4990');
  });

  test('500 clicks broken only in informational fields are all charged, exactly once', async () => {
    await seedAdvertiser(stores.pool, 3, '100000');
    await seedCampaign(stores.pool, { campaignId: 31, advertiserId: 3, cpc: '2.5', dailyBudget: null });
    const values = informationalOnlyBrokenClicks(SEED + 3, 500, () => clickEvent(31, 3));
    const handler = createClickBalanceHandler(deps());
    const summary = await handler(adEventsBatch(values, 3, 0));
    await handler(adEventsBatch(values, 3, 0));
    expect(summary).toMatchObject({ records: 500, charged: 500, deadLettered: 0 });
    expect(await balanceOf(stores.pool, 3)).toBe('98750.0');
  });

  test('1500 broken compensations never crash a batch and never refund money', async () => {
    const click = clickEvent(11, 1, { event_id: 'charged-click' });
    await createClickBalanceHandler(deps())(adEventsBatch([click], 2, 0));
    const before = await balanceOf(stores.pool, 1);
    const values = brokenCompensationValues(SEED + 2, 1500, (i) =>
      compensationEvent(click, { compensation_id: `fuzz-${i}`, campaign_id: i % 7 === 0 ? 424242 : 11 }),
    );
    const handler = createCompensationHandler(deps());
    let deadLettered = 0;
    for (let start = 0; start < values.length; start += BATCH) {
      const summary = await handler(compensationBatch(values.slice(start, start + BATCH), 0, start));
      expect(summary.refunded + summary.voided).toBe(0);
      deadLettered += summary.deadLettered;
    }
    expect(deadLettered).toBe(1500);
    expect(await balanceOf(stores.pool, 1)).toBe(before);
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'REFUND'")).toBe(0);
    expect(await countRows(stores.pool, 'click_voids')).toBe(0);
  });
});
