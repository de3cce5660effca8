import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import {
  balanceOf,
  countRows,
  isolatedWorkerStores,
  seedAdvertiser,
  seedCampaign,
} from './support/test-database';

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
    const refund = await stores.pool.query("SELECT amount::text, compensation_id FROM ad_balance_histories WHERE type = 'REFUND' AND event_id = $1", [click.event_id]);
    expect(refund.rows).toEqual([{ amount: '120.55', compensation_id: `comp-${click.event_id}`.slice(0, 64) }]);
    const log = await stores.pool.query('SELECT outcome, refunded_amount::text, quoted_refund_amount::text FROM duplicate_clicks WHERE duplicate_event_id = $1', [click.event_id]);
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
    const outcomes = await stores.pool.query('SELECT compensation_id, outcome FROM duplicate_clicks WHERE advertiser_id = 2 ORDER BY created_at, compensation_id');
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
          await compensationHandler(compensationBatch(duplicates.slice(Math.max(0, i - 3), i + 1).map((c) => compensationEvent(c)), 0, i));
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

  test('a compensation for an unknown campaign or a negative refund quote is dead-lettered and refunds nothing', async () => {
    await seedAdvertiser(stores.pool, 5, '100');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, cpc: '10', dailyBudget: null });
    const click = clickEvent(51, 5);
    await createClickBalanceHandler(deps())(adEventsBatch([click]));
    const summary = await createCompensationHandler(deps())(
      compensationBatch([
        compensationEvent(click, { campaign_id: 999999, compensation_id: 'c-unknown' }),
        compensationEvent(click, { refund_amount: '-10.00', compensation_id: 'c-negative' }),
      ], 3, 70),
    );
    expect(summary).toMatchObject({ records: 2, refunded: 0, deadLettered: 2 });
    expect(await balanceOf(stores.pool, 5)).toBe('90');
    const letters = await stores.pool.query("SELECT reason, kafka_partition, kafka_offset::int FROM dead_letters WHERE handler = 'compensation' AND kafka_partition = 3 ORDER BY kafka_offset");
    expect(letters.rows).toEqual([
      { reason: 'UNKNOWN_CAMPAIGN', kafka_partition: 3, kafka_offset: 70 },
      { reason: 'ABSURD_AMOUNT', kafka_partition: 3, kafka_offset: 71 },
    ]);
  });
});
