import type Redis from 'ioredis';
import { BUDGET_MIRROR_REFRESH_MS, createClickBalanceHandler, dailyBudgetKey, dailySpendKey } from '../../lambdas/click-balance/charge-clicks';
import { campaignStatusOutboxColumns } from '../../lambdas/shared/outbox';
import { adEventsBatch, clickEvent, kafkaEvent, jsonBytes, withWireHeader } from './support/kafka-fixtures';
import { balanceOf, budgetDayOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign, startOfNextDay, testRedis } from './support/test-database';

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
    const large = await handler(
      adEventsBatch(
        Array.from({ length: 500 }, () => clickEvent(21, 2)),
        1,
      ),
    );
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
        adEventsBatch(
          Array.from({ length: 100 }, () => clickEvent(campaign, 3)),
          partition,
          round * 100,
        ),
      );
      const results = await Promise.all(handlers.map((h, i) => h(batches[i])));
      expect(results.map((r) => r.charged)).toEqual([100, 100, 100]);
    }
    // 100000 - 1200 clicks * 0.37
    expect(await balanceOf(stores.pool, 3)).toBe('99556.00');
  });

  test('charges the database price whatever Redis holds under cpc:{campaign_id}', async () => {
    await seedAdvertiser(stores.pool, 4, '1000');
    for (const id of [41, 42, 43]) await seedCampaign(stores.pool, { campaignId: id, advertiserId: 4, cpc: '100', dailyBudget: null });
    await redis.set('cpc:41', '80');
    await redis.set('cpc:42', '0.000001');
    await redis.set('cpc:43', '9999999');
    await createClickBalanceHandler(deps())(adEventsBatch([clickEvent(41, 4), clickEvent(42, 4), clickEvent(43, 4)]));
    expect(await balanceOf(stores.pool, 4)).toBe('700');
    const amounts = await stores.pool.query('SELECT campaign_id::int, amount::text FROM ad_balance_histories WHERE advertiser_id = 4 ORDER BY campaign_id');
    expect(amounts.rows).toEqual([
      { campaign_id: 41, amount: '100' },
      { campaign_id: 42, amount: '100' },
      { campaign_id: 43, amount: '100' },
    ]);
    // A price change applies to the next batch, not after a cache TTL.
    await stores.pool.query("UPDATE campaigns SET cpc = '90' WHERE campaign_id = 41");
    await createClickBalanceHandler(deps())(adEventsBatch([clickEvent(41, 4)], 1));
    expect(await balanceOf(stores.pool, 4)).toBe('610');
  });

  test('a NUMERIC price with trailing zeros beyond 6 fraction digits is charged, and a real 7th digit is refused by the schema', async () => {
    await seedAdvertiser(stores.pool, 5, '1000');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, cpc: '100.0000000', dailyBudget: null });
    await stores.pool.query('UPDATE campaigns SET cpc = cpc * 1.1500000 WHERE campaign_id = 51'); // 115.000000000000
    const summary = await createClickBalanceHandler(deps())(adEventsBatch([clickEvent(51, 5), clickEvent(51, 5)]));
    expect(summary).toMatchObject({ charged: 2, deadLettered: 0 });
    expect(await balanceOf(stores.pool, 5)).toBe('770');
    await expect(stores.pool.query('UPDATE campaigns SET cpc = 100 / 3.0 WHERE campaign_id = 51')).rejects.toThrow(/campaigns_cpc_micro_units/);
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

  test('an unchanged budget mirror is rewritten once a minute, a changed one by the next batch; spend mirrors by every batch', async () => {
    await seedAdvertiser(stores.pool, 957, '100000');
    await seedCampaign(stores.pool, { campaignId: 9571, advertiserId: 957, cpc: '10', dailyBudget: '5000' });
    let clock = Date.now();
    const handler = createClickBalanceHandler(stores.deps({ now: () => clock }));
    const day = budgetDayOf(clock);

    await handler(adEventsBatch([clickEvent(9571, 957)]));
    expect(await redis.get(dailyBudgetKey(9571))).toBe('5000');
    // Lost (a Redis restart, an eviction): not rewritten by the next batch within the minute …
    await redis.del(dailyBudgetKey(9571), dailySpendKey(9571, day));
    clock += BUDGET_MIRROR_REFRESH_MS - 1;
    await handler(adEventsBatch([clickEvent(9571, 957)]));
    expect(await redis.get(dailyBudgetKey(9571))).toBeNull();
    expect(await redis.get(dailySpendKey(9571, day))).toBe('20');
    // … but by the first one after it.
    clock += 1;
    await handler(adEventsBatch([clickEvent(9571, 957)]));
    expect(await redis.get(dailyBudgetKey(9571))).toBe('5000');
    // A changed budget is mirrored by the next batch, whenever it comes.
    await stores.pool.query('UPDATE campaigns SET daily_budget = 7000 WHERE campaign_id = 9571');
    clock += 1;
    await handler(adEventsBatch([clickEvent(9571, 957)]));
    expect(await redis.get(dailyBudgetKey(9571))).toBe('7000');
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
    const campaign = await stores.pool.query('SELECT status, paused_reason FROM campaigns WHERE campaign_id = 81');
    expect(campaign.rows[0]).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });

    const paused = await stores.pool.query("SELECT idempotency_key, payload FROM outbox WHERE kind = 'CAMPAIGN_PAUSED' AND payload->>'campaign_id' = '81'");
    const today = budgetDayOf(Date.now());
    expect(paused.rows[0].idempotency_key).toBe(`CAMPAIGN_PAUSED:81:${today}:1`);
    expect(paused.rows[0].payload).toMatchObject({
      event_id: `campaign-paused-81-${today.replace(/-/g, '')}-1`,
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

    // Clicks dated in the next budget day (ad-server clock skew) count for that day and fire
    // nothing now: its thresholds are decided once it is the current day.
    const tomorrow = startOfNextDay();
    await handler(adEventsBatch(Array.from({ length: 9 }, () => clickEvent(81, 8, { event_ts: tomorrow }))));
    expect(await outbox('BUDGET_WARNING')).toBe(1);
    expect(await redis.get(dailySpendKey(81, budgetDayOf(tomorrow)))).toBe('900');
  });

  test('one batch crossing both 90% and 100% announces the warning, then the pause, once each', async () => {
    await seedAdvertiser(stores.pool, 18, '100000');
    await seedCampaign(stores.pool, { campaignId: 181, advertiserId: 18, cpc: '100', dailyBudget: '1000' });
    const batch = adEventsBatch(Array.from({ length: 10 }, () => clickEvent(181, 18)));
    await createClickBalanceHandler(deps())(batch);
    await createClickBalanceHandler(deps())(batch); // redelivered
    const rows = await stores.pool.query<{ kind: string }>("SELECT kind FROM outbox WHERE payload->>'campaign_id' = '181' ORDER BY id");
    expect(rows.rows.map((r) => r.kind)).toEqual(['BUDGET_WARNING', 'CAMPAIGN_PAUSED']);
  });

  test('clicks dated in the next budget day never pause a campaign that is serving today', async () => {
    await seedAdvertiser(stores.pool, 13, '100000');
    await seedCampaign(stores.pool, { campaignId: 131, advertiserId: 13, cpc: '100', dailyBudget: '1000' });
    const tomorrow = startOfNextDay();
    const summary = await createClickBalanceHandler(deps())(adEventsBatch(Array.from({ length: 12 }, () => clickEvent(131, 13, { event_ts: tomorrow }))));
    expect(summary.charged).toBe(12);
    expect((await stores.pool.query('SELECT status FROM campaigns WHERE campaign_id = 131')).rows[0].status).toBe('ACTIVE');
    expect(await countRows(stores.pool, 'outbox', "payload->>'campaign_id' = '131'")).toBe(0);
    const spend = await stores.pool.query('SELECT spend_date::text, spend::text FROM campaign_daily_spend WHERE campaign_id = 131');
    expect(spend.rows).toEqual([{ spend_date: budgetDayOf(tomorrow), spend: '1200' }]);
  });

  test('a campaign at or over its budget is paused on every batch it is ACTIVE in, announced once per pause', async () => {
    await seedAdvertiser(stores.pool, 12, '100000');
    await seedCampaign(stores.pool, { campaignId: 121, advertiserId: 12, cpc: '100', dailyBudget: '1000' });
    const handler = createClickBalanceHandler(deps());
    const statusOf = async () => (await stores.pool.query('SELECT status FROM campaigns WHERE campaign_id = 121')).rows[0].status;
    const announcements = async (kind: string) =>
      (
        await stores.pool.query(
          "SELECT idempotency_key, payload->>'event_id' AS event_id FROM outbox WHERE kind = $1 AND payload->>'campaign_id' = '121' ORDER BY id",
          [kind],
        )
      ).rows;

    await handler(
      adEventsBatch(
        Array.from({ length: 10 }, () => clickEvent(121, 12)),
        0,
        0,
      ),
    );
    expect(await statusOf()).toBe('PAUSED');

    // An operator resumes the exhausted campaign by hand: the next batch pauses it again.
    await stores.pool.query("UPDATE campaigns SET status = 'ACTIVE', paused_reason = NULL WHERE campaign_id = 121");
    const again = adEventsBatch(
      Array.from({ length: 5 }, () => clickEvent(121, 12)),
      0,
      10,
    );
    await handler(again);
    expect(await statusOf()).toBe('PAUSED');
    await handler(again); // redelivered: no new pause, no new announcement
    expect(await announcements('CAMPAIGN_PAUSED')).toHaveLength(2);

    // A resume that races a batch leaves it ACTIVE and over budget: a replayed batch that charges nothing still pauses it.
    await stores.pool.query("UPDATE campaigns SET status = 'ACTIVE', paused_reason = NULL WHERE campaign_id = 121");
    const replay = await handler(again);
    expect(replay.charged).toBe(0);
    expect(await statusOf()).toBe('PAUSED');

    // The budget is raised and the campaign resumed: it spends up to the new budget, the 90 %
    // warning fires again for the new budget, and reaching it pauses once more.
    await stores.pool.query("UPDATE campaigns SET daily_budget = 2000, status = 'ACTIVE', paused_reason = NULL WHERE campaign_id = 121");
    await handler(
      adEventsBatch(
        Array.from({ length: 3 }, () => clickEvent(121, 12)),
        0,
        20,
      ),
    ); // 1800 = 90 % of 2000
    expect(await statusOf()).toBe('ACTIVE');
    expect(await announcements('BUDGET_WARNING')).toHaveLength(2);
    await handler(
      adEventsBatch(
        Array.from({ length: 2 }, () => clickEvent(121, 12)),
        0,
        30,
      ),
    ); // 2000
    expect(await statusOf()).toBe('PAUSED');

    const pauses = await announcements('CAMPAIGN_PAUSED');
    expect(pauses).toHaveLength(4);
    expect(new Set(pauses.map((p) => p.event_id)).size).toBe(4);
    const spend = await stores.pool.query('SELECT spend::text FROM campaign_daily_spend WHERE campaign_id = 121');
    expect(spend.rows[0].spend).toBe('2000');
  });

  test('a malformed informational field (user_id, actual_price, session_id) never drops a billable click', async () => {
    await seedAdvertiser(stores.pool, 14, '1000');
    await seedCampaign(stores.pool, { campaignId: 141, advertiserId: 14, cpc: '10', dailyBudget: null });
    const summary = await createClickBalanceHandler(deps())(
      adEventsBatch([
        clickEvent(141, 14, { user_id: '' }),
        clickEvent(141, 14, { actual_price: '-0.00' }),
        clickEvent(141, 14, { actual_price: '-5.00' }),
        clickEvent(141, 14, { actual_price: '12.345' }),
        clickEvent(141, 14, { session_id: 'a\u0000b' }),
        clickEvent(141, 14, { user_id: 'x'.repeat(500), session_id: 42 }),
      ]),
    );
    expect(summary).toMatchObject({ records: 6, charged: 6, deadLettered: 0 });
    expect(await balanceOf(stores.pool, 14)).toBe('940');
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

describe('click-balance on the day-partitioned ledger', () => {
  test('a copy of a charged click re-stamped into the day before or after (another partition) is never charged again', async () => {
    await seedAdvertiser(stores.pool, 31, '10000');
    await seedCampaign(stores.pool, { campaignId: 311, advertiserId: 31, cpc: '100', dailyBudget: null });
    const handler = createClickBalanceHandler(deps());
    const original = clickEvent(311, 31);
    const dayMs = 24 * 3600 * 1000;
    expect((await handler(adEventsBatch([original]))).charged).toBe(1);
    // The same click re-stamped into the day before and the day after, alone and in a batch with a new click.
    const earlier = await handler(adEventsBatch([{ ...original, event_ts: original.event_ts - dayMs }], 0, 1));
    const later = await handler(adEventsBatch([{ ...original, event_ts: original.event_ts + dayMs }], 0, 2));
    const both = await handler(adEventsBatch([{ ...original, event_ts: original.event_ts - dayMs + 60_000 }, clickEvent(311, 31)], 0, 3));
    expect([earlier.charged, later.charged, both.charged]).toEqual([0, 0, 1]);
    expect([earlier.deadLettered, later.deadLettered, both.deadLettered]).toEqual([0, 0, 0]);
    expect(await countRows(stores.pool, 'ad_balance_histories', `event_id = '${original.event_id}'`)).toBe(1);
    expect(await balanceOf(stores.pool, 31)).toBe('9800');
  });

  test('in a batch spanning several days, a copy re-stamped into the day after a middle day is not charged again', async () => {
    await seedAdvertiser(stores.pool, 35, '10000');
    await seedCampaign(stores.pool, { campaignId: 351, advertiserId: 35, cpc: '100', dailyBudget: null });
    const handler = createClickBalanceHandler(deps());
    const dayMs = 24 * 3600 * 1000;
    const now = Date.now();
    // Charged two days ago; its copy arrives stamped three days ago, in a batch whose other
    // clicks are four days old and new: the copy's neighbour days are neither the batch's first
    // and last day nor the days around them.
    const original = clickEvent(351, 35, { event_ts: now - 2 * dayMs });
    expect((await handler(adEventsBatch([original]))).charged).toBe(1);
    const batch = [clickEvent(351, 35, { event_ts: now - 4 * dayMs }), { ...original, event_ts: now - 3 * dayMs }, clickEvent(351, 35)];
    const summary = await handler(adEventsBatch(batch, 0, 1));
    expect(summary).toMatchObject({ charged: 2, deadLettered: 0 });
    expect(await countRows(stores.pool, 'ad_balance_histories', `event_id = '${original.event_id}'`)).toBe(1);
    expect(await balanceOf(stores.pool, 35)).toBe('9700');
  });

  test('a copy with another day but another advertiser is dead-lettered as a conflict, not charged', async () => {
    await seedAdvertiser(stores.pool, 32, '10000');
    await seedCampaign(stores.pool, { campaignId: 321, advertiserId: 32, cpc: '100', dailyBudget: null });
    await seedAdvertiser(stores.pool, 33, '10000');
    await seedCampaign(stores.pool, { campaignId: 331, advertiserId: 33, cpc: '100', dailyBudget: null });
    const handler = createClickBalanceHandler(deps());
    const original = clickEvent(321, 32);
    await handler(adEventsBatch([original]));
    const copy = await handler(adEventsBatch([{ ...original, campaign_id: 331, advertiser_id: 33, event_ts: original.event_ts - 24 * 3600 * 1000 }], 0, 1));
    expect(copy).toMatchObject({ charged: 0, deadLettered: 1 });
    expect(await balanceOf(stores.pool, 33)).toBe('10000');
  });

  test('charges land in the daily partition of their budget day', async () => {
    await seedAdvertiser(stores.pool, 34, '10000');
    await seedCampaign(stores.pool, { campaignId: 341, advertiserId: 34, cpc: '1', dailyBudget: null });
    const click = clickEvent(341, 34);
    await createClickBalanceHandler(deps())(adEventsBatch([click]));
    const { rows } = await stores.pool.query(`SELECT tableoid::regclass::text AS part, spend_date::text AS day FROM ad_balance_histories WHERE event_id = $1`, [
      click.event_id,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0].part).toBe(`ad_balance_histories_p${rows[0].day.replace(/-/g, '')}`);
  });
});

describe('click-balance conflicts end in a charge or a dead letter', () => {
  const lettersOf = async (where: string) =>
    (
      await stores.pool.query(
        `SELECT reason, kafka_partition, kafka_offset::text AS kafka_offset FROM dead_letters WHERE handler = 'click-balance' AND ${where} ORDER BY id`,
      )
    ).rows;

  /**
   * Two batches of the same six event ids, one per advertiser (ids `<prefix>-0…5`, in opposite
   * orders), charged concurrently while each DEDUCT insert takes a while, so both are inside their
   * charge statements together; the second batch's clicks are dated `secondDayOffsetMs` earlier.
   * Exactly six DEDUCTs, six conflicts dead-lettered, 60 charged in all.
   */
  async function raceTheSameIds(prefix: string, advertisers: readonly [number, number], partitions: readonly [number, number], secondDayOffsetMs: number) {
    for (const advertiser of advertisers) {
      await seedAdvertiser(stores.pool, advertiser, '10000');
      await seedCampaign(stores.pool, { campaignId: advertiser * 10 + 1, advertiserId: advertiser, cpc: '10', dailyBudget: null });
    }
    await stores.pool.query(`
      CREATE FUNCTION slow_${prefix}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.event_id LIKE '${prefix}-%' THEN PERFORM pg_sleep(0.05); END IF; RETURN NEW; END $$;
      CREATE TRIGGER slow_${prefix} BEFORE INSERT ON ad_balance_histories FOR EACH ROW EXECUTE FUNCTION slow_${prefix}();`);
    try {
      const ids = Array.from({ length: 6 }, (_, i) => `${prefix}-${i}`);
      const now = Date.now();
      const batches = advertisers.map((advertiser, i) =>
        adEventsBatch(
          (i === 0 ? ids : [...ids].reverse()).map((id) =>
            clickEvent(advertiser * 10 + 1, advertiser, { event_id: id, event_ts: now - i * secondDayOffsetMs }),
          ),
          partitions[i],
          0,
        ),
      );
      const [a, b] = await Promise.all(batches.map((batch) => createClickBalanceHandler(deps())(batch)));
      expect(await countRows(stores.pool, 'ad_balance_histories', `event_id LIKE '${prefix}-%'`)).toBe(6);
      expect(a.charged + b.charged).toBe(6);
      expect(a.deadLettered + b.deadLettered).toBe(6);
      const letters = await lettersOf(`kafka_partition IN (${partitions.join(', ')})`);
      expect(letters).toHaveLength(6);
      expect(new Set(letters.map((l) => l.reason))).toEqual(new Set(['EVENT_ID_CONFLICT']));
      const balances = await Promise.all(advertisers.map((advertiser) => balanceOf(stores.pool, advertiser)));
      expect(balances.reduce((sum, balance) => sum + BigInt(balance.split('.')[0]), 0n)).toBe(20000n - 60n);
    } finally {
      await stores.pool.query(`DROP TRIGGER slow_${prefix} ON ad_balance_histories; DROP FUNCTION slow_${prefix}();`);
    }
  }

  test('the same event ids on two advertisers in concurrent batches neither deadlock nor vanish', async () => {
    await raceTheSameIds('shared', [201, 202], [7, 8], 0);
  });

  test('the same event ids on two advertisers in concurrent batches a day apart (two partitions) are charged once', async () => {
    // The unique key cannot meet them (another day, another partition), and neither statement's
    // snapshot sees the other's uncommitted DEDUCT: only the event-id locks serialize them.
    await raceTheSameIds('dated', [261, 262], [15, 16], 24 * 3600 * 1000);
  });

  test('an id already charged to another advertiser is dead-lettered, a replay of the same click is not', async () => {
    await seedAdvertiser(stores.pool, 211, '1000');
    await seedAdvertiser(stores.pool, 212, '1000');
    await seedCampaign(stores.pool, { campaignId: 2111, advertiserId: 211, cpc: '10', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 2121, advertiserId: 212, cpc: '10', dailyBudget: null });
    const click = clickEvent(2111, 211, { event_id: 'taken-id' });
    await createClickBalanceHandler(deps())(adEventsBatch([click], 9, 0));
    const summary = await createClickBalanceHandler(deps())(adEventsBatch([click, clickEvent(2121, 212, { event_id: 'taken-id' })], 9, 1));
    expect(summary).toMatchObject({ charged: 0, deadLettered: 1, skipped: 1 });
    expect(await lettersOf('kafka_partition = 9')).toEqual([{ reason: 'EVENT_ID_CONFLICT', kafka_partition: 9, kafka_offset: '2' }]);
    expect(await balanceOf(stores.pool, 212)).toBe('1000');
  });

  test('a click whose id two other advertisers hold on the days either side of its own is one dead letter, counted once', async () => {
    // Two days apart, both charges stand (the known gap of lambdas/README.md); the click between
    // them meets both holders.
    const day = 24 * 3600 * 1000;
    const now = Date.now();
    for (const advertiser of [271, 272, 273]) {
      await seedAdvertiser(stores.pool, advertiser, '1000');
      await seedCampaign(stores.pool, { campaignId: advertiser * 10 + 1, advertiserId: advertiser, cpc: '10', dailyBudget: null });
    }
    const handler = createClickBalanceHandler(deps());
    await handler(adEventsBatch([clickEvent(2711, 271, { event_id: 'held-twice', event_ts: now - 2 * day })], 17, 0));
    await handler(adEventsBatch([clickEvent(2721, 272, { event_id: 'held-twice', event_ts: now })], 17, 1));

    const summary = await handler(adEventsBatch([clickEvent(2731, 273, { event_id: 'held-twice', event_ts: now - day })], 17, 2));

    expect(summary).toMatchObject({ records: 1, charged: 0, deadLettered: 1, skipped: 0 });
    expect(await lettersOf('kafka_partition = 17')).toEqual([{ reason: 'EVENT_ID_CONFLICT', kafka_partition: 17, kafka_offset: '2' }]);
    expect(await balanceOf(stores.pool, 273)).toBe('1000');
  });

  test('a bad copy of a click earlier in the batch does not hide the good copy', async () => {
    await seedAdvertiser(stores.pool, 221, '1000');
    await seedCampaign(stores.pool, { campaignId: 2211, advertiserId: 221, cpc: '10', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 2212, advertiserId: 221, cpc: '10', dailyBudget: null });
    const good = clickEvent(2211, 221, { event_id: 'copied-id' });
    const summary = await createClickBalanceHandler(deps())(
      adEventsBatch([{ ...good, campaign_id: 999_999 }, { ...good, advertiser_id: 4242 }, good, good, { ...good, campaign_id: 2212 }], 10, 0),
    );
    expect(summary).toMatchObject({ records: 5, charged: 1, deadLettered: 3, skipped: 1 });
    expect((await lettersOf('kafka_partition = 10')).map((l) => l.reason)).toEqual(['UNKNOWN_CAMPAIGN', 'ADVERTISER_MISMATCH', 'EVENT_ID_CONFLICT']);
    expect(await balanceOf(stores.pool, 221)).toBe('990');
  });

  test('offset-less bad records of two batches each get their own dead letter', async () => {
    const offsetless = (value: string) => ({
      eventSource: 'SelfManagedKafka',
      records: { 'ad-events-11': [{ topic: 'ad-events', partition: 11, value: Buffer.from(value).toString('base64') }] },
    });
    const handler = createClickBalanceHandler(deps());
    await handler(offsetless('{"not": "a click"'));
    await handler(offsetless('[1, 2, 3'));
    await handler(offsetless('[1, 2, 3')); // the same record redelivered
    expect(await lettersOf('kafka_partition = 11')).toHaveLength(2);
  });

  test('event ids differing only in a lone UTF-16 surrogate are dead-lettered, not merged into one', async () => {
    await seedAdvertiser(stores.pool, 231, '1000');
    await seedCampaign(stores.pool, { campaignId: 2311, advertiserId: 231, cpc: '10', dailyBudget: null });
    const summary = await createClickBalanceHandler(deps())(
      adEventsBatch([clickEvent(2311, 231, { event_id: 'lone-\ud800' }), clickEvent(2311, 231, { event_id: 'lone-\udbff' })], 12, 0),
    );
    expect(summary).toMatchObject({ charged: 0, deadLettered: 2 });
    expect((await lettersOf('kafka_partition = 12')).map((l) => l.reason)).toEqual(['CONTRACT_VIOLATION', 'CONTRACT_VIOLATION']);
  });
});

describe('click-balance charges a clean batch in one round trip, any other the long way', () => {
  test('a batch with nothing to dead-letter is locked, priced, charged and committed in one database round trip', async () => {
    await seedAdvertiser(stores.pool, 241, '1000');
    await seedCampaign(stores.pool, { campaignId: 2411, advertiserId: 241, cpc: '10', dailyBudget: null });
    const click = clickEvent(2411, 241);
    const summary = await createClickBalanceHandler(deps())(adEventsBatch([click, click, clickEvent(2411, 241)], 13, 0));
    expect(summary).toMatchObject({ records: 3, charged: 2, deadLettered: 0, skipped: 1, dbRoundTrips: 1 });
    expect(await balanceOf(stores.pool, 241)).toBe('980');
  });

  test('a CPC the database accepts but no click may cost sends the batch the long way: the other clicks charged, that one dead-lettered', async () => {
    await seedAdvertiser(stores.pool, 251, '100000000');
    await seedCampaign(stores.pool, { campaignId: 2511, advertiserId: 251, cpc: '10000000.000001', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 2512, advertiserId: 251, cpc: '10000000', dailyBudget: null });
    const summary = await createClickBalanceHandler(deps())(adEventsBatch([clickEvent(2511, 251), clickEvent(2512, 251)], 14, 0));
    expect(summary).toMatchObject({ charged: 1, deadLettered: 1 });
    expect(summary.dbRoundTrips).toBeGreaterThan(1);
    const letters = await stores.pool.query("SELECT reason, detail FROM dead_letters WHERE handler = 'click-balance' AND kafka_partition = 14");
    expect(letters.rows).toEqual([{ reason: 'NO_PRICE', detail: 'campaign 2511 cpc must be at most 10000000, got 10000000.000001' }]);
    expect(await balanceOf(stores.pool, 251)).toBe('90000000');
  });

  test('the one-round-trip charge and the long way decide every generated batch alike: charges, voids, dead letters, spend, pauses, announcements', async () => {
    // Each scenario is played twice from the same seed, in two universes of the same database
    // (ids offset, event ids prefixed): as delivered (the one round trip when it can) and with
    // one undecodable record added in another Kafka partition (always the long way). Event ids
    // repeat within and across batches, clicks name unknown campaigns and other advertisers,
    // prices are unusable, days differ, voids wait, batches are redelivered.
    const random = (seed: number) => () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(next: () => number, items: readonly T[]): T => items[Math.floor(next() * items.length)];
    const prices = ['10', '0.000001', '120.50', '10000000', '9999999.999999', '10000000.000001', null];
    const budgets = [null, '0', '25', '130', '100000'];
    const hours = [0, 0, 0, -1, -24, -25, -48, -72, 12];
    const now = Date.now();
    let clean = 0;
    let refused = 0;
    // One connection per universe for the whole test (a new one per scenario held 48 open).
    const universeDeps = [deps(), deps()];
    for (let scenario = 0; scenario < 24; scenario++) {
      const universes = [0, 1].map((u) => ({
        u,
        handler: createClickBalanceHandler(universeDeps[u]),
        advertiser: (a: number) => 1_000_000 * (u + 1) + scenario * 10 + a,
        campaign: (k: number) => 1_000_000 * (u + 1) + scenario * 10 + k,
        id: (e: number) => `u${u}-s${scenario}-e${e}`,
      }));
      const trace: unknown[][] = [[], []];
      for (const world of universes) {
        const next = random(scenario + 1);
        for (let a = 1; a <= 3; a++) await seedAdvertiser(stores.pool, world.advertiser(a), pick(next, ['0', '100', '1000000']));
        for (let k = 1; k <= 5; k++) {
          await seedCampaign(stores.pool, {
            campaignId: world.campaign(k),
            advertiserId: world.advertiser((k % 3) + 1),
            cpc: pick(next, prices),
            dailyBudget: pick(next, budgets),
          });
        }
        for (let v = 0; v < 2; v++) {
          const k = 1 + Math.floor(next() * 5);
          await stores.pool.query(
            `INSERT INTO click_voids (event_id, compensation_id, advertiser_id, campaign_id, spend_date) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
            [world.id(Math.floor(next() * 8)), `comp-${v}`, world.advertiser((k % 3) + 1), world.campaign(k), budgetDayOf(now + pick(next, hours) * 3600_000)],
          );
        }
        const delivered: ReturnType<typeof clickEvent>[][] = [];
        for (let b = 0; b < 5; b++) {
          let clicks: ReturnType<typeof clickEvent>[];
          if (b > 0 && next() < 0.3) clicks = pick(next, delivered);
          else {
            clicks = [];
            for (let n = 1 + Math.floor(next() * 10); n > 0; n--) {
              // A producer retry re-stamped: the same click with another event time.
              if (clicks.length > 0 && next() < 0.25) {
                clicks.push({ ...pick(next, clicks), event_ts: now + pick(next, hours) * 3600_000 });
                continue;
              }
              const k = 1 + Math.floor(next() * 6); // 6: no such campaign
              const owner = (k % 3) + 1;
              clicks.push(
                clickEvent(world.campaign(k), world.advertiser(next() < 0.15 ? (owner % 3) + 1 : owner), {
                  event_id: world.id(Math.floor(next() * 8)),
                  event_ts: now + pick(next, hours) * 3600_000,
                  device_id: 'device',
                  session_id: 'session',
                }),
              );
            }
          }
          delivered.push(clicks);
          const undecodable = world.u === 1 ? [{ partition: 99, firstOffset: scenario * 10 + b, values: [{ base64: '!' }] }] : [];
          const batch = kafkaEvent('ad-events', [{ partition: 100 + world.u * 50 + scenario, firstOffset: b * 20, values: clicks }, ...undecodable]);
          const summary = await world.handler(batch);
          if (world.u === 0 && summary.dbRoundTrips === 1) clean++;
          else if (world.u === 0) refused++;
          trace[world.u].push({
            batch: b,
            charged: summary.charged,
            chargedAmount: summary.chargedAmount,
            voided: summary.voided,
            deadLettered: summary.deadLettered - undecodable.length,
            skipped: summary.skipped,
            outboxWritten: summary.outboxWritten,
          });
        }
        const base = 1_000_000 * (world.u + 1);
        const state = await stores.pool.query(
          `SELECT
             (SELECT json_agg(json_build_object('e', substring(event_id from '-e[0-9]+$'), 'a', advertiser_id - $1, 'c', campaign_id - $1, 'amount', amount::text, 'day', spend_date::text) ORDER BY substring(event_id from '-e[0-9]+$'), spend_date)
                FROM ad_balance_histories WHERE event_id LIKE $2) AS ledger,
             (SELECT json_agg(json_build_object('a', advertiser_id - $1, 'balance', balance::text) ORDER BY advertiser_id)
                FROM advertisers WHERE advertiser_id BETWEEN $1 + $3 * 10 AND $1 + $3 * 10 + 9) AS balances,
             (SELECT json_agg(json_build_object('c', campaign_id - $1, 'day', spend_date::text, 'spend', spend::text, 'clicks', clicks, 'warned', warned_budget::text, 'exhausted', exhausted_at IS NOT NULL) ORDER BY campaign_id, spend_date)
                FROM campaign_daily_spend WHERE campaign_id BETWEEN $1 + $3 * 10 AND $1 + $3 * 10 + 9) AS spend,
             (SELECT json_agg(json_build_object('c', campaign_id - $1, 'status', status, 'seq', status_seq, 'reason', paused_reason) ORDER BY campaign_id)
                FROM campaigns WHERE campaign_id BETWEEN $1 + $3 * 10 AND $1 + $3 * 10 + 9) AS campaigns,
             (SELECT json_agg(json_build_object('kind', kind, 'campaign', (payload->>'campaign_id')::bigint - $1, 'day', spend_date::text) ORDER BY kind, (payload->>'campaign_id')::bigint, idempotency_key)
                FROM outbox WHERE (payload->>'campaign_id')::bigint BETWEEN $1 + $3 * 10 AND $1 + $3 * 10 + 9) AS outbox,
             (SELECT json_agg(json_build_object('reason', reason, 'offset', kafka_offset) ORDER BY kafka_offset, reason)
                FROM dead_letters WHERE handler = 'click-balance' AND kafka_partition = $4) AS letters`,
          [base, `u${world.u}-s${scenario}-%`, scenario, 100 + world.u * 50 + scenario],
        );
        trace[world.u].push(state.rows[0]);
      }
      expect({ scenario, trace: trace[0] }).toEqual({ scenario, trace: trace[1] });
    }
    // Both ways were taken by the batches as delivered.
    expect(clean).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(10);
  });

  test('the charge function writes the CAMPAIGN_PAUSED outbox columns campaignStatusOutboxColumns() defines', async () => {
    const { rows } = await stores.pool.query<{ body: string }>("SELECT prosrc AS body FROM pg_proc WHERE proname = 'adstream_charge_priced_clicks'");
    const squash = (sql: string) => sql.replace(/\s+/g, ' ');
    expect(squash(rows[0].body)).toContain(squash(`SELECT ${campaignStatusOutboxColumns('CAMPAIGN_PAUSED', 'p', 'p.spend_date')} FROM paused p`));
  });
});
