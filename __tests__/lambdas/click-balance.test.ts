import type Redis from 'ioredis';
import { createClickBalanceHandler, cpcKey, dailyBudgetKey, dailySpendKey } from '../../lambdas/click-balance/charge-clicks';
import { adEventsBatch, clickEvent, kafkaEvent, jsonBytes, withWireHeader } from './support/kafka-fixtures';
import {
  balanceOf,
  budgetDayOf,
  countRows,
  isolatedWorkerStores,
  seedAdvertiser,
  seedCampaign,
  startOfNextDay,
  testRedis,
} from './support/test-database';

const stores = isolatedWorkerStores();
const { prefix } = stores;
let redis: Redis;

function deps() {
  return stores.deps();
}

beforeAll(async () => {
  redis = testRedis(prefix);
});

afterAll(() => {
  redis.disconnect();
});

describe('click-balance', () => {
  test('the same batch delivered three times charges each click exactly once', async () => {
    await seedAdvertiser(stores.pool, 1, '10000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '120.50', dailyBudget: null });
    const clicks = Array.from({ length: 25 }, () => clickEvent(11, 1));
    const batch = adEventsBatch(clicks, 0, 1000);
    const handler = createClickBalanceHandler(deps());

    const first = await handler(batch);
    const second = await handler(batch);
    const third = await handler(batch);

    expect(first.charged).toBe(25);
    expect(second.charged).toBe(0);
    expect(third.charged).toBe(0);
    expect(third.skipped).toBe(25);
    // 10000 - 25 * 120.50, exact in NUMERIC.
    expect(await balanceOf(stores.pool, 1)).toBe('6987.50');
    expect(await countRows(stores.pool, 'ad_balance_histories', 'advertiser_id = 1')).toBe(25);
    const spend = await stores.pool.query('SELECT spend::text, clicks::int FROM campaign_daily_spend WHERE campaign_id = 11');
    expect(spend.rows).toEqual([{ spend: '3012.50', clicks: 25 }]);
  });

  test('uses a constant number of database round trips whatever the batch size', async () => {
    await seedAdvertiser(stores.pool, 2, '1000000');
    await seedCampaign(stores.pool, { campaignId: 21, advertiserId: 2, cpc: '10', dailyBudget: null });
    const handler = createClickBalanceHandler(deps());
    const small = await handler(adEventsBatch(Array.from({ length: 5 }, () => clickEvent(21, 2))));
    const large = await handler(adEventsBatch(Array.from({ length: 500 }, () => clickEvent(21, 2)), 1));
    expect(small.charged).toBe(5);
    expect(large.charged).toBe(500);
    expect(large.dbRoundTrips).toBe(small.dbRoundTrips);
    expect(large.dbRoundTrips).toBeLessThanOrEqual(5);
  });

  test('three partitions of one advertiser processed concurrently give the exact balance', async () => {
    await seedAdvertiser(stores.pool, 3, '100000');
    for (const id of [31, 32, 33]) await seedCampaign(stores.pool, { campaignId: id, advertiserId: 3, cpc: '0.37', dailyBudget: null });
    // Three Lambda containers: three handlers, three pools of one connection each.
    const handlers = [deps(), deps(), deps()].map(createClickBalanceHandler);
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      const batches = [31, 32, 33].map((campaign, partition) =>
        adEventsBatch(Array.from({ length: 100 }, () => clickEvent(campaign, 3)), partition, round * 100),
      );
      const results = await Promise.all(handlers.map((h, i) => h(batches[i])));
      expect(results.map((r) => r.charged)).toEqual([100, 100, 100]);
    }
    // 100000 - 1200 clicks * 0.37
    expect(await balanceOf(stores.pool, 3)).toBe('99556.00');
  });

  test('prices a click from Redis cpc:{campaign_id} when present, else from the database and refills Redis', async () => {
    await seedAdvertiser(stores.pool, 4, '1000');
    await seedCampaign(stores.pool, { campaignId: 41, advertiserId: 4, cpc: '50', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 42, advertiserId: 4, cpc: '70', dailyBudget: null });
    await redis.set(cpcKey(41), '45.25');
    const handler = createClickBalanceHandler(deps());
    await handler(adEventsBatch([clickEvent(41, 4), clickEvent(42, 4)]));
    expect(await balanceOf(stores.pool, 4)).toBe('884.75');
    expect(await redis.get(cpcKey(42))).toBe('70');
    const amounts = await stores.pool.query('SELECT campaign_id::int, amount::text FROM ad_balance_histories WHERE advertiser_id = 4 ORDER BY campaign_id');
    expect(amounts.rows).toEqual([
      { campaign_id: 41, amount: '45.25' },
      { campaign_id: 42, amount: '70' },
    ]);
  });

  test('a corrupted cache price is ignored and the database price charged', async () => {
    await seedAdvertiser(stores.pool, 5, '1000');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, cpc: '30', dailyBudget: null });
    await redis.set(cpcKey(51), '-5');
    await createClickBalanceHandler(deps())(adEventsBatch([clickEvent(51, 5)]));
    expect(await balanceOf(stores.pool, 5)).toBe('970');
  });

  test('impressions and conversions are counted and skipped, never charged', async () => {
    await seedAdvertiser(stores.pool, 6, '1000');
    await seedCampaign(stores.pool, { campaignId: 61, advertiserId: 6, cpc: '30', dailyBudget: null });
    const summary = await createClickBalanceHandler(deps())(
      adEventsBatch([clickEvent(61, 6, { event_type: 'IMPRESSION' }), clickEvent(61, 6, { event_type: 'CONVERSION', revenue_amount: '5000.00' })]),
    );
    expect(summary).toMatchObject({ records: 2, charged: 0, skipped: 2, deadLettered: 0 });
    expect(await balanceOf(stores.pool, 6)).toBe('1000');
  });

  test('decodes MSK-shaped events and values with the Confluent wire header', async () => {
    await seedAdvertiser(stores.pool, 7, '1000');
    await seedCampaign(stores.pool, { campaignId: 71, advertiserId: 7, cpc: '10', dailyBudget: null });
    const event = kafkaEvent(
      'ad-events',
      [{ partition: 2, values: [withWireHeader(jsonBytes(clickEvent(71, 7)), 100042)], keyOf: () => '71', headers: { source: 'flink' } }],
      'aws:kafka',
    );
    const summary = await createClickBalanceHandler(deps())(event);
    expect(summary.charged).toBe(1);
    expect(await balanceOf(stores.pool, 7)).toBe('990');
  });

  test('crossing 90% writes one BUDGET_WARNING and crossing 100% pauses the campaign once per day', async () => {
    await seedAdvertiser(stores.pool, 8, '100000');
    await seedCampaign(stores.pool, { campaignId: 81, advertiserId: 8, cpc: '100', dailyBudget: '1000' });
    const handler = createClickBalanceHandler(deps());
    const outbox = (kind: string) => countRows(stores.pool, 'outbox', "kind = $1 AND payload->>'campaign_id' = '81'", [kind]);

    await handler(adEventsBatch(Array.from({ length: 8 }, () => clickEvent(81, 8)))); // 800 = 80%
    expect(await outbox('BUDGET_WARNING')).toBe(0);
    expect(await redis.get(dailyBudgetKey(81))).toBe('1000');
    expect(await redis.get(dailySpendKey(81, budgetDayOf(Date.now())))).toBe('800');
    await handler(adEventsBatch([clickEvent(81, 8)])); // 900 = 90%
    expect(await outbox('BUDGET_WARNING')).toBe(1);
    await handler(adEventsBatch([clickEvent(81, 8, { event_id: 'click-81-tenth' })])); // 1000 = 100%
    await handler(adEventsBatch(Array.from({ length: 3 }, () => clickEvent(81, 8)))); // clicks in flight still charged
    expect(await outbox('BUDGET_WARNING')).toBe(1);
    expect(await outbox('CAMPAIGN_PAUSED')).toBe(1);
    const campaign = await stores.pool.query("SELECT status, paused_reason FROM campaigns WHERE campaign_id = 81");
    expect(campaign.rows[0]).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });

    const paused = await stores.pool.query("SELECT idempotency_key, payload FROM outbox WHERE kind = 'CAMPAIGN_PAUSED' AND payload->>'campaign_id' = '81'");
    const today = budgetDayOf(Date.now());
    expect(paused.rows[0].idempotency_key).toBe(`CAMPAIGN_PAUSED:81:${today}`);
    expect(paused.rows[0].payload).toMatchObject({
      event_id: `campaign-paused-81-${today.replace(/-/g, '')}`,
      event_type: 'CAMPAIGN_PAUSED',
      campaign_id: 81,
      advertiser_id: 8,
      status: 'PAUSED',
      reason: 'BUDGET_EXHAUSTED',
      product_id: 9081,
      placement: 'home_top',
      category: 'shoes',
      bid_price: '100.00',
    });

    // The next budget day has its own thresholds.
    const tomorrow = startOfNextDay();
    await handler(adEventsBatch(Array.from({ length: 9 }, () => clickEvent(81, 8, { event_ts: tomorrow }))));
    expect(await outbox('BUDGET_WARNING')).toBe(2);
    expect(await redis.get(dailySpendKey(81, budgetDayOf(tomorrow)))).toBe('900');
  });

  test('logs one summary line per invocation and emits EMF metrics, never the connection secret', async () => {
    await seedAdvertiser(stores.pool, 10, '100');
    await seedCampaign(stores.pool, { campaignId: 101, advertiserId: 10, cpc: '1', dailyBudget: null });
    const url = new URL(stores.db.url);
    url.password = 's3cr3t-password'; // trust auth ignores it; the logs must too
    const d = stores.deps({ databaseUrl: url.toString(), redisUrl: 'redis://127.0.0.1:6390' });
    const info = jest.spyOn(d.observability.logger, 'info');
    const warn = jest.spyOn(d.observability.logger, 'warn');
    const metric = jest.spyOn(d.observability.metrics, 'addMetric');
    const publish = jest.spyOn(d.observability.metrics, 'publishStoredMetrics');

    await createClickBalanceHandler(d)(adEventsBatch([clickEvent(101, 10), { base64: '%%' }, clickEvent(101, 10, { event_type: 'IMPRESSION' })]));

    const summaries = info.mock.calls.filter(([message]) => message === 'invocation summary');
    expect(summaries).toHaveLength(1);
    expect(summaries[0][1]).toMatchObject({ summary: { records: 3, charged: 1, skipped: 1, deadLettered: 1, refunded: 0 } });
    expect((summaries[0][1] as { summary: { elapsedMs: number } }).summary.elapsedMs).toBeGreaterThanOrEqual(0);
    expect(metric).toHaveBeenCalledWith('ClicksCharged', 'Count', 1);
    expect(metric).toHaveBeenCalledWith('RecordsDeadLettered', 'Count', 1);
    expect(publish).toHaveBeenCalledTimes(1);
    const logged = JSON.stringify([...info.mock.calls, ...warn.mock.calls]);
    expect(logged).toContain('Redis unavailable');
    expect(logged).not.toContain('s3cr3t');
  });

  test('a late click from a past day is charged to that day and fires no threshold', async () => {
    await seedAdvertiser(stores.pool, 9, '10000');
    await seedCampaign(stores.pool, { campaignId: 91, advertiserId: 9, cpc: '500', dailyBudget: '1000' });
    const twoDaysAgo = Date.now() - 2 * 24 * 3600 * 1000;
    await createClickBalanceHandler(deps())(adEventsBatch(Array.from({ length: 3 }, () => clickEvent(91, 9, { event_ts: twoDaysAgo }))));
    expect(await balanceOf(stores.pool, 9)).toBe('8500');
    expect(await countRows(stores.pool, 'outbox', "payload->>'campaign_id' = '91'")).toBe(0);
    const status = await stores.pool.query('SELECT status FROM campaigns WHERE campaign_id = 91');
    expect(status.rows[0].status).toBe('ACTIVE');
  });
});
