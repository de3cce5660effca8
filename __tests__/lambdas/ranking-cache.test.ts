import type Redis from 'ioredis';
import type { Pool } from 'pg';
import {
  RANKING_FRESHNESS_KEY,
  RANKING_HEARTBEATS_KEY,
  RankedCampaign,
  RankingFreshness,
  RankingKey,
  RankingRow,
  rankingCacheKey,
  RTB_RANKINGS_PARTITIONS,
  RTB_RANKINGS_TOPIC,
} from '../../contracts';
import {
  createRankingCacheHandler,
  DEFAULT_RANKING_FRESHNESS_SECONDS,
  parseRankingFreshnessSeconds,
  parseRankingHeartbeatPartitions,
  parseRankingRowsVersioned,
  RANKING_DELETE_GRACE_SECONDS,
  RankingCacheUnavailableError,
} from '../../lambdas/ranking-cache/ranking-cache';
import { emptiedRankingVersionKey } from '../../lambdas/ranking-cache/rankings';
import { DatabaseUnavailableError } from '../../lambdas/shared/errors';
import type { LambdaKafkaEvent, LambdaKafkaRecord } from '../../lambdas/shared/kafka-event';
import { jsonBytes, withWireHeader } from './support/kafka-fixtures';
import { cleanKeyspace, countRows, createTestDatabase, TestDatabase, testKeyPrefix, testRedis, workerDeps } from './support/test-database';

// GIVEN a fresh database (dead letters) and a keyspace of our own for every run of this file.
let db: TestDatabase;
let pool: Pool;
const prefix = testKeyPrefix();
let redis: Redis;
const closers: Array<() => Promise<void>> = [];

const KEY_SCHEMA_ID = 100_001;
const VALUE_SCHEMA_ID = 100_002;

function deps(options: { redisUrl?: string | null; databaseUrl?: string } = {}) {
  const d = workerDeps({ databaseUrl: options.databaseUrl ?? db.url, keyPrefix: prefix, redisUrl: options.redisUrl });
  closers.push(() => d.close());
  return d;
}

interface HandlerOptions {
  readonly redisUrl?: string | null;
  readonly databaseUrl?: string;
  readonly freshnessSeconds?: number;
  readonly now?: () => number;
  readonly versionedRows?: boolean;
  readonly heartbeatPartitions?: number;
  /** Called with the handler's observability (to watch its logs). */
  readonly observe?: (observability: ReturnType<typeof deps>['observability']) => void;
}

function handlerWith(options: HandlerOptions = {}) {
  const d = deps(options);
  options.observe?.(d.observability);
  return createRankingCacheHandler({
    pool: d.pool,
    cache: d.cache,
    observability: d.observability,
    budgetTimeZone: d.budgetTimeZone,
    freshnessSeconds: options.freshnessSeconds,
    now: options.now,
    versionedRows: options.versionedRows,
    heartbeatPartitions: options.heartbeatPartitions,
  });
}

const HEARTBEAT_KEY: RankingKey = { placement: '', category: '' };

/** The statement's heartbeat row as Flink writes it. */
function heartbeat(offset: number, asOf: number, partition = 0): RankingFixture {
  return { partition, offset, key: HEARTBEAT_KEY, value: { placement: '', category: '', as_of: asOf, ranking: null } };
}

async function freshness(): Promise<RankingFreshness | null> {
  const text = await redis.get(RANKING_FRESHNESS_KEY);
  return text === null ? null : (JSON.parse(text) as RankingFreshness);
}

function campaign(rankNo: number, campaignId: number): RankedCampaign {
  return { rank_no: rankNo, campaign_id: campaignId, advertiser_id: 7, product_id: 9000 + campaignId, bid_price: 350.5, score: 3.505 - rankNo / 100 };
}

function row(key: RankingKey, ranking: RankedCampaign[]): RankingRow {
  return { ...key, ranking };
}

/** Bytes as Flink's json-registry writes them: Confluent wire header + JSON. */
function registryJson(value: unknown, schemaId: number): Buffer {
  return withWireHeader(jsonBytes(value), schemaId);
}

interface RankingFixture {
  readonly partition?: number;
  readonly offset: number;
  readonly timestamp?: number;
  /** Key bytes, or an object encoded as registry JSON; undefined leaves the key out. */
  readonly key?: Buffer | RankingKey | null;
  /** Value bytes, an object encoded as registry JSON, null for a tombstone, or raw base64 text. */
  readonly value: Buffer | RankingRow | Record<string, unknown> | null | { readonly base64: string };
}

function encodeKey(key: RankingFixture['key']): string | undefined {
  if (key === undefined || key === null) return undefined;
  return (Buffer.isBuffer(key) ? key : registryJson(key, KEY_SCHEMA_ID)).toString('base64');
}

function encodeValue(value: RankingFixture['value']): string | null {
  if (value === null) return null;
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if ('base64' in value && typeof value.base64 === 'string') return value.base64;
  return registryJson(value, VALUE_SCHEMA_ID).toString('base64');
}

/** A real-shaped Lambda event of the rtb-rankings topic, records grouped by `topic-partition`. */
function rankingsEvent(fixtures: readonly RankingFixture[], eventSource: 'SelfManagedKafka' | 'aws:kafka' = 'SelfManagedKafka'): LambdaKafkaEvent {
  const records: Record<string, LambdaKafkaRecord[]> = {};
  for (const fixture of fixtures) {
    const partition = fixture.partition ?? 0;
    (records[`${RTB_RANKINGS_TOPIC}-${partition}`] ??= []).push({
      topic: RTB_RANKINGS_TOPIC,
      partition,
      offset: fixture.offset,
      timestamp: fixture.timestamp ?? 1_763_700_000_000 + fixture.offset,
      timestampType: 'CREATE_TIME',
      key: encodeKey(fixture.key),
      value: encodeValue(fixture.value),
      headers: [],
    });
  }
  return eventSource === 'aws:kafka'
    ? { eventSource, eventSourceArn: 'arn:aws:kafka:ap-northeast-2:123456789012:cluster/adstream/abcd', bootstrapServers: 'b-1:9098', records }
    : { eventSource, bootstrapServers: 'pkc-test.ap-northeast-2.aws.confluent.cloud:9092', records };
}

async function cachedRanking(key: RankingKey): Promise<RankingRow | null> {
  const text = await redis.get(rankingCacheKey(key));
  return text === null ? null : (JSON.parse(text) as RankingRow);
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = db.pool;
  redis = testRedis(prefix);
});

afterAll(async () => {
  for (const close of closers) await close();
  redis.disconnect();
  await cleanKeyspace(prefix);
  await db.drop();
});

describe('ranking-cache', () => {
  test('an upsert with wire headers on key and value stores the ranking sorted by rank_no, without expiry', async () => {
    const key = { placement: 'home_top', category: 'shoes' };
    const handler = handlerWith({ freshnessSeconds: 600 });

    const summary = await handler(rankingsEvent([{ offset: 5, key, value: row(key, [campaign(3, 30), campaign(1, 10), campaign(2, 20)]) }]));

    expect(summary).toMatchObject({ records: 1, rankingsWritten: 1, rankingsDeleted: 0, deadLettered: 0 });
    const cached = await cachedRanking(key);
    expect(cached).toEqual({ placement: 'home_top', category: 'shoes', ranking: [campaign(1, 10), campaign(2, 20), campaign(3, 30)] });
    expect(await redis.ttl(rankingCacheKey(key))).toBe(-1);
  });

  test('plain JSON without wire headers, in the MSK event shape, is stored too and keeps only contract fields', async () => {
    const key = { placement: 'search_mid', category: 'bags' };
    const value = { placement: 'search_mid', category: 'bags', ranking: [{ ...campaign(1, 41), bid_price: '350.50', extra: 'dropped' }] };
    const handler = handlerWith();

    await handler(rankingsEvent([{ offset: 0, key: jsonBytes(key), value: jsonBytes(value) }], 'aws:kafka'));

    expect(await cachedRanking(key)).toEqual({ ...key, ranking: [{ ...campaign(1, 41), bid_price: '350.50' }] });
    expect(await redis.ttl(rankingCacheKey(key))).toBe(-1);
  });

  test("a tombstone expires the key after the delete grace; an insert right after it (Flink's delete + insert of one update) keeps the key without expiry", async () => {
    const key = { placement: 'home_top', category: 'tombstoned' };
    const handler = handlerWith();
    await handler(rankingsEvent([{ offset: 0, key, value: row(key, [campaign(1, 1)]) }]));
    expect(await cachedRanking(key)).not.toBeNull();

    const summary = await handler(rankingsEvent([{ offset: 1, key, value: null }]));

    expect(summary).toMatchObject({ rankingsWritten: 0, rankingsDeleted: 1, deadLettered: 0 });
    const ttl = await redis.ttl(rankingCacheKey(key));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(RANKING_DELETE_GRACE_SECONDS);
    await handler(rankingsEvent([{ offset: 2, key, value: row(key, [campaign(1, 2)]) }]));
    expect(await redis.ttl(rankingCacheKey(key))).toBe(-1);
    expect(await cachedRanking(key)).toEqual({ ...key, ranking: [campaign(1, 2)] });
  });

  test('within a batch only the last record per key is applied, per partition order', async () => {
    const a = { placement: 'home_top', category: 'batch-a' };
    const b = { placement: 'home_top', category: 'batch-b' };
    const c = { placement: 'home_top', category: 'batch-c' };
    const handler = handlerWith();
    await handler(rankingsEvent([{ offset: 0, key: b, value: row(b, [campaign(1, 1)]) }]));

    const summary = await handler(
      rankingsEvent([
        { offset: 10, key: a, value: row(a, [campaign(1, 1)]) },
        { offset: 11, key: b, value: row(b, [campaign(1, 2)]) },
        { offset: 12, key: c, value: null },
        { offset: 13, key: a, value: row(a, [campaign(1, 3), campaign(2, 4)]) },
        { offset: 14, key: b, value: null },
        { offset: 15, key: c, value: row(c, [campaign(1, 5)]) },
      ]),
    );

    expect(summary).toMatchObject({ records: 6, skipped: 3, rankingsWritten: 2, rankingsDeleted: 1 });
    expect((await cachedRanking(a))?.ranking.map((r) => r.campaign_id)).toEqual([3, 4]);
    const bTtl = await redis.ttl(rankingCacheKey(b));
    expect(bTtl === -2 || (bTtl > 0 && bTtl <= RANKING_DELETE_GRACE_SECONDS)).toBe(true);
    expect((await cachedRanking(c))?.ranking.map((r) => r.campaign_id)).toEqual([5]);
  });

  test('the same key from two partitions (after repartitioning) resolves to the later record timestamp', async () => {
    const key = { placement: 'home_top', category: 'repartitioned' };
    const handler = handlerWith();

    await handler(
      rankingsEvent([
        { partition: 0, offset: 100, timestamp: 2_000, key, value: row(key, [campaign(1, 77)]) },
        { partition: 1, offset: 3, timestamp: 1_000, key, value: row(key, [campaign(1, 66)]) },
      ]),
    );

    expect((await cachedRanking(key))?.ranking[0].campaign_id).toBe(77);
  });

  test('bad records go to dead_letters with reason and coordinates, good ones in the batch still apply, and a redelivery records them once', async () => {
    const good = { placement: 'home_top', category: 'with-bad-neighbours' };
    const batch = rankingsEvent([
      { partition: 2, offset: 1, key: good, value: row(good, [campaign(1, 1)]) },
      { partition: 2, offset: 2, key: good, value: { base64: '***not base64***' } },
      { partition: 2, offset: 3, key: good, value: Buffer.from('{"ranking": [') },
      { partition: 2, offset: 4, key: undefined, value: row(good, [campaign(1, 2)]) },
      { partition: 2, offset: 5, key: Buffer.from('not json'), value: row(good, [campaign(1, 2)]) },
      { partition: 2, offset: 6, key: good, value: { placement: 'elsewhere', category: good.category, ranking: [] } },
      { partition: 2, offset: 7, key: good, value: { ranking: [{ ...campaign(1, 1), rank_no: 0 }] } },
      { partition: 2, offset: 8, key: good, value: { ranking: 'top' } },
      { partition: 2, offset: 9, key: { placement: 'a:b', category: 'c' }, value: { ranking: [] } },
      { partition: 2, offset: 10, key: good, value: { ranking: [{ ...campaign(1, 1), score: 'NaN' }] } },
    ]);
    const handler = handlerWith();

    const first = await handler(batch);
    const second = await handler(batch);

    expect(first).toMatchObject({ records: 10, rankingsWritten: 1, deadLettered: 9 });
    expect(second.deadLettered).toBe(9);
    expect((await cachedRanking(good))?.ranking[0].campaign_id).toBe(1);
    const letters = await pool.query<{ kafka_offset: string; reason: string; detail: string; topic: string; kafka_partition: number }>(
      `SELECT kafka_offset::text, reason, detail, topic, kafka_partition FROM dead_letters WHERE handler = 'ranking-cache' AND kafka_partition = 2 ORDER BY dead_letters.kafka_offset`,
    );
    expect(letters.rows.map((r) => [Number(r.kafka_offset), r.reason])).toEqual([
      [2, 'INVALID_BASE64'],
      [3, 'INVALID_JSON'],
      [4, 'CONTRACT_VIOLATION'],
      [5, 'INVALID_JSON'],
      [6, 'CONTRACT_VIOLATION'],
      [7, 'CONTRACT_VIOLATION'],
      [8, 'CONTRACT_VIOLATION'],
      [9, 'CONTRACT_VIOLATION'],
      [10, 'CONTRACT_VIOLATION'],
    ]);
    expect(letters.rows.every((r) => r.topic === RTB_RANKINGS_TOPIC)).toBe(true);
    expect(letters.rows.find((r) => r.kafka_offset === '6')?.detail).toMatch(/value\.placement .* differs from the record key/);
    expect(letters.rows.find((r) => r.kafka_offset === '9')?.detail).toMatch(/must not contain ':'/);
  });

  test('two slots whose names differ only in a lone UTF-16 surrogate never share a Redis key: such a name is dead-lettered', async () => {
    // Redis keys are UTF-8 bytes: a lone surrogate is encoded as U+FFFD, so "\ud800" and
    // "\udbff" would become one key and the two slots would overwrite each other's ranking.
    const first = { placement: 'surrogate_top', category: 'shoes\ud800' };
    const second = { placement: 'surrogate_top', category: 'shoes\udbff' };
    const handler = handlerWith();

    const summary = await handler(
      rankingsEvent([
        { partition: 6, offset: 1, key: first, value: row(first, [campaign(1, 1)]) },
        { partition: 6, offset: 2, key: second, value: row(second, [campaign(1, 2)]) },
      ]),
    );

    expect(summary).toMatchObject({ rankingsWritten: 0, deadLettered: 2 });
    expect(await redis.exists(rankingCacheKey({ placement: 'surrogate_top', category: 'shoes\ufffd' }))).toBe(0);
    const letters = await pool.query<{ detail: string }>(`SELECT detail FROM dead_letters WHERE handler = 'ranking-cache' AND kafka_partition = 6`);
    expect(letters.rows.map((r) => r.detail)).toEqual([expect.stringMatching(/lone UTF-16 surrogate/), expect.stringMatching(/lone UTF-16 surrogate/)]);
  });

  test('a score or bid_price string beyond a double (Infinity for the bidder) is dead-lettered like NaN, and the stored ranking stays', async () => {
    const key = { placement: 'overflow_top', category: 'shoes' };
    const handler = handlerWith();
    await handler(rankingsEvent([{ partition: 7, offset: 0, key, value: row(key, [campaign(1, 1)]) }]));

    const summary = await handler(
      rankingsEvent([
        { partition: 7, offset: 1, key, value: row(key, [{ ...campaign(1, 2), score: '1e999' }]) },
        { partition: 7, offset: 2, key, value: row(key, [{ ...campaign(1, 3), bid_price: '-1e400' }]) },
      ]),
    );

    expect(summary).toMatchObject({ rankingsWritten: 0, deadLettered: 2 });
    expect(await cachedRanking(key)).toEqual({ ...key, ranking: [campaign(1, 1)] });
  });

  test('Redis unreachable: the handler throws so the batch is retried, and records no dead letters yet', async () => {
    const key = { placement: 'home_top', category: 'redis-down' };
    const handler = handlerWith({ redisUrl: 'redis://127.0.0.1:1' });
    const batch = rankingsEvent([
      { partition: 3, offset: 1, key, value: row(key, [campaign(1, 1)]) },
      { partition: 3, offset: 2, key, value: Buffer.from('garbage') },
    ]);

    await expect(handler(batch)).rejects.toBeInstanceOf(RankingCacheUnavailableError);

    expect(await countRows(pool, 'dead_letters', 'kafka_partition = 3')).toBe(0);
    expect(await cachedRanking(key)).toBeNull();
  });

  test('Redis rejecting one ranking write fails the batch and leaves freshness where it was, so the slot is not read as fresh while the batch is retried', async () => {
    const rejected = { placement: 'rejected_top', category: 'shoes' };
    const fine = { placement: 'rejected_top', category: 'bags' };
    // Something else holds the slot's key as a hash: every write to it fails (WRONGTYPE).
    await redis.hset(rankingCacheKey(rejected), 'x', '1');
    await redis.del(RANKING_FRESHNESS_KEY);
    const handler = handlerWith();

    await expect(
      handler(
        rankingsEvent([
          { partition: 11, offset: 1, key: rejected, value: row(rejected, [campaign(1, 1)]) },
          { partition: 11, offset: 2, key: fine, value: row(fine, [campaign(1, 2)]) },
          heartbeat(3, Date.now() - 60_000, 11),
        ]),
      ),
    ).rejects.toThrow(/Redis rejected a ranking write/);

    expect(await redis.exists(RANKING_FRESHNESS_KEY)).toBe(0);
    await redis.del(rankingCacheKey(rejected));
  });

  test('a batch of only tombstones still needs Redis: unreachable Redis throws', async () => {
    const handler = handlerWith({ redisUrl: 'redis://127.0.0.1:1' });

    await expect(handler(rankingsEvent([{ offset: 1, key: { placement: 'x', category: 'y' }, value: null }]))).rejects.toThrow(/Redis is unavailable/);
  });

  test('Postgres unreachable: good records apply without it; a batch with a bad record throws to be retried', async () => {
    const key = { placement: 'home_top', category: 'pg-down' };
    const handler = handlerWith({ databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere' });

    await handler(rankingsEvent([{ offset: 1, key, value: row(key, [campaign(1, 1)]) }]));
    expect((await cachedRanking(key))?.ranking[0].campaign_id).toBe(1);

    await expect(handler(rankingsEvent([{ offset: 2, key, value: Buffer.from('{') }]))).rejects.toBeInstanceOf(DatabaseUnavailableError);
  });

  test('a batch of 10 000 slot rows (the largest workers.batchSize) is applied, with its heartbeat: the fail-fast Redis command timeout bounds a command, not the batch', async () => {
    const heartbeatAsOf = Date.now() - 60_000;
    const fixtures: RankingFixture[] = [];
    for (let i = 0; i < 10_000; i += 1) {
      const key = { placement: 'large_batch', category: `c${i}` };
      fixtures.push({ partition: 10, offset: i, key, value: row(key, [campaign(1, i)]) });
    }
    fixtures.push({ ...heartbeat(10_000, heartbeatAsOf, 10) });
    const handler = handlerWith();

    const summary = await handler(rankingsEvent(fixtures));

    expect(summary).toMatchObject({ records: 10_001, rankingsWritten: 10_000, freshnessRefreshed: 1, deadLettered: 0 });
    expect((await cachedRanking({ placement: 'large_batch', category: 'c9999' }))?.ranking).toEqual([campaign(1, 9999)]);
    expect((await freshness())?.as_of).toBe(heartbeatAsOf);
  }, 30_000);

  test('fuzzed record values and keys never crash a batch: each record is applied, superseded or dead-lettered', async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const base = Buffer.from(JSON.stringify(row({ placement: 'fuzz', category: 'c0' }, [campaign(1, 1), campaign(2, 2)])));
    const fixtures: RankingFixture[] = [];
    for (let i = 0; i < 2000; i += 1) {
      const bytes = Buffer.from(base);
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips; f += 1) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      const keyBytes =
        random() < 0.1 ? Buffer.from([0, 0, 0, 0, 1, Math.floor(random() * 256)]) : registryJson({ placement: 'fuzz', category: `c${i % 20}` }, 1);
      fixtures.push({ partition: 9, offset: i, key: keyBytes, value: random() < 0.5 ? withWireHeader(bytes, 7) : bytes });
    }
    const handler = handlerWith();

    const summary = await handler(rankingsEvent(fixtures));

    expect(summary.records).toBe(2000);
    expect(summary.rankingsWritten + summary.rankingsDeleted + summary.rankingsInconsistent + summary.skipped + summary.deadLettered).toBe(2000);
    expect(summary.deadLettered).toBeGreaterThan(0);
    expect(await countRows(pool, 'dead_letters', `handler = 'ranking-cache' AND kafka_partition = 9`)).toBe(summary.deadLettered);
    for (let i = 0; i < 20; i += 1) {
      const cached = await redis.get(rankingCacheKey({ placement: 'fuzz', category: `c${i}` }));
      if (cached !== null) expect(Array.isArray((JSON.parse(cached) as RankingRow).ranking)).toBe(true);
    }
  });
});

describe('ranking-cache freshness (the bidder contract of contracts/rankings.ts)', () => {
  const MINUTE = 60_000;
  const slot = { placement: 'fresh_top', category: 'day' };

  /** What the bidder concludes at wall-clock `t`, reading both keys in one MGET. */
  async function bidderView(t: number): Promise<'fresh' | 'stale' | 'missing'> {
    const [ranking, fresh] = await redis.mget(rankingCacheKey(slot), RANKING_FRESHNESS_KEY);
    if (fresh === null || (JSON.parse(fresh) as RankingFreshness).fresh_until <= t) return 'stale';
    return ranking === null ? 'missing' : 'fresh';
  }

  beforeEach(async () => {
    await redis.del(RANKING_FRESHNESS_KEY, rankingCacheKey(slot));
  });

  test('a stable slot over a full day of heartbeats is never missing and always fresh; once they stop it is stale within the bound', async () => {
    // Event time starts at the next 5-minute boundary; the worker's clock runs 30 s behind each
    // heartbeat's delivery (every value stays in the future of Redis's real clock).
    const start = Math.ceil(Date.now() / (5 * MINUTE)) * 5 * MINUTE + 5 * MINUTE;
    let clock = start;
    const bound = DEFAULT_RANKING_FRESHNESS_SECONDS * 1000;
    const handler = handlerWith({ now: () => clock });
    await handler(rankingsEvent([{ offset: 0, key: slot, value: row(slot, [campaign(1, 11), campaign(2, 12)]) }, heartbeat(1, start)]));
    let offset = 2;
    let views = 0;
    for (let asOf = start + 5 * MINUTE; asOf <= start + 24 * 60 * MINUTE; asOf += 5 * MINUTE) {
      // The bidder looks right after the previous delivery, mid-way, and the last millisecond
      // before heartbeat N+1 arrives (5 min 30 s after N's as_of): the worst moment.
      for (const t of [clock, clock + 150_000, asOf + 30_000 - 1]) {
        expect(await bidderView(t)).toBe('fresh');
        views += 1;
      }
      clock = asOf + 30_000;
      const summary = await handler(rankingsEvent([heartbeat(offset, asOf)]));
      offset += 1;
      expect(summary.freshnessRefreshed).toBe(1);
    }
    expect(views).toBe(3 * 24 * 12);
    const last = start + 24 * 60 * MINUTE;
    expect(await freshness()).toEqual({ as_of: last, fresh_until: last + bound });
    // The pipeline stops: no more heartbeats. Fresh until the bound, stale from then on.
    expect(await bidderView(last + bound - 1)).toBe('fresh');
    expect(await bidderView(last + bound)).toBe('stale');
    // Redis expires the key itself at fresh_until (PXAT), whoever reads it.
    const expiresAt = Date.now() + (await redis.pttl(RANKING_FRESHNESS_KEY));
    expect(Math.abs(expiresAt - (last + bound))).toBeLessThan(2_000);
    expect(await redis.ttl(rankingCacheKey(slot))).toBe(-1);
  });

  test('a stopped pipeline or worker: Redis drops the freshness key when the bound has passed', async () => {
    const handler = handlerWith({ freshnessSeconds: 1 });
    await handler(rankingsEvent([{ offset: 0, key: slot, value: row(slot, [campaign(1, 11)]) }, heartbeat(1, Date.now())]));
    expect(await redis.exists(RANKING_FRESHNESS_KEY)).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, 1_300));

    expect(await redis.exists(RANKING_FRESHNESS_KEY)).toBe(0);
    expect(await bidderView(Date.now())).toBe('stale');
    expect(await cachedRanking(slot)).not.toBeNull();
  });

  test('a replayed or redelivered older heartbeat never moves freshness back; a heartbeat already past the bound is not written', async () => {
    const now = Date.now();
    const handler = handlerWith();
    await handler(rankingsEvent([heartbeat(10, now - MINUTE)]));
    const stored = await freshness();

    const older = await handler(rankingsEvent([heartbeat(3, now - 3 * MINUTE)]));
    const same = await handler(rankingsEvent([heartbeat(10, now - MINUTE)]));
    const expired = await handler(rankingsEvent([heartbeat(1, now - 60 * MINUTE, 1)]));

    expect([older.freshnessRefreshed, same.freshnessRefreshed, expired.freshnessRefreshed]).toEqual([0, 0, 0]);
    expect([older.heartbeatsIgnored, same.heartbeatsIgnored, expired.heartbeatsIgnored]).toEqual([1, 1, 1]);
    expect(await freshness()).toEqual(stored);
    expect(stored).toEqual({ as_of: now - MINUTE, fresh_until: now - MINUTE + DEFAULT_RANKING_FRESHNESS_SECONDS * 1000 });
  });

  test('a heartbeat from a clock ahead counts from now: freshness never lasts longer than the bound', async () => {
    const now = Date.now();
    const handler = handlerWith({ now: () => now });
    await handler(rankingsEvent([heartbeat(0, now + 6 * 60 * MINUTE)]));
    expect((await freshness())?.fresh_until).toBe(now + DEFAULT_RANKING_FRESHNESS_SECONDS * 1000);
  });

  test('a heartbeat with a bad as_of, or a tombstone on the heartbeat key, is dead-lettered', async () => {
    const handler = handlerWith();
    const summary = await handler(
      rankingsEvent([
        { partition: 4, offset: 0, key: HEARTBEAT_KEY, value: { placement: '', category: '', as_of: 'soon', ranking: null } },
        { partition: 4, offset: 1, key: HEARTBEAT_KEY, value: null },
      ]),
    );
    expect(summary).toMatchObject({ deadLettered: 2, freshnessRefreshed: 0 });
  });
});

describe('ranking-cache atomic rankings', () => {
  const key = { placement: 'atomic_top', category: 'shoes' };

  test('intermediate rankings (a gap in rank_no, a campaign twice, scores out of order) are never written; the consistent ranking stays', async () => {
    const handler = handlerWith();
    await handler(rankingsEvent([{ offset: 0, key, value: row(key, [campaign(1, 10), campaign(2, 20), campaign(3, 30)]) }]));

    const gap = await handler(rankingsEvent([{ offset: 1, key, value: row(key, [campaign(1, 10), campaign(3, 30)]) }]));
    const twice = await handler(rankingsEvent([{ offset: 2, key, value: row(key, [campaign(1, 30), campaign(2, 20), campaign(3, 30)]) }]));
    const order = await handler(
      rankingsEvent([
        {
          offset: 3,
          key,
          value: row(key, [
            { ...campaign(1, 10), score: 1 },
            { ...campaign(2, 20), score: 2 },
          ]),
        },
      ]),
    );

    expect([gap.rankingsInconsistent, twice.rankingsInconsistent, order.rankingsInconsistent]).toEqual([1, 1, 1]);
    expect([gap.rankingsWritten, twice.rankingsWritten, order.rankingsWritten]).toEqual([0, 0, 0]);
    expect(gap.deadLettered + twice.deadLettered + order.deadLettered).toBe(0);
    expect(await cachedRanking(key)).toEqual({ ...key, ranking: [campaign(1, 10), campaign(2, 20), campaign(3, 30)] });
  });

  test('within a batch the latest consistent ranking wins over a later intermediate one, in one write', async () => {
    const handler = handlerWith();
    const summary = await handler(
      rankingsEvent([
        { offset: 10, key, value: row(key, [campaign(1, 20), campaign(2, 10)]) },
        { offset: 11, key, value: row(key, [campaign(1, 20), campaign(1, 30), campaign(3, 10)]) },
      ]),
    );
    expect(summary).toMatchObject({ rankingsWritten: 1, rankingsInconsistent: 1 });
    expect(await cachedRanking(key)).toEqual({ ...key, ranking: [campaign(1, 20), campaign(2, 10)] });
  });
});

describe('RANKING_TTL_SECONDS (the freshness bound)', () => {
  test('defaults to 15 minutes', () => {
    expect(parseRankingFreshnessSeconds({})).toBe(DEFAULT_RANKING_FRESHNESS_SECONDS);
    expect(DEFAULT_RANKING_FRESHNESS_SECONDS).toBe(900);
  });

  test('accepts whole seconds from one heartbeat plus a minute', () => {
    expect(parseRankingFreshnessSeconds({ RANKING_TTL_SECONDS: '360' })).toBe(360);
    expect(parseRankingFreshnessSeconds({ RANKING_TTL_SECONDS: '3600' })).toBe(3600);
  });

  test.each(['0', '60', '359', '1.5', '-60', 'ten', '86401'])('fails for %s with the allowed range', (raw) => {
    expect(() => parseRankingFreshnessSeconds({ RANKING_TTL_SECONDS: raw })).toThrow(/RANKING_TTL_SECONDS: must be whole seconds between 360 and 86400/);
  });
});

describe('ranking-cache versions (as_of on slot rows, rtb-ranking v4)', () => {
  const T = 1_772_360_000_000;
  const versioned = (key: RankingKey, ranking: RankedCampaign[], asOf: number | null) => ({ ...key, as_of: asOf, ranking });
  const ids = async (key: RankingKey) => (await cachedRanking(key))?.ranking.map((r) => r.campaign_id);

  test('a row older than the stored one is ignored in a later batch (a redelivery or replay never rolls a ranking back); equal and newer ones apply', async () => {
    const key = { placement: 'versioned_top', category: 'replay' };
    const handler = handlerWith();
    await handler(rankingsEvent([{ offset: 20, key, value: versioned(key, [campaign(1, 2), campaign(2, 1)], T + 2_000) }]));

    const older = await handler(rankingsEvent([{ offset: 10, key, value: versioned(key, [campaign(1, 1)], T + 1_000) }]));
    expect(older).toMatchObject({ rankingsWritten: 0, rankingsSuperseded: 1 });
    expect(await ids(key)).toEqual([2, 1]);

    const equal = await handler(rankingsEvent([{ offset: 21, key, value: versioned(key, [campaign(1, 1), campaign(2, 2)], T + 2_000) }]));
    expect(equal).toMatchObject({ rankingsWritten: 1, rankingsSuperseded: 0 });
    expect(await ids(key)).toEqual([1, 2]);
    const newer = await handler(rankingsEvent([{ offset: 22, key, value: versioned(key, [campaign(1, 3)], T + 3_000) }]));
    expect(newer.rankingsWritten).toBe(1);
    expect(await cachedRanking(key)).toEqual({ ...key, as_of: T + 3_000, ranking: [campaign(1, 3)] });
  });

  test('within a batch the highest as_of wins over a later row with a lower one (Flink between retracting and re-inserting a clock)', async () => {
    const key = { placement: 'versioned_top', category: 'in-batch' };
    const handler = handlerWith();
    const summary = await handler(
      rankingsEvent([
        { offset: 1, key, value: versioned(key, [campaign(1, 5)], T + 5_000) },
        { offset: 2, key, value: versioned(key, [campaign(1, 4)], T + 4_000) },
      ]),
    );
    expect(summary).toMatchObject({ rankingsWritten: 1, skipped: 1 });
    expect(await ids(key)).toEqual([5]);
  });

  test('a row without as_of (rtb-ranking v3) never replaces a versioned ranking; a versioned row replaces an unversioned one', async () => {
    const key = { placement: 'versioned_top', category: 'upgrade' };
    const handler = handlerWith();
    await handler(rankingsEvent([{ offset: 1, key, value: row(key, [campaign(1, 1)]) }]));
    await handler(rankingsEvent([{ offset: 2, key, value: versioned(key, [campaign(1, 2)], T) }]));
    expect(await ids(key)).toEqual([2]);

    const unversioned = await handler(rankingsEvent([{ offset: 3, key, value: row(key, [campaign(1, 3)]) }]));
    const tombstone = await handler(rankingsEvent([{ offset: 4, key, value: null }]));

    expect([unversioned.rankingsSuperseded, tombstone.rankingsSuperseded]).toEqual([1, 1]);
    expect(await ids(key)).toEqual([2]);
    expect(await redis.ttl(rankingCacheKey(key))).toBe(-1);
  });

  test('from a versioned statement, a row without as_of (every input clock of the slot retracted for a moment) is never written, not even to an empty key', async () => {
    const key = { placement: 'versioned_top', category: 'clockless' };
    const handler = handlerWith({ versionedRows: true });
    const clockless = await handler(rankingsEvent([{ offset: 1, key, value: row(key, [campaign(1, 1)]) }]));
    expect(clockless).toMatchObject({ rankingsWritten: 0, rankingsInconsistent: 1 });
    expect(await redis.exists(rankingCacheKey(key))).toBe(0);
    const emptied = await handler(rankingsEvent([{ offset: 2, key, value: { ...key, as_of: null, ranking: null } }]));
    expect(emptied).toMatchObject({ rankingsDeleted: 0, rankingsInconsistent: 1 });
    // The settled row that follows is written as usual.
    await handler(rankingsEvent([{ offset: 3, key, value: versioned(key, [campaign(1, 2)], T) }]));
    expect(await cachedRanking(key)).toEqual({ ...key, as_of: T, ranking: [campaign(1, 2)] });
  });

  test('RANKING_ROWS_VERSIONED is true or false (absent: false, as for v3), anything else fails at load', () => {
    expect(parseRankingRowsVersioned({ RANKING_ROWS_VERSIONED: 'true' })).toBe(true);
    expect(parseRankingRowsVersioned({ RANKING_ROWS_VERSIONED: 'false' })).toBe(false);
    expect(parseRankingRowsVersioned({})).toBe(false);
    expect(() => parseRankingRowsVersioned({ RANKING_ROWS_VERSIONED: 'yes' })).toThrow(/RANKING_ROWS_VERSIONED.*true or false/);
  });

  test('an empty slot row (ranking null, with as_of) expires the key after the delete grace unless the stored ranking is newer', async () => {
    const key = { placement: 'versioned_top', category: 'emptied' };
    const handler = handlerWith();
    await handler(rankingsEvent([{ offset: 1, key, value: versioned(key, [campaign(1, 1)], T + 2_000) }]));

    const stale = await handler(rankingsEvent([{ offset: 2, key, value: versioned(key, [], T + 1_000) }]));
    expect(stale).toMatchObject({ rankingsDeleted: 0, rankingsSuperseded: 1 });
    expect(await redis.ttl(rankingCacheKey(key))).toBe(-1);

    const emptied = await handler(rankingsEvent([{ offset: 3, key, value: { ...key, as_of: T + 3_000, ranking: null } }]));
    expect(emptied).toMatchObject({ rankingsDeleted: 1, rankingsSuperseded: 0, deadLettered: 0 });
    const ttl = await redis.ttl(rankingCacheKey(key));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(RANKING_DELETE_GRACE_SECONDS);
  });

  test('an emptied slot (every campaign paused) keeps its version: an older row in a later batch, during the delete grace or after it, never brings the paused ranking back', async () => {
    const during = { placement: 'versioned_top', category: 'paused-during-grace' };
    const after = { placement: 'versioned_top', category: 'paused-after-grace' };
    const handler = handlerWith({ versionedRows: true });
    for (const key of [during, after]) {
      await handler(rankingsEvent([{ offset: 1, key, value: versioned(key, [campaign(1, 1)], T + 1_000) }]));
      const paused = await handler(rankingsEvent([{ offset: 2, key, value: { ...key, as_of: T + 3_000, ranking: null } }]));
      expect(paused).toMatchObject({ rankingsDeleted: 1, rankingsSuperseded: 0 });
    }
    // The grace passes for one slot: Redis drops its key.
    await redis.pexpire(rankingCacheKey(after), 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await redis.exists(rankingCacheKey(after))).toBe(0);

    // A row older than the pause (Flink between retracting and re-inserting a clock, a replayed
    // or redelivered batch) arrives in a later batch.
    const stale = await handler(
      rankingsEvent([
        { offset: 3, key: during, value: versioned(during, [campaign(1, 1)], T + 2_000) },
        { partition: 1, offset: 3, key: after, value: versioned(after, [campaign(1, 1)], T + 2_000) },
      ]),
    );

    expect(stale).toMatchObject({ rankingsWritten: 0, rankingsSuperseded: 2 });
    const ttl = await redis.ttl(rankingCacheKey(during));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(RANKING_DELETE_GRACE_SECONDS);
    expect(await redis.exists(rankingCacheKey(after))).toBe(0);
    // A row at or after the pause's version (a resume) is written as usual.
    const resumed = await handler(rankingsEvent([{ offset: 4, key: during, value: versioned(during, [campaign(1, 2)], T + 3_000) }]));
    expect(resumed.rankingsWritten).toBe(1);
    expect(await redis.ttl(rankingCacheKey(during))).toBe(-1);
    expect(await cachedRanking(during)).toEqual({ ...during, as_of: T + 3_000, ranking: [campaign(1, 2)] });
    // The written ranking carries the version now; the emptied slot's own record of it is gone.
    expect(await redis.exists(emptiedRankingVersionKey(during))).toBe(0);
    expect(await redis.get(emptiedRankingVersionKey(after))).toBe(String(T + 3_000));
  });

  test('two invocations racing on one key (two partitions after repartitioning) always leave the newer ranking: the compare and the write are one atomic step in Redis', async () => {
    const key = { placement: 'versioned_top', category: 'race' };
    const older = handlerWith();
    const newer = handlerWith();
    for (let round = 0; round < 25; round += 1) {
      await redis.del(rankingCacheKey(key));
      const base = T + round * 10_000;
      await Promise.all([
        older(rankingsEvent([{ partition: 0, offset: round, key, value: versioned(key, [campaign(1, 1)], base) }])),
        newer(rankingsEvent([{ partition: 1, offset: round, key, value: versioned(key, [campaign(1, 2)], base + 1) }])),
      ]);
      expect(await ids(key)).toEqual([2]);
    }
  });

  test('an as_of that is not epoch milliseconds is dead-lettered', async () => {
    const key = { placement: 'versioned_top', category: 'bad-version' };
    const handler = handlerWith();
    const summary = await handler(
      rankingsEvent([
        { partition: 5, offset: 0, key, value: versioned(key, [campaign(1, 1)], -1) },
        { partition: 5, offset: 1, key, value: { ...key, as_of: '17', ranking: [campaign(1, 1)] } },
      ]),
    );
    expect(summary).toMatchObject({ deadLettered: 2, rankingsWritten: 0 });
  });
});

describe('ranking-cache per-partition freshness (rtb-ranking v5: the heartbeat on every partition)', () => {
  const MINUTE = 60_000;
  const PARTITIONS = RTB_RANKINGS_PARTITIONS;
  const bound = DEFAULT_RANKING_FRESHNESS_SECONDS * 1000;
  const slot = { placement: 'partitioned_top', category: 'lagging' };

  /** One of v5's 64 heartbeat rows: placement '', category '#00'..'#63'. */
  function keyedHeartbeat(partition: number, offset: number, copy: number, asOf: number): RankingFixture {
    const key = { placement: '', category: `#${String(copy).padStart(2, '0')}` };
    return { partition, offset, key, value: { ...key, as_of: asOf, ranking: null } };
  }

  /** What the bidder concludes at wall-clock `t` (one MGET, contracts/rankings.ts). */
  async function bidderView(t: number): Promise<'fresh' | 'stale' | 'missing'> {
    const [ranking, fresh] = await redis.mget(rankingCacheKey(slot), RANKING_FRESHNESS_KEY);
    if (fresh === null || (JSON.parse(fresh) as RankingFreshness).fresh_until <= t) return 'stale';
    return ranking === null ? 'missing' : 'fresh';
  }

  beforeEach(async () => {
    await redis.del(RANKING_FRESHNESS_KEY, RANKING_HEARTBEATS_KEY, rankingCacheKey(slot));
  });

  test('heartbeats keep arriving on partition 0 while partition 3 stops: the bidder reads every ranking stale within the bound', async () => {
    // Event time in the future of Redis's clock (PXAT expiries are real); the worker's clock
    // runs 30 s behind each round's delivery.
    const start = Math.ceil(Date.now() / (5 * MINUTE)) * 5 * MINUTE + 5 * MINUTE;
    let clock = start;
    const handler = handlerWith({ now: () => clock, versionedRows: true, heartbeatPartitions: PARTITIONS });
    const offsets = new Array<number>(PARTITIONS).fill(0);
    // Each partition gets some of the 64 heartbeat keys (copy c on partition c mod 6 here).
    const round = (asOf: number, partitions: readonly number[]): RankingFixture[] =>
      partitions.flatMap((p) =>
        Array.from({ length: 64 }, (_, c) => c)
          .filter((c) => c % PARTITIONS === p)
          .map((c) => keyedHeartbeat(p, offsets[p]++, c, asOf)),
      );
    const all = [0, 1, 2, 3, 4, 5];
    await handler(
      rankingsEvent([{ partition: 3, offset: offsets[3]++, key: slot, value: { ...slot, as_of: start, ranking: [campaign(1, 11)] } }, ...round(start, all)]),
    );
    expect(await bidderView(start)).toBe('fresh');

    // Three hours with every partition healthy: never stale, even just before the next round.
    let asOf = start;
    for (; asOf < start + 3 * 60 * MINUTE;) {
      for (const t of [clock, asOf + 5 * MINUTE + 30_000 - 1]) expect(await bidderView(t)).toBe('fresh');
      asOf += 5 * MINUTE;
      clock = asOf + 30_000;
      expect((await handler(rankingsEvent(round(asOf, all)))).freshnessRefreshed).toBe(1);
    }
    const lastOnPartition3 = asOf;

    // Partition 3 stops (its batch keeps failing, its leader is gone, the worker lags on it);
    // the other five keep delivering heartbeats for another hour.
    for (let next = asOf + 5 * MINUTE; next <= lastOnPartition3 + 60 * MINUTE; next += 5 * MINUTE) {
      clock = next + 30_000;
      const summary = await handler(rankingsEvent(round(next, [0, 1, 2, 4, 5])));
      expect(summary.freshnessRefreshed).toBe(0);
      expect(await bidderView(clock)).toBe(clock < lastOnPartition3 + bound ? 'fresh' : 'stale');
    }
    expect(await freshness()).toEqual({ as_of: lastOnPartition3, fresh_until: lastOnPartition3 + bound });
    expect(await bidderView(lastOnPartition3 + bound - 1)).toBe('fresh');
    expect(await bidderView(lastOnPartition3 + bound)).toBe('stale');
    const expiresAt = Date.now() + (await redis.pttl(RANKING_FRESHNESS_KEY));
    expect(Math.abs(expiresAt - (lastOnPartition3 + bound))).toBeLessThan(2_000);

    // Partition 3 catches up: fresh again at the slowest partition's heartbeat.
    const caughtUp = lastOnPartition3 + 60 * MINUTE;
    clock = caughtUp + 30_000;
    expect((await handler(rankingsEvent(round(caughtUp, [3])))).freshnessRefreshed).toBe(1);
    expect(await freshness()).toEqual({ as_of: caughtUp, fresh_until: caughtUp + bound });
  });

  test('a partition that has never delivered a heartbeat keeps the freshness key unset, and the worker warns and counts it', async () => {
    const now = Date.now();
    const warnings: unknown[][] = [];
    const metrics: unknown[][] = [];
    const handler = handlerWith({
      now: () => now,
      heartbeatPartitions: PARTITIONS,
      observe: (o) => {
        jest.spyOn(o.logger, 'warn').mockImplementation((...args: unknown[]) => void warnings.push(args));
        const addMetric = o.metrics.addMetric.bind(o.metrics);
        jest.spyOn(o.metrics, 'addMetric').mockImplementation((...args) => {
          metrics.push(args);
          return addMetric(...args);
        });
      },
    });
    const five = [0, 1, 2, 3, 4].map((p) => keyedHeartbeat(p, 0, p, now - 2 * MINUTE));

    const summary = await handler(rankingsEvent(five));

    expect(summary).toMatchObject({ freshnessRefreshed: 0, heartbeatPartitionsMissing: 1, heartbeatsIgnored: 0, deadLettered: 0 });
    expect(await redis.exists(RANKING_FRESHNESS_KEY)).toBe(0);
    expect(await bidderView(now)).toBe('stale');
    expect(warnings).toEqual([[expect.stringMatching(/without a heartbeat yet/), { missingPartitions: [5], partitions: PARTITIONS }]]);
    expect(metrics).toContainEqual(['RankingHeartbeatPartitionsMissing', 'Count', 1]);
    // Nothing is written as a slot from a heartbeat key.
    expect(await redis.exists(...[0, 1, 2, 3, 4].map((c) => rankingCacheKey({ placement: '', category: `#0${c}` })))).toBe(0);
    expect(await redis.hgetall(RANKING_HEARTBEATS_KEY)).toEqual({
      0: String(now - 2 * MINUTE),
      1: String(now - 2 * MINUTE),
      2: String(now - 2 * MINUTE),
      3: String(now - 2 * MINUTE),
      4: String(now - 2 * MINUTE),
    });

    // Partition 5's first heartbeat, newer than the others: freshness is the oldest partition's.
    const later = await handler(rankingsEvent([keyedHeartbeat(5, 0, 5, now - MINUTE)]));
    expect(later).toMatchObject({ freshnessRefreshed: 1, heartbeatPartitionsMissing: 0 });
    expect(metrics.filter(([name]) => name === 'RankingHeartbeatPartitionsMissing')).toEqual([
      ['RankingHeartbeatPartitionsMissing', 'Count', 1],
      ['RankingHeartbeatPartitionsMissing', 'Count', 0],
    ]);
    // A batch without heartbeats reports nothing about the partitions.
    await handler(rankingsEvent([{ partition: 5, offset: 1, key: slot, value: { ...slot, as_of: now, ranking: [campaign(1, 11)] } }]));
    expect(metrics.filter(([name]) => name === 'RankingHeartbeatPartitionsMissing')).toHaveLength(2);
    expect(await freshness()).toEqual({ as_of: now - 2 * MINUTE, fresh_until: now - 2 * MINUTE + bound });
  });

  test('replayed, redelivered or older heartbeats never move a partition or the freshness key back; within a batch the newest per partition counts', async () => {
    const now = Date.now();
    const handler = handlerWith({ now: () => now, heartbeatPartitions: PARTITIONS });
    const at = (asOf: number, copy = 0) => [0, 1, 2, 3, 4, 5].map((p) => keyedHeartbeat(p, asOf, copy + p, asOf));
    // A batch with two heartbeat rounds: the later one counts, the earlier ones are ignored.
    const first = await handler(rankingsEvent([...at(now - 10 * MINUTE), ...at(now - 5 * MINUTE, 10)]));
    expect(first).toMatchObject({ freshnessRefreshed: 1, heartbeatsIgnored: 6 });
    const stored = await freshness();
    expect(stored).toEqual({ as_of: now - 5 * MINUTE, fresh_until: now - 5 * MINUTE + bound });
    const partitions = await redis.hgetall(RANKING_HEARTBEATS_KEY);

    // The same heartbeats again (a redelivery), older ones on one partition, and a replay from
    // the earliest offset (older than the bound).
    const same = await handler(rankingsEvent(at(now - 5 * MINUTE, 10)));
    const older = await handler(rankingsEvent([keyedHeartbeat(2, 0, 2, now - 20 * MINUTE)]));
    const replay = await handler(rankingsEvent(at(now - 24 * 60 * MINUTE)));

    expect([same, older, replay].map((s) => [s.freshnessRefreshed, s.heartbeatsIgnored])).toEqual([
      [0, 6],
      [0, 1],
      [0, 6],
    ]);
    expect(await redis.hgetall(RANKING_HEARTBEATS_KEY)).toEqual(partitions);
    expect(await freshness()).toEqual(stored);

    // One partition moving ahead alone moves nothing; all of them do.
    expect((await handler(rankingsEvent([keyedHeartbeat(4, 1, 4, now)]))).freshnessRefreshed).toBe(0);
    expect(await freshness()).toEqual(stored);
    expect((await handler(rankingsEvent(at(now, 20)))).freshnessRefreshed).toBe(1);
    expect(await freshness()).toEqual({ as_of: now, fresh_until: now + bound });
  });

  test('every partition behind the bound (v5 catching up from the earliest offset) records the heartbeats but writes no freshness', async () => {
    const now = Date.now();
    const handler = handlerWith({ now: () => now, heartbeatPartitions: PARTITIONS });
    const summary = await handler(rankingsEvent([0, 1, 2, 3, 4, 5].map((p) => keyedHeartbeat(p, 0, p, now - bound))));
    expect(summary).toMatchObject({ freshnessRefreshed: 0, heartbeatPartitionsMissing: 0, heartbeatsIgnored: 0 });
    expect(await redis.exists(RANKING_FRESHNESS_KEY)).toBe(0);
    expect(Object.keys(await redis.hgetall(RANKING_HEARTBEATS_KEY))).toHaveLength(PARTITIONS);
  });

  test('a heartbeat from a clock ahead counts from now: freshness never lasts longer than the bound', async () => {
    const now = Date.now();
    const handler = handlerWith({ now: () => now, heartbeatPartitions: PARTITIONS });
    await handler(rankingsEvent([0, 1, 2, 3, 4, 5].map((p) => keyedHeartbeat(p, 0, p, now + 6 * 60 * MINUTE))));
    expect(await freshness()).toEqual({ as_of: now + 6 * 60 * MINUTE, fresh_until: now + bound });
  });

  test("the single heartbeat ('', '') of v4, still in the compacted topic, is ignored and counted, and never written as a slot", async () => {
    const now = Date.now();
    const handler = handlerWith({ now: () => now, heartbeatPartitions: PARTITIONS });
    const summary = await handler(rankingsEvent([heartbeat(7, now - MINUTE, 1)]));
    expect(summary).toMatchObject({ freshnessRefreshed: 0, heartbeatsIgnored: 1, deadLettered: 0, rankingsWritten: 0 });
    expect(await redis.exists(RANKING_FRESHNESS_KEY, RANKING_HEARTBEATS_KEY)).toBe(0);
  });

  test("without per-partition heartbeats (v4 and earlier deployed) the worker behaves as before; a v5 heartbeat row ('', '#NN') is a heartbeat, never a slot", async () => {
    const now = Date.now();
    const handler = handlerWith({ now: () => now, versionedRows: true });
    const legacy = await handler(rankingsEvent([heartbeat(1, now - 2 * MINUTE, 3)]));
    expect(legacy).toMatchObject({ freshnessRefreshed: 1, heartbeatPartitionsMissing: 0 });
    expect(await freshness()).toEqual({ as_of: now - 2 * MINUTE, fresh_until: now - 2 * MINUTE + bound });

    const keyed = await handler(rankingsEvent([keyedHeartbeat(0, 1, 7, now - MINUTE), keyedHeartbeat(0, 2, 13, now - 3 * MINUTE)]));
    expect(keyed).toMatchObject({ freshnessRefreshed: 1, heartbeatsIgnored: 1, rankingsWritten: 0, deadLettered: 0 });
    expect(await freshness()).toEqual({ as_of: now - MINUTE, fresh_until: now - MINUTE + bound });
    expect(await redis.exists(rankingCacheKey({ placement: '', category: '#07' }), rankingCacheKey({ placement: '', category: '#13' }))).toBe(0);
    expect(await redis.exists(RANKING_HEARTBEATS_KEY)).toBe(0);
  });

  test("a heartbeat-shaped key that is not one of the 64 ('', '#64'), ('', 'x') is dead-lettered like any slot with an empty placement", async () => {
    const handler = handlerWith({ heartbeatPartitions: PARTITIONS });
    const bad = (offset: number, category: string): RankingFixture => ({
      partition: 2,
      offset,
      key: { placement: '', category },
      value: { placement: '', category, as_of: Date.now(), ranking: null },
    });
    const summary = await handler(rankingsEvent([bad(0, '#64'), bad(1, 'x'), bad(2, '#7')]));
    expect(summary).toMatchObject({ deadLettered: 3, freshnessRefreshed: 0 });
  });

  test('RANKING_HEARTBEAT_PARTITIONS is 0 (absent or empty: 0) or a partition count, anything else fails at load', () => {
    expect(parseRankingHeartbeatPartitions({})).toBe(0);
    expect(parseRankingHeartbeatPartitions({ RANKING_HEARTBEAT_PARTITIONS: '' })).toBe(0);
    expect(parseRankingHeartbeatPartitions({ RANKING_HEARTBEAT_PARTITIONS: '0' })).toBe(0);
    expect(parseRankingHeartbeatPartitions({ RANKING_HEARTBEAT_PARTITIONS: '6' })).toBe(6);
    for (const raw of ['-1', '6.5', 'six', '1001']) {
      expect(() => parseRankingHeartbeatPartitions({ RANKING_HEARTBEAT_PARTITIONS: raw })).toThrow(/RANKING_HEARTBEAT_PARTITIONS/);
    }
  });
});
