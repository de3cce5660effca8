/**
 * GIVEN rtb-ranking (the deployed version, v5) on the local Flink engine: a slot with campaigns
 *   2 (created 10:00) and 3 (updated 10:07); then campaign 2 paused by an event stamped 10:04,
 *   read after the 10:07 update (campaign-events is keyed by campaign: two partitions, no order
 *   between them, and an admin clock behind another)
 * WHEN the slot's settled row before the pause and the one after it are delivered to the
 *   ranking-cache worker on real Redis, in that order
 * THEN both rows carry the same as_of (the pause does not move the slot's newest event time), the
 *   one after has one campaign fewer, and the worker stores it: slot membership can shrink at an
 *   unchanged version. This is why the worker cannot tell Flink's truncated intermediate row
 *   (a rank retracted and not yet re-inserted, same as_of) from a real shrink by its length, and
 *   must not try: a rule "at an equal as_of a shorter ranking never replaces a longer one" would
 *   keep the paused campaign in the bidder's ranking until some other record moved the version
 *   (issue #15; flink-sql/README.md, "Slot versions").
 */
import { RankingKey, rankingCacheKey, RTB_RANKINGS_TOPIC } from '../../contracts';
import { defaultFlinkConfig } from '../../config/flink';
import type { LambdaKafkaEvent } from '../../lambdas/shared/kafka-event';
import { finalTable, runScenario, ScenarioInput } from '../../scripts/flink-scenarios';
import { rankingWorker, useEngineAndStores } from './support/engine-and-stores';

const MINUTE = 60_000;
const T = Date.UTC(2026, 2, 1, 10);
const slot: RankingKey = { placement: 'home_top', category: 'bags' };

const stores = useEngineAndStores();

function campaignEvent(id: number, at: number, fields: Record<string, unknown>): ScenarioInput {
  return {
    topic: 'campaign-events',
    key: String(id),
    value: { event_id: `ce-${id}-${at}`, campaign_id: id, advertiser_id: 100, status: 'ACTIVE', product_id: id * 1000, ...slot, event_ts: at, ...fields },
  };
}

/** The slot's settled row (the upsert table Flink leaves) after `inputs`. */
async function settledRow(inputs: ScenarioInput[]): Promise<Record<string, unknown>> {
  const version = defaultFlinkConfig.pipelines['rtb-ranking'].version;
  const result = await runScenario(stores.engine, { description: 'slot membership', pipeline: 'rtb-ranking', version, inputs, expect: {} });
  expect(result.problems).toEqual([]);
  const rows = finalTable(result.sinks['rtb-rankings-v2'] ?? [], ['placement', 'category']).filter(
    (r) => r.placement === slot.placement && r.category === slot.category,
  );
  expect(rows).toHaveLength(1);
  return rows[0];
}

function asEvent(row: Record<string, unknown>, offset: number): LambdaKafkaEvent {
  const record = (text: unknown) => Buffer.from(JSON.stringify(text)).toString('base64');
  return {
    eventSource: 'SelfManagedKafka',
    bootstrapServers: 'local:9092',
    records: {
      [`${RTB_RANKINGS_TOPIC}-0`]: [
        {
          topic: RTB_RANKINGS_TOPIC,
          partition: 0,
          offset,
          timestamp: offset,
          timestampType: 'CREATE_TIME',
          key: record(slot),
          value: record(row),
          headers: [],
        },
      ],
    },
  };
}

const campaigns = (row: Record<string, unknown> | null) =>
  (row?.ranking as { rank_no: number; campaign_id: number }[] | null)?.map((r) => [r.rank_no, r.campaign_id]);

test('a pause stamped behind the slot newest event shrinks the ranking at an unchanged as_of, and the worker applies it', async () => {
  const before = [
    campaignEvent(2, T, { event_type: 'CAMPAIGN_CREATED', bid_price: '2.00' }),
    campaignEvent(3, T + 7 * MINUTE, { event_type: 'CAMPAIGN_UPDATED', bid_price: '1.50' }),
  ];
  const pause = campaignEvent(2, T + 4 * MINUTE, {
    event_type: 'CAMPAIGN_PAUSED',
    status: 'PAUSED',
    product_id: null,
    placement: null,
    category: null,
    bid_price: null,
  });
  const two = await settledRow(before);
  const one = await settledRow([...before, pause]);
  expect(campaigns(two)).toEqual([
    [1, 2],
    [2, 3],
  ]);
  expect(campaigns(one)).toEqual([[1, 3]]);
  expect(one.as_of).toBe(T + 7 * MINUTE);
  expect(one.as_of).toBe(two.as_of);

  const worker = rankingWorker(stores, () => T);
  const { handler } = worker;
  try {
    expect((await handler(asEvent(two, 0))).rankingsWritten).toBe(1);
    expect((await handler(asEvent(one, 1))).rankingsWritten).toBe(1);
  } finally {
    await worker.close();
  }
  expect(campaigns(JSON.parse((await stores.redis.get(rankingCacheKey(slot)))!) as Record<string, unknown>)).toEqual([[1, 3]]);
}, 300_000);
