/**
 * GIVEN the local broker, `rtb-rankings` as Flink creates it (compacted, 6 partitions,
 * json-registry key and value) and the ranking-cache trigger emulated as Lambda runs it
 * WHEN ranking rows are produced the way the ranking statement writes them: upserts, newer
 * upserts of the same key, and tombstones
 * THEN the Redis keys the bidder reads hold each (placement, category)'s latest ranking, sorted,
 * with the TTL, and a tombstone removes its key.
 */
import type Redis from 'ioredis';
import { loadEnvironment } from '../../config';
import { RANKING_FRESHNESS_KEY, RankedCampaign, RankingKey, rankingCacheKey, RTB_RANKINGS_TOPIC } from '../../contracts';
import { createRankingCacheHandler, RANKING_DELETE_GRACE_SECONDS } from '../../lambdas/ranking-cache/ranking-cache';
import { KafkaEventHandler, LambdaKafkaEventSource, namespacedSettings, waitUntilCaughtUp } from '../../local/event-source';
import { RTB_RANKINGS_TOPIC_CONFIG } from '../../local/kafka-broker';
import { workerKafkaTriggers } from '../../stacks/worker-triggers';
import { jsonBytes, withWireHeader } from '../lambdas/support/kafka-fixtures';
import { isolatedWorkerStores, testRedis } from '../lambdas/support/test-database';
import { BROKER_ENVIRONMENT } from './support/global-setup';
import { kafkaForTests, produce, TestMessage } from './support/kafka';

const kafka = kafkaForTests();
const stores = isolatedWorkerStores();
const config = loadEnvironment(BROKER_ENVIRONMENT);
const KEY_SCHEMA_ID = 100_011;
const VALUE_SCHEMA_ID = 100_012;
let redis: Redis;

beforeAll(() => {
  redis = testRedis(stores.prefix);
});
afterAll(() => {
  redis.disconnect();
});

function campaign(rankNo: number, campaignId: number): RankedCampaign {
  return { rank_no: rankNo, campaign_id: campaignId, advertiser_id: 7, product_id: 9000 + campaignId, bid_price: '350.50', score: 3.5 - rankNo / 100 };
}

/** A ranking row as the Flink statement writes it (registry JSON key and value; null value = tombstone). */
function rankingRecord(key: RankingKey, ranking: RankedCampaign[] | null): TestMessage {
  return {
    key: withWireHeader(jsonBytes(key), KEY_SCHEMA_ID),
    value: ranking === null ? null : withWireHeader(jsonBytes({ ...key, ranking }), VALUE_SCHEMA_ID),
  };
}

async function cached(key: RankingKey): Promise<unknown> {
  const text = await redis.get(rankingCacheKey(key));
  return text === null ? null : JSON.parse(text);
}

describe('ranking cache through Kafka', () => {
  test('upserts, tombstones and the heartbeat on rtb-rankings-v2 become the Redis keys the bidder reads: rankings without expiry, the freshness key with the bound', async () => {
    const [topic] = await kafka.topics([{ name: RTB_RANKINGS_TOPIC, config: RTB_RANKINGS_TOPIC_CONFIG }]);
    const heartbeatAsOf = Date.now() - 60_000;
    const shoes = { placement: 'home_top', category: 'shoes' };
    const bags = { placement: 'home_top', category: 'bags' };
    const hats = { placement: 'sidebar', category: 'hats' };
    await produce(kafka.connection, topic, [
      rankingRecord(shoes, [campaign(2, 20), campaign(1, 10)]),
      rankingRecord(bags, [campaign(1, 30)]),
      rankingRecord(hats, [campaign(1, 40)]),
      // Later changes of the same keys: a new order for shoes, hats emptied.
      rankingRecord(shoes, [campaign(1, 20), campaign(2, 10), campaign(3, 50)]),
      rankingRecord(hats, null),
      // The statement's heartbeat: it has read ad events up to a minute ago.
      {
        key: withWireHeader(jsonBytes({ placement: '', category: '' }), KEY_SCHEMA_ID),
        value: withWireHeader(jsonBytes({ placement: '', category: '', as_of: heartbeatAsOf, ranking: null }), VALUE_SCHEMA_ID),
      },
    ]);
    const trigger = namespacedSettings(
      workerKafkaTriggers(config).find((t) => t.functionName === 'rankingCache')!,
      kafka.prefix,
    );
    // One handler per execution environment, as Lambda runs it: its own pool and Redis client.
    const container = () => {
      const deps = stores.deps();
      return createRankingCacheHandler({
        pool: deps.pool,
        cache: deps.cache,
        observability: deps.observability,
        budgetTimeZone: deps.budgetTimeZone,
        freshnessSeconds: config.workers.rankingTtlSeconds,
      }) as KafkaEventHandler;
    };
    const source = new LambdaKafkaEventSource({ connection: kafka.connection, settings: { ...trigger, topic }, containers: container });
    await source.start();
    try {
      await waitUntilCaughtUp(kafka.connection, trigger.consumerGroupId, topic);
    } finally {
      await source.stop();
    }

    // No cold start fails: each environment connects to Redis on its first invocation.
    expect(source.stats.failures).toBe(0);
    expect(source.environments).toBeGreaterThanOrEqual(1);
    expect(source.environments).toBeLessThanOrEqual(trigger.maxConcurrency);
    expect(await cached(shoes)).toEqual({ ...shoes, ranking: [campaign(1, 20), campaign(2, 10), campaign(3, 50)] });
    expect(await cached(bags)).toEqual({ ...bags, ranking: [campaign(1, 30)] });
    // Rankings never expire; the freshness key expires the bound after the heartbeat's event time.
    expect(await redis.ttl(rankingCacheKey(shoes))).toBe(-1);
    expect(JSON.parse((await redis.get(RANKING_FRESHNESS_KEY))!)).toEqual({
      as_of: heartbeatAsOf,
      fresh_until: heartbeatAsOf + config.workers.rankingTtlSeconds * 1000,
    });
    const ttl = await redis.pttl(RANKING_FRESHNESS_KEY);
    expect(ttl).toBeGreaterThan(config.workers.rankingTtlSeconds * 1000 - 120_000);
    expect(ttl).toBeLessThanOrEqual(config.workers.rankingTtlSeconds * 1000 - 60_000 + 1000);
    // hats was emptied: gone, or going within the delete grace.
    expect(await redis.ttl(rankingCacheKey(hats))).toBeLessThanOrEqual(RANKING_DELETE_GRACE_SECONDS);
    expect(await redis.ttl(rankingCacheKey(hats))).not.toBe(-1);
  });
});
