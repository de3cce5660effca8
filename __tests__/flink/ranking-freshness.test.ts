/**
 * GIVEN the ranking statement (20-rtb-ranking, the deployed version: v5) on the local Flink engine, fed a full day of
 *   event time: two stable slots (one with a single campaign, one with two), an ad event every
 *   5 minutes and a new product-metrics-24h row every hour with unchanged counts
 * WHEN its rtb-rankings-v2 changelog is delivered, record by record (the worst batching), to the
 *   ranking-cache worker on real Redis, each record on the partition Kafka's default partitioner
 *   gives its key (murmur2 of the key bytes, 6 partitions), the worker's clock 30 s behind each
 *   heartbeat (slot rows first, then heartbeats: the local engine does not interleave input
 *   topics by time)
 * THEN the statement writes each 5-minute heartbeat under all 64 keys ('', '#00')..('', '#63'),
 *   upserts only, and the keys reach every partition; the bidder, looking three times per
 *   heartbeat with one MGET (contracts/rankings.ts), always finds both slots fresh and present
 *   (right after each delivery, mid-way, and the last millisecond before the next); a slot's
 *   stored version (as_of) never goes back, and a replay of the whole changelog leaves every
 *   slot as it was; while the worker delivers nothing from one partition for the last hour
 *   (the others go on), the bidder reads stale from the freshness bound after that partition's
 *   last heartbeat, and fresh again once it catches up; once the input stops, the rankings
 *   read stale exactly the freshness bound after the last heartbeat's event time.
 */
import { Partitioners } from 'kafkajs';
import {
  RANKING_FRESHNESS_KEY,
  RANKING_HEARTBEAT_KEY_COUNT,
  RankingFreshness,
  RankingKey,
  rankingCacheKey,
  rankingHeartbeatCategory,
  RTB_RANKINGS_PARTITIONS,
  RTB_RANKINGS_TOPIC,
} from '../../contracts';
import { defaultFlinkConfig, rankingHeartbeatPartitions } from '../../config/flink';
import { DEFAULT_RANKING_FRESHNESS_SECONDS } from '../../lambdas/ranking-cache/ranking-cache';
import type { LambdaKafkaEvent } from '../../lambdas/shared/kafka-event';
import { ChangelogRow } from '../../scripts/flink-engine';
import { runScenario, Scenario, ScenarioInput } from '../../scripts/flink-scenarios';
import { rankingWorker, useEngineAndStores } from './support/engine-and-stores';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const single: RankingKey = { placement: 'home_top', category: 'shoes' };
const pair: RankingKey = { placement: 'home_top', category: 'bags' };

const stores = useEngineAndStores();

/** Flink's TIMESTAMP(3) text of an epoch-ms instant (UTC). */
function sqlTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

function dayScenario(start: number): Scenario {
  const inputs: ScenarioInput[] = [];
  const campaign = (id: number, slot: RankingKey, productId: number, bid: string): ScenarioInput => ({
    topic: 'campaign-events',
    key: String(id),
    value: {
      event_id: `ce-${id}`,
      event_type: 'CAMPAIGN_CREATED',
      campaign_id: id,
      advertiser_id: 100,
      status: 'ACTIVE',
      product_id: productId,
      ...slot,
      bid_price: bid,
      event_ts: start - HOUR,
    },
  });
  inputs.push(campaign(1, single, 1000, '1.00'), campaign(2, pair, 2000, '2.00'), campaign(3, pair, 3000, '1.50'));
  for (let t = start; t <= start + 24 * HOUR; t += 5 * MINUTE) {
    inputs.push({
      topic: 'ad-events',
      key: `e-${t}`,
      value: {
        event_id: `e-${t}`,
        event_type: 'IMPRESSION',
        event_ts: t,
        campaign_id: 1,
        advertiser_id: 100,
        product_id: 1000,
        ad_id: 'ad-1',
        ...single,
        device_id: 'd-1',
        session_id: 's-1',
      },
    });
  }
  for (let end = start + HOUR; end <= start + 24 * HOUR; end += HOUR) {
    for (const productId of [1000, 2000, 3000]) {
      inputs.push({
        topic: 'product-metrics-24h',
        key: null,
        value: {
          product_id: productId,
          window_start: sqlTimestamp(end - 24 * HOUR),
          window_end: sqlTimestamp(end),
          impressions: 1000,
          clicks: 20,
          conversions: 1,
          ctr: 0.02,
          cvr: 0.05,
        },
        timestamp: end,
      });
    }
  }
  return { description: 'a stable day', pipeline: 'rtb-ranking', version: defaultFlinkConfig.pipelines['rtb-ranking'].version, inputs, expect: {} };
}

function keyOf(row: Record<string, unknown>): RankingKey {
  return { placement: row.placement as string, category: row.category as string };
}

/** Kafka's default partitioner (murmur2 of the key bytes, as the Java client), over the topic's partitions. */
const partitioner = Partitioners.DefaultPartitioner();
const partitionMetadata = Array.from({ length: RTB_RANKINGS_PARTITIONS }, (_, partitionId) => ({
  partitionId,
  leader: 0,
  replicas: [0],
  isr: [0],
  partitionErrorCode: 0,
}));

function keyBytes(row: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify(keyOf(row)));
}

function partitionOf(row: Record<string, unknown>): number {
  return partitioner({ topic: RTB_RANKINGS_TOPIC, partitionMetadata, message: { key: keyBytes(row), value: null } });
}

/** Next offset per partition of the delivered topic. */
const offsets = new Array<number>(RTB_RANKINGS_PARTITIONS).fill(0);

/** One changelog row as the Kafka record the upsert sink writes (an upsert, or a tombstone for -D), on its key's partition. */
function asEvent(row: ChangelogRow): LambdaKafkaEvent {
  const partition = partitionOf(row.row);
  const offset = offsets[partition]++;
  const key = keyBytes(row.row).toString('base64');
  const value = row.op === '-D' ? null : Buffer.from(JSON.stringify(row.row)).toString('base64');
  return {
    eventSource: 'SelfManagedKafka',
    bootstrapServers: 'local:9092',
    records: {
      [`${RTB_RANKINGS_TOPIC}-${partition}`]: [
        { topic: RTB_RANKINGS_TOPIC, partition, offset, timestamp: offset, timestampType: 'CREATE_TIME', key, value, headers: [] },
      ],
    },
  };
}

test('a full day of event time: the bidder never misses a stable slot and always reads it fresh; after the input stops it reads stale at the bound', async () => {
  // Event time in the future of Redis's own clock, so PXAT expiries are real.
  const start = Math.ceil(Date.now() / (5 * MINUTE)) * 5 * MINUTE + 5 * MINUTE;
  const result = await runScenario(stores.engine, dayScenario(start));
  expect(result.problems).toEqual([]);
  const changelog = result.sinks['rtb-rankings-v2'] ?? [];

  // The statement: every 5 minutes of the day a heartbeat under each of the 64 keys, each key's
  // in order, and upserts only.
  const heartbeatRows = changelog.filter((c) => c.row.placement === '');
  const buckets = [...new Set(heartbeatRows.map((c) => c.row.as_of as number))].sort((a, b) => a - b);
  expect(buckets[0]).toBe(start);
  expect(buckets[buckets.length - 1]).toBe(start + 24 * HOUR);
  expect(buckets.every((asOf, i) => i === 0 || asOf - buckets[i - 1] === 5 * MINUTE)).toBe(true);
  const categories = Array.from({ length: RANKING_HEARTBEAT_KEY_COUNT }, (_, i) => rankingHeartbeatCategory(i));
  for (const category of categories) {
    expect(heartbeatRows.filter((c) => c.row.category === category).map((c) => c.row.as_of)).toEqual(buckets);
  }
  expect(heartbeatRows).toHaveLength(RANKING_HEARTBEAT_KEY_COUNT * buckets.length);
  expect(changelog.some((c) => c.op === '-U')).toBe(false);
  const deletes = changelog.filter((c) => c.op === '-D').length;
  // Where Kafka would put the 64 keys (here: the JSON key bytes; on Confluent the bytes carry
  // the schema id too, so the spread differs per environment): every partition gets some.
  const heartbeatPartitions = new Set(categories.map((category) => partitionOf({ placement: '', category })));
  expect(heartbeatPartitions.size).toBe(RTB_RANKINGS_PARTITIONS);
  // The partition the worker will be stuck on for the last hour: the one holding the two-campaign slot.
  const lagging = partitionOf({ ...pair });

  // The worker, record by record; the bidder looks three times per 5 minutes of event time.
  let clock = start - MINUTE;
  expect(rankingHeartbeatPartitions(defaultFlinkConfig)).toBe(RTB_RANKINGS_PARTITIONS);
  const worker = rankingWorker(stores, () => clock, rankingHeartbeatPartitions(defaultFlinkConfig));
  const { handler } = worker;
  const bound = DEFAULT_RANKING_FRESHNESS_SECONDS * 1000;
  const view = async (t: number, slot: RankingKey): Promise<string> => {
    const [ranking, fresh] = await stores.redis.mget(rankingCacheKey(slot), RANKING_FRESHNESS_KEY);
    if (fresh === null || (JSON.parse(fresh) as RankingFreshness).fresh_until <= t) return 'stale';
    return ranking === null ? 'missing' : 'fresh';
  };
  let looks = 0;
  // The local engine reads its input topics one after the other, not interleaved by time, so
  // the slot rows (ordered among themselves) are delivered first, then the heartbeats (ordered).
  const slotRows = changelog.filter((c) => c.row.placement !== '');
  let staleLooks = 0;
  try {
    const present = new Set<string>();
    const versions = new Map<string, number>();
    for (const row of slotRows) {
      await handler(asEvent(row));
      // A slot is present from its first versioned ranking on (v4's rows before it carry only a
      // version; a row without one is an intermediate the worker never writes).
      if (row.op !== '-D' && Array.isArray(row.row.ranking) && typeof row.row.as_of === 'number') present.add(rankingCacheKey(keyOf(row.row)));
      // Never missing once written, even between Flink's delete and insert of one update; the
      // stored version never goes back.
      for (const key of present) {
        const stored = await stores.redis.get(key);
        expect(stored).not.toBeNull();
        const asOf = (JSON.parse(stored!) as { as_of: number }).as_of;
        expect(asOf).toBeGreaterThanOrEqual(versions.get(key) ?? 0);
        versions.set(key, asOf);
      }
    }
    // Every slot's version is the newest input bearing on it: the last hourly metrics row.
    expect([...versions.values()]).toEqual([start + 24 * HOUR, start + 24 * HOUR]);
    // The whole changelog again (a consumer reset, a rebuilt statement catching up): no row
    // older than the stored one is applied, and the slots end where they were.
    const settled = async () => Promise.all([single, pair].map((slot) => stores.redis.get(rankingCacheKey(slot))));
    const before = await settled();
    let superseded = 0;
    for (const row of slotRows) {
      superseded += (await handler(asEvent(row))).rankingsSuperseded;
      if ((row.row.as_of as number) < start + 24 * HOUR) expect(await settled()).toEqual(before);
    }
    expect(superseded).toBeGreaterThan(0);
    expect(await settled()).toEqual(before);
    // Heartbeats bucket by bucket (64 records each). The freshness key moves once per bucket,
    // when the last partition gets it. For the last hour the worker delivers nothing from the
    // `lagging` partition (stuck or behind on it); the other partitions go on.
    const cut = start + 23 * HOUR;
    const held: ChangelogRow[] = [];
    for (const asOf of buckets) {
      if (asOf > start) {
        // Between the previous bucket's delivery and this one's, three looks.
        for (const t of [clock, clock + 150_000, asOf + 30_000 - 1]) {
          // Fresh until the bound after the lagging partition's last delivered heartbeat (cut).
          const expected = t < cut + bound ? 'fresh' : 'stale';
          expect([await view(t, single), await view(t, pair)]).toEqual([expected, expected]);
          if (expected === 'stale') staleLooks += 1;
          looks += 1;
        }
      }
      clock = asOf + 30_000;
      let refreshed = 0;
      for (const row of heartbeatRows.filter((c) => c.row.as_of === asOf)) {
        if (asOf > cut && partitionOf(row.row) === lagging) {
          held.push(row);
          continue;
        }
        refreshed += (await handler(asEvent(row))).freshnessRefreshed;
      }
      expect(refreshed).toBe(asOf > cut ? 0 : 1);
    }
    expect((JSON.parse((await stores.redis.get(RANKING_FRESHNESS_KEY)) ?? 'null') as RankingFreshness | null)?.as_of ?? cut).toBe(cut);
    // The lagging partition catches up: fresh again, at the last heartbeat.
    for (const row of held) await handler(asEvent(row));
    expect(JSON.parse((await stores.redis.get(RANKING_FRESHNESS_KEY))!)).toEqual({ as_of: start + 24 * HOUR, fresh_until: start + 24 * HOUR + bound });
  } finally {
    await worker.close();
  }
  expect(looks).toBe(3 * 24 * 12);
  // Stale from cut + 15 min on: the last look before the cut + 15 min bucket, then all three
  // looks before each of the nine buckets after it.
  expect(staleLooks).toBe(1 + 9 * 3);
  const last = start + 24 * HOUR;
  // The input stops: fresh up to the bound, stale from then on.
  expect([await view(last + bound - 1, single), await view(last + bound - 1, pair)]).toEqual(['fresh', 'fresh']);
  expect([await view(last + bound, single), await view(last + bound, pair)]).toEqual(['stale', 'stale']);
  const pair_ = JSON.parse((await stores.redis.get(rankingCacheKey(pair)))!) as { ranking: { campaign_id: number; rank_no: number }[] };
  expect(pair_.ranking.map((r) => [r.rank_no, r.campaign_id])).toEqual([
    [1, 2],
    [2, 3],
  ]);
  process.stderr.write(
    `ranking day: ${changelog.length} changelog rows (${slotRows.length} slot rows, ${deletes} of them deletes), ${heartbeatRows.length} heartbeat rows (${buckets.length} buckets × ${RANKING_HEARTBEAT_KEY_COUNT} keys), ${looks} bidder looks (${staleLooks} stale while partition ${lagging} lagged)\n`,
  );
}, 300_000);
