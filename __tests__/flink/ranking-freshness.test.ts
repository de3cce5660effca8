/**
 * GIVEN the ranking statement (20-rtb-ranking, the deployed version) on the local Flink engine, fed a full day of
 *   event time: two stable slots (one with a single campaign, one with two), an ad event every
 *   5 minutes and a new product-metrics-24h row every hour with unchanged counts
 * WHEN its rtb-rankings-v2 changelog is delivered, record by record (the worst batching), to the
 *   ranking-cache worker on real Redis, the worker's clock 30 s behind each heartbeat (slot rows
 *   first, then heartbeats: the local engine does not interleave input topics by time)
 * THEN the bidder, looking three times per heartbeat with one MGET (contracts/rankings.ts), always
 *   finds both slots fresh and present (right after each delivery, mid-way, and the last
 *   millisecond before the next); a slot's stored version (as_of) never goes back, and a replay
 *   of the whole changelog leaves every slot as it was; once the
 *   input stops, the rankings read stale exactly the freshness bound after the last heartbeat's
 *   event time.
 */
import { RANKING_FRESHNESS_KEY, RankingFreshness, RankingKey, rankingCacheKey, RTB_RANKINGS_TOPIC } from '../../contracts';
import { defaultFlinkConfig } from '../../config/flink';
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

/** One changelog row as the Kafka record the upsert sink writes (an upsert, or a tombstone for -D). */
function asEvent(row: ChangelogRow, offset: number): LambdaKafkaEvent {
  const key = Buffer.from(JSON.stringify(keyOf(row.row))).toString('base64');
  const value = row.op === '-D' ? null : Buffer.from(JSON.stringify(row.row)).toString('base64');
  return {
    eventSource: 'SelfManagedKafka',
    bootstrapServers: 'local:9092',
    records: {
      [`${RTB_RANKINGS_TOPIC}-0`]: [
        { topic: RTB_RANKINGS_TOPIC, partition: 0, offset, timestamp: offset, timestampType: 'CREATE_TIME', key, value, headers: [] },
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

  // The statement: a heartbeat for every 5 minutes of the day, in order, and upserts only.
  const heartbeats = changelog.filter((c) => c.row.placement === '').map((c) => c.row.as_of as number);
  expect(heartbeats[0]).toBe(start);
  expect(heartbeats[heartbeats.length - 1]).toBe(start + 24 * HOUR);
  expect(heartbeats.every((asOf, i) => i === 0 || asOf - heartbeats[i - 1] === 5 * MINUTE)).toBe(true);
  expect(changelog.some((c) => c.op === '-U')).toBe(false);
  const deletes = changelog.filter((c) => c.op === '-D').length;

  // The worker, record by record; the bidder looks three times per 5 minutes of event time.
  let clock = start - MINUTE;
  const worker = rankingWorker(stores, () => clock);
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
  const heartbeatRows = changelog.filter((c) => c.row.placement === '');
  try {
    let offset = 0;
    const present = new Set<string>();
    const versions = new Map<string, number>();
    for (const row of slotRows) {
      await handler(asEvent(row, offset));
      offset += 1;
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
      superseded += (await handler(asEvent(row, offset))).rankingsSuperseded;
      offset += 1;
      if ((row.row.as_of as number) < start + 24 * HOUR) expect(await settled()).toEqual(before);
    }
    expect(superseded).toBeGreaterThan(0);
    expect(await settled()).toEqual(before);
    for (const row of heartbeatRows) {
      const asOf = row.row.as_of as number;
      if (asOf > start) {
        // Between the previous heartbeat's delivery and this one's, every minute.
        for (const t of [clock, clock + 150_000, asOf + 30_000 - 1]) {
          expect([await view(t, single), await view(t, pair)]).toEqual(['fresh', 'fresh']);
          looks += 1;
        }
      }
      clock = asOf + 30_000;
      expect((await handler(asEvent(row, offset))).freshnessRefreshed).toBe(1);
      offset += 1;
    }
  } finally {
    await worker.close();
  }
  expect(looks).toBe(3 * 24 * 12);
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
    `ranking day: ${changelog.length} changelog rows (${slotRows.length} slot rows, ${deletes} of them deletes), ${heartbeats.length} heartbeats, ${looks} bidder looks\n`,
  );
}, 300_000);
