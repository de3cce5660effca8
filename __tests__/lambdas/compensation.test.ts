import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { reconcileLedger } from '../../lambdas/reconcile/reconcile-ledger';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { balanceOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

const stores = isolatedWorkerStores();

function deps() {
  return stores.deps();
}

describe('compensation', () => {
  test('refunds exactly what was charged, not the quoted refund_amount, and restores day spend', async () => {
    await seedAdvertiser(stores.pool, 1, '1000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '120.55', dailyBudget: '10000' });
    const click = clickEvent(11, 1);
    await createClickBalanceHandler(deps())(adEventsBatch([click, clickEvent(11, 1)]));
    expect(await balanceOf(stores.pool, 1)).toBe('758.90');

    const summary = await createCompensationHandler(deps())(compensationBatch([compensationEvent(click, { refund_amount: '999.00' })]));

    expect(summary).toMatchObject({ refunded: 1, voided: 0, deadLettered: 0 });
    expect(await balanceOf(stores.pool, 1)).toBe('879.45');
    const spend = await stores.pool.query('SELECT spend::text, clicks::int FROM campaign_daily_spend WHERE campaign_id = 11');
    expect(spend.rows).toEqual([{ spend: '120.55', clicks: 1 }]);
    const refund = await stores.pool.query("SELECT amount::text, compensation_id FROM ad_balance_histories WHERE type = 'REFUND' AND event_id = $1", [
      click.event_id,
    ]);
    expect(refund.rows).toEqual([{ amount: '120.55', compensation_id: `comp-${click.event_id}`.slice(0, 64) }]);
    const log = await stores.pool.query(
      'SELECT outcome, refunded_amount::text, quoted_refund_amount::text FROM duplicate_clicks WHERE duplicate_event_id = $1',
      [click.event_id],
    );
    expect(log.rows).toEqual([{ outcome: 'REFUNDED', refunded_amount: '120.55', quoted_refund_amount: '999.00' }]);
  });

  test('the same compensation twice (and a second compensation for the same click) refunds once', async () => {
    await seedAdvertiser(stores.pool, 2, '1000');
    await seedCampaign(stores.pool, { campaignId: 21, advertiserId: 2, cpc: '100', dailyBudget: null });
    const click = clickEvent(21, 2);
    await createClickBalanceHandler(deps())(adEventsBatch([click]));
    const handler = createCompensationHandler(deps());
    const compensation = compensationEvent(click);

    const first = await handler(compensationBatch([compensation]));
    const again = await handler(compensationBatch([compensation]));
    const inSameBatch = await handler(compensationBatch([compensation, compensation], 1));
    const other = await handler(compensationBatch([compensationEvent(click, { compensation_id: 'another-id' })]));

    expect([first.refunded, again.refunded, inSameBatch.refunded, other.refunded]).toEqual([1, 0, 0, 0]);
    expect(await balanceOf(stores.pool, 2)).toBe('1000');
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'REFUND' AND advertiser_id = 2")).toBe(1);
    const outcomes = await stores.pool.query(
      'SELECT compensation_id, outcome FROM duplicate_clicks WHERE advertiser_id = 2 ORDER BY created_at, compensation_id',
    );
    expect(outcomes.rows.map((r) => r.outcome)).toEqual(['REFUNDED', 'ALREADY_SETTLED']);
  });

  test('a refund that arrives before its charge voids the click: the balance nets to zero', async () => {
    await seedAdvertiser(stores.pool, 3, '500');
    await seedCampaign(stores.pool, { campaignId: 31, advertiserId: 3, cpc: '80', dailyBudget: null });
    const click = clickEvent(31, 3);

    const compensation = await createCompensationHandler(deps())(compensationBatch([compensationEvent(click)]));
    const charge = await createClickBalanceHandler(deps())(adEventsBatch([click]));
    const replay = await createClickBalanceHandler(deps())(adEventsBatch([click]));

    expect(compensation).toMatchObject({ refunded: 0, voided: 1 });
    expect(charge).toMatchObject({ charged: 0, voided: 1 });
    expect(replay.charged).toBe(0);
    expect(await balanceOf(stores.pool, 3)).toBe('500');
    expect(await countRows(stores.pool, 'ad_balance_histories', 'advertiser_id = 3')).toBe(0);
  });

  test('the final balance does not depend on the order clicks and compensations arrive in', async () => {
    await seedAdvertiser(stores.pool, 4, '10000');
    await seedCampaign(stores.pool, { campaignId: 41, advertiserId: 4, cpc: '7.77', dailyBudget: null });
    const clicks = Array.from({ length: 60 }, () => clickEvent(41, 4));
    const duplicates = clicks.filter((_, i) => i % 3 === 0);
    const clickHandler = createClickBalanceHandler(deps());
    const compensationHandler = createCompensationHandler(deps());
    // Interleave: half the compensations before their clicks, half after, concurrently.
    await Promise.all([
      (async () => {
        for (let i = 0; i < clicks.length; i += 10) await clickHandler(adEventsBatch(clicks.slice(i, i + 10), 0, i));
      })(),
      (async () => {
        for (let i = duplicates.length - 1; i >= 0; i -= 4) {
          await compensationHandler(
            compensationBatch(
              duplicates.slice(Math.max(0, i - 3), i + 1).map((c) => compensationEvent(c)),
              0,
              i,
            ),
          );
        }
      })(),
    ]);
    // 40 clicks kept at 7.77 each.
    expect(await balanceOf(stores.pool, 4)).toBe('9689.20');
    const spend = await stores.pool.query('SELECT sum(spend)::text AS spend FROM campaign_daily_spend WHERE campaign_id = 41');
    expect(spend.rows[0].spend).toBe('310.80');
  });

  test('a click and its compensation released at the same instant still net to zero', async () => {
    await seedAdvertiser(stores.pool, 6, '300');
    await seedCampaign(stores.pool, { campaignId: 61, advertiserId: 6, cpc: '55', dailyBudget: null });
    for (let round = 0; round < 5; round++) {
      const click = clickEvent(61, 6);
      // Hold the advertiser so both handlers queue up, then let them race.
      const blocker = await stores.pool.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM advertisers WHERE advertiser_id = 6 FOR UPDATE');
      const charging = createClickBalanceHandler(deps())(adEventsBatch([click], 0, round));
      const refunding = createCompensationHandler(deps())(compensationBatch([compensationEvent(click)], 0, round));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await blocker.query('COMMIT');
      blocker.release();
      const [charge, refund] = await Promise.all([charging, refunding]);
      expect(charge.charged + refund.voided).toBe(1);
      expect(refund.refunded + refund.voided).toBe(1);
      expect(await balanceOf(stores.pool, 6)).toBe('300');
    }
  });

  test('a compensation for an unknown campaign is dead-lettered and refunds nothing; a negative refund quote is dropped, the duplicate refunded', async () => {
    await seedAdvertiser(stores.pool, 5, '100');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, cpc: '10', dailyBudget: null });
    const click = clickEvent(51, 5);
    await createClickBalanceHandler(deps())(adEventsBatch([click]));
    const summary = await createCompensationHandler(deps())(
      compensationBatch(
        [
          compensationEvent(click, { campaign_id: 999999, compensation_id: 'c-unknown' }),
          compensationEvent(click, { refund_amount: '-10.00', compensation_id: 'c-negative' }),
        ],
        3,
        70,
      ),
    );
    expect(summary).toMatchObject({ records: 2, refunded: 1, deadLettered: 1 });
    expect(await balanceOf(stores.pool, 5)).toBe('100');
    const letters = await stores.pool.query(
      "SELECT reason, kafka_partition, kafka_offset::int FROM dead_letters WHERE handler = 'compensation' AND kafka_partition = 3 ORDER BY kafka_offset",
    );
    expect(letters.rows).toEqual([{ reason: 'UNKNOWN_CAMPAIGN', kafka_partition: 3, kafka_offset: 70 }]);
    const log = await stores.pool.query("SELECT outcome, quoted_refund_amount FROM duplicate_clicks WHERE compensation_id = 'c-negative'");
    expect(log.rows).toEqual([{ outcome: 'REFUNDED', quoted_refund_amount: null }]);
  });
});

describe('compensation checked against the click it refunds', () => {
  const letters = async (partition: number) =>
    (
      await stores.pool.query("SELECT reason, detail FROM dead_letters WHERE handler = 'compensation' AND kafka_partition = $1 ORDER BY kafka_offset", [
        partition,
      ])
    ).rows;

  /** Advertiser `id` with 1000 and campaign `id * 10` at a CPC of 100, no budget. */
  async function advertiserWithCampaign(id: number): Promise<number> {
    await seedAdvertiser(stores.pool, id, '1000');
    await seedCampaign(stores.pool, { campaignId: id * 10, advertiserId: id, cpc: '100', dailyBudget: null });
    return id * 10;
  }

  async function twoAdvertisers(base: number): Promise<void> {
    await seedAdvertiser(stores.pool, base, '1000');
    await seedAdvertiser(stores.pool, base + 1, '1000');
    await seedCampaign(stores.pool, { campaignId: base * 10, advertiserId: base, cpc: '100', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: base * 10 + 1, advertiserId: base, cpc: '100', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: (base + 1) * 10, advertiserId: base + 1, cpc: '100', dailyBudget: null });
  }

  test('a compensation naming another advertiser or campaign than the charged click is dead-lettered and does not block the right one', async () => {
    await twoAdvertisers(70);
    const click = clickEvent(700, 70);
    await createClickBalanceHandler(deps())(adEventsBatch([click]));
    const handler = createCompensationHandler(deps());
    const wrongAdvertiser = compensationEvent(click, { advertiser_id: 71, campaign_id: 710 });
    const wrongCampaign = compensationEvent(click, { campaign_id: 701 });

    const bad = await handler(compensationBatch([wrongAdvertiser, wrongCampaign], 4, 0));
    expect(bad).toMatchObject({ refunded: 0, voided: 0, deadLettered: 2 });
    expect((await letters(4)).map((l) => l.reason)).toEqual(['CLICK_MISMATCH', 'CLICK_MISMATCH']);
    expect((await letters(4))[0].detail).toContain('charged to advertiser 70 campaign 700');
    expect([await balanceOf(stores.pool, 70), await balanceOf(stores.pool, 71)]).toEqual(['900', '1000']);

    // The correct compensation, with the very same compensation_id, still refunds.
    const good = await handler(compensationBatch([compensationEvent(click)], 4, 2));
    expect(good.refunded).toBe(1);
    expect([await balanceOf(stores.pool, 70), await balanceOf(stores.pool, 71)]).toEqual(['1000', '1000']);
    const log = await stores.pool.query('SELECT advertiser_id::int, outcome FROM duplicate_clicks WHERE duplicate_event_id = $1', [click.event_id]);
    expect(log.rows).toEqual([{ advertiser_id: 70, outcome: 'REFUNDED' }]);
  });

  test('a void made before its click applies only to a click of the same advertiser and campaign', async () => {
    await twoAdvertisers(72);
    const click = clickEvent(720, 72);
    const handler = createCompensationHandler(deps());
    // Wrong compensations arrive before the click: they void nothing the click will match.
    await handler(compensationBatch([compensationEvent(click, { advertiser_id: 73, campaign_id: 730 }), compensationEvent(click, { campaign_id: 721 })], 5, 0));
    const charge = await createClickBalanceHandler(deps())(adEventsBatch([click]));
    expect(charge).toMatchObject({ charged: 1, voided: 0 });
    expect(await balanceOf(stores.pool, 72)).toBe('900');
    // The correct one, later, is not "already settled" by them: it refunds.
    const good = await handler(compensationBatch([compensationEvent(click)], 5, 2));
    expect(good.refunded).toBe(1);
    expect([await balanceOf(stores.pool, 72), await balanceOf(stores.pool, 73)]).toEqual(['1000', '1000']);
  });

  test('a wrong compensation racing the charge of its click leaves the click charged once and the right refund possible', async () => {
    await twoAdvertisers(74);
    for (let round = 0; round < 4; round++) {
      const click = clickEvent(740, 74);
      const blocker = await stores.pool.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM advertisers WHERE advertiser_id IN (74, 75) FOR UPDATE');
      const charging = createClickBalanceHandler(deps())(adEventsBatch([click], 0, 100 + round));
      const wrong = createCompensationHandler(deps())(compensationBatch([compensationEvent(click, { advertiser_id: 75, campaign_id: 750 })], 6, round * 2));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await blocker.query('COMMIT');
      blocker.release();
      await Promise.all([charging, wrong]);
      const right = await createCompensationHandler(deps())(compensationBatch([compensationEvent(click)], 6, round * 2 + 1));
      expect(right.refunded).toBe(1);
      expect([await balanceOf(stores.pool, 74), await balanceOf(stores.pool, 75)]).toEqual(['1000', '1000']);
    }
  });

  test('a chain of three clicks keeps only its first charge: the middle click is refunded although a later one named it as original', async () => {
    // Found by the local pipeline run: v (10:56:00), then x and w in one millisecond (10:59:52),
    // both within 5 minutes of v. Flink names w a duplicate of x and x a duplicate of v.
    await seedAdvertiser(stores.pool, 77, '1000');
    await seedCampaign(stores.pool, { campaignId: 770, advertiserId: 77, cpc: '100', dailyBudget: null });
    const ts = Date.now() - 300_000;
    const v = clickEvent(770, 77, { event_ts: ts, device_id: 'dev-77', event_id: 'chain-v' });
    const x = clickEvent(770, 77, { event_ts: ts + 231_380, device_id: 'dev-77', event_id: 'chain-x' });
    const w = clickEvent(770, 77, { event_ts: ts + 231_380, device_id: 'dev-77', event_id: 'chain-w' });
    await createClickBalanceHandler(deps())(adEventsBatch([v, x, w]));
    const handler = createCompensationHandler(deps());
    await handler(compensationBatch([compensationEvent(w, { original_event_id: 'chain-x', compensation_id: 'comp-w-of-x' })], 8, 0));
    const middle = await handler(compensationBatch([compensationEvent(x, { original_event_id: 'chain-v', compensation_id: 'comp-x-of-v' })], 8, 1));
    expect(middle.refunded).toBe(1);
    expect(await balanceOf(stores.pool, 77)).toBe('900');
  });

  test('a duplicate group keeps one charge when the pair is seen again in the other order', async () => {
    await seedAdvertiser(stores.pool, 76, '1000');
    await seedCampaign(stores.pool, { campaignId: 760, advertiserId: 76, cpc: '100', dailyBudget: null });
    const ts = Date.now() - 60_000;
    const a = clickEvent(760, 76, { event_ts: ts, device_id: 'dev-76', event_id: 'pair-a' });
    const b = clickEvent(760, 76, { event_ts: ts, device_id: 'dev-76', event_id: 'pair-b' });
    await createClickBalanceHandler(deps())(adEventsBatch([a, b]));
    const handler = createCompensationHandler(deps());
    // b is the duplicate of a; a re-created Flink statement then sees the same-millisecond pair the other way round.
    await handler(compensationBatch([compensationEvent(b, { original_event_id: 'pair-a', compensation_id: 'comp-b-of-a' })], 7, 0));
    const reversed = await handler(compensationBatch([compensationEvent(a, { original_event_id: 'pair-b', compensation_id: 'comp-a-of-b' })], 7, 1));
    expect(reversed.refunded).toBe(0);
    expect(await balanceOf(stores.pool, 76)).toBe('900');
    const outcomes = await stores.pool.query('SELECT compensation_id, outcome FROM duplicate_clicks WHERE advertiser_id = 76 ORDER BY compensation_id');
    expect(outcomes.rows).toEqual([
      { compensation_id: 'comp-a-of-b', outcome: 'ORIGINAL_KEPT' },
      { compensation_id: 'comp-b-of-a', outcome: 'REFUNDED' },
    ]);

    // Both orders in one batch: one of the two is kept.
    const c = clickEvent(760, 76, { event_ts: ts, device_id: 'dev-76b', event_id: 'pair-c' });
    const d = clickEvent(760, 76, { event_ts: ts, device_id: 'dev-76b', event_id: 'pair-d' });
    await createClickBalanceHandler(deps())(adEventsBatch([c, d], 1));
    const both = await handler(
      compensationBatch(
        [
          compensationEvent(d, { original_event_id: 'pair-c', compensation_id: 'comp-d-of-c' }),
          compensationEvent(c, { original_event_id: 'pair-d', compensation_id: 'comp-c-of-d' }),
        ],
        7,
        2,
      ),
    );
    expect(both.refunded).toBe(1);
    expect(await balanceOf(stores.pool, 76)).toBe('800');
  });

  test('a same-millisecond group of three keeps one charge when v1 judged it in arrival order and v2 by event id', async () => {
    // a < b < c in one millisecond, arriving c, b, a. v1 (LAG in arrival order) names b a
    // duplicate of c and a one of b; v2, re-created over the same offsets, names b and c
    // duplicates of a. No pair is the other's exact reverse, yet the four form a cycle a ← b ← c ← a.
    const campaign = await advertiserWithCampaign(84);
    const ts = Date.now() - 60_000;
    const [a, b, c] = ['trio-a', 'trio-b', 'trio-c'].map((id) => clickEvent(campaign, 84, { event_ts: ts, device_id: 'dev-84', event_id: id }));
    await createClickBalanceHandler(deps())(adEventsBatch([c, b, a]));
    const handler = createCompensationHandler(deps());
    const of = (duplicate: typeof a, original: typeof a) =>
      compensationEvent(duplicate, { original_event_id: original.event_id, original_event_ts: ts, compensation_id: `sha-${duplicate.event_id}` });

    await handler(compensationBatch([of(b, c), of(a, b)], 12, 0));
    await handler(compensationBatch([of(b, a), of(c, a)], 12, 2));

    expect(await balanceOf(stores.pool, 84)).toBe('900');
    const outcomes = await stores.pool.query(
      "SELECT duplicate_event_id || ' of ' || original_event_id AS pair, outcome FROM duplicate_clicks WHERE advertiser_id = 84 ORDER BY created_at, 1",
    );
    expect(outcomes.rows).toEqual([
      { pair: 'trio-a of trio-b', outcome: 'REFUNDED' },
      { pair: 'trio-b of trio-c', outcome: 'REFUNDED' },
      // b of a carries b's compensation_id (both versions derive it from the duplicate): a no-op.
      { pair: 'trio-c of trio-a', outcome: 'ORIGINAL_KEPT' },
    ]);

    // The cycle in one batch: each wave sees the refunds of the waves before it.
    const [d, e, f] = ['trio-d', 'trio-e', 'trio-f'].map((id) => clickEvent(campaign, 84, { event_ts: ts, device_id: 'dev-84b', event_id: id }));
    await createClickBalanceHandler(deps())(adEventsBatch([f, e, d], 1));
    const oneBatch = await handler(compensationBatch([of(e, f), of(d, e), of(f, d)], 12, 4));
    expect(oneBatch.refunded).toBe(2);
    expect(await balanceOf(stores.pool, 84)).toBe('800');
  });

  test('a compensation naming a click as a duplicate of itself refunds nothing and does not hide its real compensation', async () => {
    // Flink's duplicate-clicks v2 sees a click redelivered to ad-events (a producer retry, the
    // same event_id and event_ts) as two first clicks of one millisecond: LAG gives the second
    // copy the first as its previous click, so it emits x as a duplicate of x, under x's
    // compensation_id. The worker charges x once; that charge is x's, nothing duplicates it.
    const campaign = await advertiserWithCampaign(79);
    const ts = Date.now() - 120_000;
    const x = clickEvent(campaign, 79, { event_ts: ts, device_id: 'dev-79', event_id: 'self-x' });
    await createClickBalanceHandler(deps())(adEventsBatch([x, x]));
    const handler = createCompensationHandler(deps());
    const ofItself = compensationEvent(x, { original_event_id: 'self-x', original_event_ts: ts, compensation_id: 'comp-self-x' });

    const alone = await handler(compensationBatch([ofItself], 9, 0));

    expect(alone).toMatchObject({ refunded: 0, voided: 0, deadLettered: 1 });
    expect(await balanceOf(stores.pool, 79)).toBe('900');
    expect((await letters(9)).map((l) => l.reason)).toEqual(['SELF_DUPLICATE']);
    expect(await countRows(stores.pool, 'duplicate_clicks', 'advertiser_id = 79')).toBe(0);

    // y, redelivered, 10 s after w: Flink emits y of w and y of y, one compensation_id, in either
    // order. In one batch or in two, y is refunded exactly once.
    const w = clickEvent(campaign, 79, { event_ts: ts, device_id: 'dev-79b', event_id: 'self-w' });
    const y = clickEvent(campaign, 79, { event_ts: ts + 10_000, device_id: 'dev-79b', event_id: 'self-y' });
    const z = clickEvent(campaign, 79, { event_ts: ts + 10_000, device_id: 'dev-79c', event_id: 'self-z' });
    await createClickBalanceHandler(deps())(adEventsBatch([w, y, y, z, z], 1));
    expect(await balanceOf(stores.pool, 79)).toBe('600');
    const yOfY = compensationEvent(y, { original_event_id: 'self-y', original_event_ts: y.event_ts, compensation_id: 'comp-self-y' });
    const yOfW = compensationEvent(y, { original_event_id: 'self-w', original_event_ts: w.event_ts, compensation_id: 'comp-self-y' });
    const oneBatch = await handler(compensationBatch([yOfY, yOfW], 9, 1));
    expect(oneBatch.refunded).toBe(1);
    expect(await balanceOf(stores.pool, 79)).toBe('700');

    const zOfZ = compensationEvent(z, { original_event_id: 'self-z', original_event_ts: z.event_ts, compensation_id: 'comp-self-z' });
    const zOfW = compensationEvent(z, { original_event_id: 'self-w', original_event_ts: w.event_ts, compensation_id: 'comp-self-z' });
    const first = await handler(compensationBatch([zOfZ], 9, 3));
    const second = await handler(compensationBatch([zOfW], 9, 4));
    expect([first.refunded, second.refunded]).toEqual([0, 1]);
    expect(await balanceOf(stores.pool, 79)).toBe('800');
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'REFUND' AND advertiser_id = 79")).toBe(2);

    // Before its click, it voids nothing: the click is charged when it arrives.
    const v = clickEvent(campaign, 79, { event_ts: ts, device_id: 'dev-79d', event_id: 'self-v' });
    const early = await handler(compensationBatch([compensationEvent(v, { original_event_id: 'self-v', original_event_ts: ts })], 9, 5));
    expect(early).toMatchObject({ voided: 0, deadLettered: 1 });
    expect(await createClickBalanceHandler(deps())(adEventsBatch([v], 2))).toMatchObject({ charged: 1, voided: 0 });
    expect(await balanceOf(stores.pool, 79)).toBe('700');
  });

  test('a duplicate whose quoted price is malformed, negative or absurd is refunded like any other: the quote is informational on both sides', async () => {
    // click-balance drops an unusable actual_price and charges the click; Flink's duplicate rule
    // copies that same text into refund_amount (it casts nothing). The refund must not depend on it.
    await seedAdvertiser(stores.pool, 80, '1000');
    await seedCampaign(stores.pool, { campaignId: 800, advertiserId: 80, cpc: '10', dailyBudget: null });
    const quotes: unknown[] = ['-5.00', '99999999.99', '1.234', 'twelve', '', 120.5];
    const duplicates = quotes.map((quote) => clickEvent(800, 80, { actual_price: quote }));
    const charge = await createClickBalanceHandler(deps())(adEventsBatch(duplicates));
    expect(charge).toMatchObject({ charged: quotes.length, deadLettered: 0 });
    expect(await balanceOf(stores.pool, 80)).toBe('940');

    const refund = await createCompensationHandler(deps())(
      compensationBatch(
        duplicates.map((click) => compensationEvent(click, { refund_amount: click.actual_price })),
        10,
        0,
      ),
    );

    expect(refund).toMatchObject({ refunded: quotes.length, deadLettered: 0 });
    expect(await balanceOf(stores.pool, 80)).toBe('1000');
    const log = await stores.pool.query('SELECT quoted_refund_amount FROM duplicate_clicks WHERE advertiser_id = 80');
    expect(log.rows).toEqual(quotes.map(() => ({ quoted_refund_amount: null })));
  });

  test('the same compensation redelivered to concurrent invocations, with a second id for the same click, refunds once', async () => {
    await seedAdvertiser(stores.pool, 81, '1000');
    await seedCampaign(stores.pool, { campaignId: 810, advertiserId: 81, cpc: '10', dailyBudget: null });
    for (let round = 0; round < 3; round++) {
      const click = clickEvent(810, 81);
      await createClickBalanceHandler(deps())(adEventsBatch([click], 3, round));
      const blocker = await stores.pool.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM advertisers WHERE advertiser_id = 81 FOR UPDATE');
      const copies = [0, 1, 2, 3].map((i) =>
        createCompensationHandler(deps())(
          compensationBatch([compensationEvent(click, i === 3 ? { compensation_id: `other-${click.event_id}`.slice(0, 64) } : {})], 11 + i, round),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      await blocker.query('COMMIT');
      blocker.release();
      const summaries = await Promise.all(copies);
      expect(summaries.reduce((n, s) => n + s.refunded, 0)).toBe(1);
      expect(summaries.reduce((n, s) => n + s.voided, 0)).toBe(0);
      expect(await balanceOf(stores.pool, 81)).toBe('1000');
    }
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'REFUND' AND advertiser_id = 81")).toBe(3);
  });

  test('a refund returns what the click was charged although the CPC changed since', async () => {
    await seedAdvertiser(stores.pool, 82, '1000');
    await seedCampaign(stores.pool, { campaignId: 820, advertiserId: 82, cpc: '12.345678', dailyBudget: '5000' });
    const click = clickEvent(820, 82);
    await createClickBalanceHandler(deps())(adEventsBatch([click]));
    await stores.pool.query("UPDATE campaigns SET cpc = '99.99' WHERE campaign_id = 820");

    const refund = await createCompensationHandler(deps())(compensationBatch([compensationEvent(click)]));

    expect(refund).toMatchObject({ refunded: 1, refundedAmount: '12.345678' });
    expect(await balanceOf(stores.pool, 82)).toBe('1000.000000');
    const spend = await stores.pool.query('SELECT spend::text, clicks::int FROM campaign_daily_spend WHERE campaign_id = 820');
    expect(spend.rows).toEqual([{ spend: '0.000000', clicks: 0 }]);
  });

  test('a duplicate of yesterday refunded after the reset restores yesterday, not today, and resumes nothing', async () => {
    await seedAdvertiser(stores.pool, 83, '1000');
    await seedCampaign(stores.pool, { campaignId: 830, advertiserId: 83, cpc: '50', dailyBudget: '100' });
    const yesterday = Date.now() - 86_400_000;
    const clicks = [clickEvent(830, 83, { event_ts: yesterday }), clickEvent(830, 83, { event_ts: yesterday })];
    await createClickBalanceHandler(deps())(adEventsBatch(clicks));
    const today = clickEvent(830, 83);
    await createClickBalanceHandler(deps())(adEventsBatch([today], 1));
    await stores.pool.query("UPDATE campaigns SET status = 'PAUSED', paused_reason = 'BUDGET_EXHAUSTED' WHERE campaign_id = 830");

    const refund = await createCompensationHandler(deps())(compensationBatch([compensationEvent(clicks[1])]));

    expect(refund.refunded).toBe(1);
    expect(await balanceOf(stores.pool, 83)).toBe('900');
    const spend = await stores.pool.query('SELECT spend_date::text, spend::text FROM campaign_daily_spend WHERE campaign_id = 830 ORDER BY spend_date');
    expect(spend.rows.map((r) => r.spend)).toEqual(['50', '50']);
    const campaign = await stores.pool.query('SELECT status, paused_reason FROM campaigns WHERE campaign_id = 830');
    expect(campaign.rows[0]).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_RESUMED' AND payload->>'campaign_id' = '830'")).toBe(0);
  });

  test('a refund that brings spend back under the budget leaves the campaign paused until the reset', async () => {
    await seedAdvertiser(stores.pool, 78, '10000');
    await seedCampaign(stores.pool, { campaignId: 780, advertiserId: 78, cpc: '100', dailyBudget: '300' });
    const clicks = Array.from({ length: 3 }, () => clickEvent(780, 78));
    await createClickBalanceHandler(deps())(adEventsBatch(clicks));
    await createCompensationHandler(deps())(compensationBatch([compensationEvent(clicks[2])], 8, 0));
    const campaign = await stores.pool.query('SELECT status, paused_reason FROM campaigns WHERE campaign_id = 780');
    expect(campaign.rows[0]).toEqual({ status: 'PAUSED', paused_reason: 'BUDGET_EXHAUSTED' });
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_RESUMED' AND payload->>'campaign_id' = '780'")).toBe(0);
    const spend = await stores.pool.query('SELECT spend::text FROM campaign_daily_spend WHERE campaign_id = 780');
    expect(spend.rows[0].spend).toBe('200');
  });

  test('a void is found in the partition of the day before or after the click; one dated further away is the documented gap, reported by reconcile', async () => {
    // The voids are partitioned by the budget day of the compensation's duplicate_event_ts; the
    // charge looks in the click's day ± 1 (migration 1764940000000_partitioned-voids-duplicates).
    await seedAdvertiser(stores.pool, 91, '1000');
    await seedCampaign(stores.pool, { campaignId: 910, advertiserId: 91, cpc: '10', dailyBudget: null });
    const ts = Date.now() - 3_600_000;
    const nearClick = clickEvent(910, 91, { event_ts: ts });
    const farClick = clickEvent(910, 91, { event_ts: ts });
    const voids = await createCompensationHandler(deps())(
      compensationBatch([compensationEvent({ ...nearClick, event_ts: ts - 86_400_000 }), compensationEvent({ ...farClick, event_ts: ts - 3 * 86_400_000 })]),
    );
    expect(voids).toMatchObject({ voided: 2, refunded: 0, deadLettered: 0 });
    const days = await stores.pool.query<{ n: number }>('SELECT count(DISTINCT tableoid)::int AS n FROM click_voids WHERE advertiser_id = 91');
    expect(days.rows[0].n).toBe(2);

    const clicks = await createClickBalanceHandler(deps())(adEventsBatch([nearClick, farClick]));

    // The near void applies; the far one is not looked for, so that click is charged.
    expect(clicks).toMatchObject({ charged: 1, deadLettered: 0 });
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'DEDUCT' AND event_id = $1", [nearClick.event_id])).toBe(0);
    expect(await balanceOf(stores.pool, 91)).toBe('990');
    const report = await reconcileLedger(stores.pool);
    expect(report.checks.chargedAndVoided.ids).toContain(farClick.event_id);
    expect(report.checks.chargedAndVoided.ids).not.toContain(nearClick.event_id);
  });
});
