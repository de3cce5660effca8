import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type Redis from 'ioredis';
import { recordDeadLetters } from '../shared/dead-letter';
import type { PoolProvider } from '../shared/db';
import { ConfigError, DatabaseUnavailableError, describeCause } from '../shared/errors';
import { decodeKafkaEvent } from '../shared/kafka-event';
import { sortBatch } from '../shared/records';
import { emptySummary, InvocationSummary, instrumentInvocation, Observability, SummaryCounter } from '../shared/observability';
import type { RedisCache } from '../shared/redis';
import { RANKING_FRESHNESS_KEY, RANKING_HEARTBEAT_MINUTES, RANKING_HEARTBEATS_KEY, RankingFreshness } from '../../contracts';
import { latestPerKey, PositionedChange, RankingChange, rankingChangeOf } from './rankings';

/** Name of the handler in logs, metrics and `dead_letters.handler`. */
export const RANKING_CACHE_HANDLER = 'ranking-cache';

/**
 * Metric of the partitions of rtb-rankings-v2 never heard a heartbeat from, sent after each batch
 * that carried heartbeats (per-partition mode); the workers stack alarms on it.
 */
export const RANKING_HEARTBEAT_PARTITIONS_MISSING_METRIC = 'RankingHeartbeatPartitionsMissing';

/**
 * Default freshness bound: 15 minutes. The freshness key (`RANKING_FRESHNESS_KEY`) expires this
 * long after the event time of the ranking statement's latest heartbeat, so the bidder treats
 * every ranking as stale at most 15 minutes after the last ad event the pipeline got through,
 * whichever part stopped. Rankings themselves never expire (a stable slot is never missing).
 */
export const DEFAULT_RANKING_FRESHNESS_SECONDS = 900;

/**
 * Smallest freshness bound: one heartbeat interval (5 minutes of event time) plus a minute for
 * delivery. Anything shorter would report a healthy pipeline stale between two heartbeats.
 */
export const MIN_RANKING_FRESHNESS_SECONDS = RANKING_HEARTBEAT_MINUTES * 60 + 60;

/**
 * Seconds a tombstoned ranking stays readable before Redis drops it. Flink updates a slot whose
 * only campaign changes score as a delete followed by an insert (a retraction empties the
 * aggregate's group); the two records can land in different batches, and an immediate DEL
 * would leave the slot missing in between. The insert's SET clears the expiry; a slot that
 * really became empty disappears after this grace.
 */
export const RANKING_DELETE_GRACE_SECONDS = 10;

/**
 * Most slot writes in one MULTI/EXEC. The client's command timeout (fail-fast, 250 ms) bounds each
 * EXEC; a few hundred compare-and-sets take a few milliseconds, a whole batch of 10 000 did not
 * fit.
 */
export const RANKING_WRITES_PER_TRANSACTION = 500;

/** Largest freshness bound: one day. */
export const MAX_RANKING_FRESHNESS_SECONDS = 86_400;

/** What the ranking-cache handler needs; the deployed module builds it once at load time. */
export interface RankingCacheDeps {
  /** Postgres, used only for dead letters (no money here). */
  readonly pool: PoolProvider;
  /** Redis, the store this handler writes; unlike the money path it is required. */
  readonly cache: RedisCache;
  /** Logger and metrics. */
  readonly observability: Observability;
  /** Budget zone (`BUDGET_TIME_ZONE`): a dead letter is kept under the budget day of its record's timestamp. */
  readonly budgetTimeZone: string;
  /** Freshness bound in seconds (see {@link DEFAULT_RANKING_FRESHNESS_SECONDS}). @default DEFAULT_RANKING_FRESHNESS_SECONDS */
  readonly freshnessSeconds?: number;
  /** Wall clock (epoch ms); tests pass their own. @default Date.now */
  readonly now?: () => number;
  /**
   * The deployed ranking statement writes `as_of` on every settled slot row (rtb-ranking v4 and
   * later; `RANKING_ROWS_VERSIONED`), so a slot row without one is an intermediate and is not
   * written. False accepts v3's rows, which carry none. @default false
   */
  readonly versionedRows?: boolean;
  /**
   * Partitions of `rtb-rankings-v2` when the deployed ranking statement writes its heartbeat
   * under 64 keys (rtb-ranking v5 on; `RANKING_HEARTBEAT_PARTITIONS`): the worker then keeps the
   * newest heartbeat per partition and sets the freshness key from the oldest of them, once
   * every partition 0..n-1 has one; a `('', '')` heartbeat (v3, v4) is ignored. 0 (v3, v4): the
   * newest heartbeat of any partition sets the freshness key. @default 0
   */
  readonly heartbeatPartitions?: number;
}

/** Summary metrics the ranking cache emits (its Rankings* metrics are added per invocation). */
export const RANKING_CACHE_METRICS: readonly SummaryCounter[] = ['records', 'skipped', 'deadLettered'];

/** The invocation summary plus what happened to the cache. */
export interface RankingCacheSummary extends InvocationSummary {
  /** Rankings written (SET, no expiry). */
  rankingsWritten: number;
  /** Rankings deleted by tombstones. */
  rankingsDeleted: number;
  /** Intermediate rankings (ranks not 1..n, a campaign twice, scores out of order; from a versioned statement, no `as_of`) not written. */
  rankingsInconsistent: number;
  /** Rows not applied because Redis holds a newer ranking of the slot (higher `as_of`). */
  rankingsSuperseded: number;
  /** 1 when the batch's heartbeat moved the freshness key forward, else 0. */
  freshnessRefreshed: number;
  /**
   * Heartbeats not applied: already older than the bound, or not newer than the stored one; with
   * per-partition heartbeats, not newer than their partition's stored one, or of the
   * `('', '')` form v5 no longer writes.
   */
  heartbeatsIgnored: number;
  /**
   * With per-partition heartbeats, after a batch that carried any: how many of the partitions
   * have never delivered one. While it is above 0 the freshness key is not set and the bidder
   * reads every ranking as stale.
   */
  heartbeatPartitionsMissing: number;
}

/**
 * Redis failed or was unreachable while applying the batch. Redis is the store of this handler,
 * so the batch is thrown back to the Kafka trigger and retried; re-applying it is harmless
 * (the same SETs and DELs, and Lambda blocks the partition until it succeeds).
 */
export class RankingCacheUnavailableError extends Error {
  override readonly name = 'RankingCacheUnavailableError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Reads `RANKING_ROWS_VERSIONED` (`true` or `false`, set by the workers stack from the deployed
 * rtb-ranking version; see {@link RankingCacheDeps.versionedRows}). Called once at module load.
 */
export function parseRankingRowsVersioned(source: Readonly<Record<string, string | undefined>>): boolean {
  const raw = source.RANKING_ROWS_VERSIONED?.trim();
  if (raw === 'true') return true;
  if (raw === 'false' || raw === undefined || raw === '') return false;
  throw new ConfigError('RANKING_ROWS_VERSIONED', `must be true or false, got ${JSON.stringify(raw)}`);
}

/** Most partitions `RANKING_HEARTBEAT_PARTITIONS` accepts (a Kafka topic has far fewer in practice). */
export const MAX_RANKING_HEARTBEAT_PARTITIONS = 1_000;

/**
 * Reads `RANKING_HEARTBEAT_PARTITIONS` (set by the workers stack: the partitions of
 * `rtb-rankings-v2` when the deployed rtb-ranking version writes per-partition heartbeats, else
 * 0; see {@link RankingCacheDeps.heartbeatPartitions}). Absent or empty: 0. Called once at module
 * load.
 */
export function parseRankingHeartbeatPartitions(source: Readonly<Record<string, string | undefined>>): number {
  const raw = source.RANKING_HEARTBEAT_PARTITIONS?.trim();
  if (raw === undefined || raw === '') return 0;
  const value = Number(raw);
  if (!/^[0-9]+$/.test(raw) || value > MAX_RANKING_HEARTBEAT_PARTITIONS) {
    throw new ConfigError(
      'RANKING_HEARTBEAT_PARTITIONS',
      `must be 0 (one heartbeat key, rtb-ranking v4 and earlier) or the partition count of rtb-rankings-v2 (at most ${MAX_RANKING_HEARTBEAT_PARTITIONS}), got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/**
 * Reads `RANKING_TTL_SECONDS`: the freshness bound, i.e. the TTL of the freshness key counted
 * from the heartbeat's event time (whole seconds, 360 to 86400). Called once at module load.
 */
export function parseRankingFreshnessSeconds(source: Readonly<Record<string, string | undefined>>): number {
  const raw = source.RANKING_TTL_SECONDS?.trim();
  if (!raw) return DEFAULT_RANKING_FRESHNESS_SECONDS;
  const value = Number(raw);
  if (!/^[0-9]+$/.test(raw) || value < MIN_RANKING_FRESHNESS_SECONDS || value > MAX_RANKING_FRESHNESS_SECONDS) {
    throw new ConfigError(
      'RANKING_TTL_SECONDS',
      `must be whole seconds between ${MIN_RANKING_FRESHNESS_SECONDS} and ${MAX_RANKING_FRESHNESS_SECONDS} (longer than one ${RANKING_HEARTBEAT_MINUTES}-minute heartbeat plus delivery, so a healthy pipeline stays fresh; short enough that a stopped one is noticed), got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/**
 * Moves the freshness key forward, never back: SET … PXAT only when the stored `as_of` is older
 * (a replayed or redelivered heartbeat is ignored). KEYS[1] freshness key; ARGV as_of, value,
 * expiry (epoch ms). Returns 1 when written, 0 when superseded.
 */
const FRESHNESS_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and tonumber(stored.as_of) and tonumber(stored.as_of) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
`;

/**
 * The per-partition heartbeat step (rtb-ranking v5 on), atomic: records each of the batch's
 * partitions' newest heartbeat in the hash KEYS[1] (field = partition) only if it is newer than
 * the stored one, then, if every partition 0..P-1 has one, moves the freshness key KEYS[2]
 * forward (never back) to `{as_of: min, fresh_until: min(min, now) + bound}` with PXAT
 * fresh_until, min being the oldest of the P; a fresh_until not after now is not written.
 * ARGV: P, now, bound (ms), then pairs partition, as_of. Numbers stay decimal strings in and out
 * (Lua's own number printing would turn epoch milliseconds into exponents). Returns
 * {heartbeats recorded, 1 if the freshness key was written else 0, min ('' when a partition is
 * missing), the partition holding min (-1 when one is missing), the missing partitions...}.
 */
const PARTITION_HEARTBEAT_SCRIPT = `
local recorded = 0
for i = 4, #ARGV, 2 do
  local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  if not stored or tonumber(ARGV[i + 1]) > stored then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    recorded = recorded + 1
  end
end
local missing = {}
local oldest, oldestText, oldestPartition
for p = 0, tonumber(ARGV[1]) - 1 do
  local text = redis.call('HGET', KEYS[1], tostring(p))
  local value = text and tonumber(text)
  if not value then
    missing[#missing + 1] = p
  elseif not oldest or value < oldest then
    oldest, oldestText, oldestPartition = value, text, p
  end
end
if #missing > 0 then
  local reply = {recorded, 0, '', -1}
  for _, p in ipairs(missing) do reply[#reply + 1] = p end
  return reply
end
local now = tonumber(ARGV[2])
local freshUntil = math.min(oldest, now) + tonumber(ARGV[3])
if freshUntil <= now then
  return {recorded, 0, oldestText, oldestPartition}
end
local current = redis.call('GET', KEYS[2])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and tonumber(stored.as_of) and tonumber(stored.as_of) >= oldest then
    return {recorded, 0, oldestText, oldestPartition}
  end
end
local untilText = string.format('%.0f', freshUntil)
redis.call('SET', KEYS[2], '{"as_of":' .. oldestText .. ',"fresh_until":' .. untilText .. '}', 'PXAT', untilText)
return {recorded, 1, oldestText, oldestPartition}
`;

/**
 * Applies one slot's row unless Redis holds a newer one, in one atomic step (no other client can
 * write between the compare and the write). The slot's version is the stored ranking's `as_of`,
 * or the version it was emptied at (KEYS[2]) if that is higher: the ranking key of an emptied
 * slot expires after the grace and its stored `as_of` is the old ranking's, so only KEYS[2] stops
 * an older row from bringing the emptied ranking back. A row is superseded when the slot has a
 * version and the row's is absent or lower (equal versions apply: the later row of one version
 * wins). KEYS[1] ranking key, KEYS[2] emptied-version key; ARGV version ('' = none), value ('' =
 * the slot is empty: expire the stored ranking after the grace and keep the version), grace
 * seconds. Returns 1 written, 2 emptied, 0 superseded.
 */
const RANKING_SCRIPT = `
local emptiedAt = redis.call('GET', KEYS[2])
local slotVersion = emptiedAt and tonumber(emptiedAt)
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  local storedVersion = ok and type(stored) == 'table' and tonumber(stored.as_of)
  if storedVersion and (not slotVersion or storedVersion > slotVersion) then
    slotVersion = storedVersion
  end
end
local version = tonumber(ARGV[1])
if slotVersion and (not version or version < slotVersion) then
  return 0
end
if ARGV[2] == '' then
  if current then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
  if version then
    redis.call('SET', KEYS[2], ARGV[1])
  end
  return 2
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
`;

/** The freshness step of a batch: one heartbeat for the freshness key, or the newest heartbeat per partition. */
type Heartbeat =
  | { readonly kind: 'single'; readonly cacheKey: string; readonly freshness: RankingFreshness }
  | {
      readonly kind: 'partitioned';
      /** Partitions of the topic (P). */
      readonly partitions: number;
      readonly now: number;
      readonly boundMs: number;
      /** The batch's newest heartbeat `as_of` per partition. */
      readonly newest: ReadonlyMap<number, number>;
    };

/** What the per-partition heartbeat step did (PARTITION_HEARTBEAT_SCRIPT's reply). */
interface PartitionHeartbeats {
  readonly recorded: number;
  /** The oldest partition's newest heartbeat, or null while a partition has none. */
  readonly oldest: number | null;
  /** The partition holding {@link oldest} (-1 while a partition has none). */
  readonly oldestPartition: number;
  readonly missing: readonly number[];
}

interface Applied {
  readonly written: number;
  readonly deleted: number;
  readonly superseded: number;
  readonly freshnessRefreshed: boolean;
  /** With per-partition heartbeats, what the step did. */
  readonly partitions?: PartitionHeartbeats;
}

async function applyChanges(cache: RedisCache, changes: readonly PositionedChange[], heartbeat: Heartbeat | undefined): Promise<Applied> {
  let failure: unknown;
  cache.onFailure((_operation, error) => {
    failure = error;
  });
  const client: Redis | undefined = await cache.readyClient('MULTI');
  if (!client) {
    throw new RankingCacheUnavailableError(
      `Redis is unavailable (${failure === undefined ? 'not configured' : describeCause(failure)}); ${changes.length} ranking changes not applied, the batch will be retried`,
      { cause: failure },
    );
  }
  // Each slot's ranking is one compare-and-SET of the whole row, so no slot is ever half
  // written; the batch goes in MULTIs of at most RANKING_WRITES_PER_TRANSACTION, each bounded by
  // the client's command timeout (one MULTI of a whole large batch timed out on every retry).
  // The heartbeat goes in a MULTI of its own once every ranking MULTI succeeded: EXEC does not
  // roll back, so in the same one it would be applied even when a ranking write fails. A failure
  // part-way throws and the retry re-applies the same rows, which the compare-and-set makes
  // harmless.
  const slotChanges = changes.flatMap(({ change }) => (change.kind === 'upsert' || change.kind === 'delete' ? [change] : []));
  const replies: unknown[] = [];
  for (let start = 0; start < slotChanges.length; start += RANKING_WRITES_PER_TRANSACTION) {
    const transaction = client.multi();
    for (const change of slotChanges.slice(start, start + RANKING_WRITES_PER_TRANSACTION)) {
      const value = change.kind === 'upsert' ? JSON.stringify(change.row) : '';
      transaction.eval(
        RANKING_SCRIPT,
        2,
        change.cacheKey,
        change.emptiedKey,
        change.version === null ? '' : String(change.version),
        value,
        String(RANKING_DELETE_GRACE_SECONDS),
      );
    }
    replies.push(
      ...(await execRankingTransaction(
        transaction,
        `ranking writes ${start + 1}–${Math.min(start + RANKING_WRITES_PER_TRANSACTION, slotChanges.length)} of ${slotChanges.length}`,
      )),
    );
  }
  let freshnessRefreshed = false;
  let partitions: PartitionHeartbeats | undefined;
  if (heartbeat?.kind === 'single') {
    const { as_of: asOf, fresh_until: freshUntil } = heartbeat.freshness;
    const transaction = client.multi().eval(FRESHNESS_SCRIPT, 1, heartbeat.cacheKey, String(asOf), JSON.stringify(heartbeat.freshness), String(freshUntil));
    freshnessRefreshed = (await execRankingTransaction(transaction, 'the freshness heartbeat'))[0] === 1;
  } else if (heartbeat?.kind === 'partitioned') {
    const pairs = [...heartbeat.newest].flatMap(([partition, asOf]) => [String(partition), String(asOf)]);
    const transaction = client
      .multi()
      .eval(
        PARTITION_HEARTBEAT_SCRIPT,
        2,
        RANKING_HEARTBEATS_KEY,
        RANKING_FRESHNESS_KEY,
        String(heartbeat.partitions),
        String(heartbeat.now),
        String(heartbeat.boundMs),
        ...pairs,
      );
    const [reply] = await execRankingTransaction(transaction, 'the per-partition heartbeats');
    const [recorded, written, oldest, oldestPartition, ...missing] = reply as [number, number, string, number, ...number[]];
    freshnessRefreshed = written === 1;
    partitions = { recorded, oldest: oldest === '' ? null : Number(oldest), oldestPartition, missing };
  }
  return {
    written: replies.filter((r) => r === 1).length,
    deleted: replies.filter((r) => r === 2).length,
    superseded: replies.filter((r) => r === 0).length,
    freshnessRefreshed,
    partitions,
  };
}

/** Runs one MULTI of the batch (`where`: which part, for the error); its replies, or RankingCacheUnavailableError. */
async function execRankingTransaction(transaction: ReturnType<Redis['multi']>, where: string): Promise<unknown[]> {
  let results: [Error | null, unknown][] | null;
  try {
    results = await transaction.exec();
  } catch (cause) {
    throw new RankingCacheUnavailableError(`Redis MULTI/EXEC failed (${where}): ${describeCause(cause)}`, { cause });
  }
  if (results === null) {
    throw new RankingCacheUnavailableError(`Redis aborted the MULTI/EXEC transaction (${where})`);
  }
  const failed = results.find(([error]) => error !== null);
  if (failed) {
    throw new RankingCacheUnavailableError(`Redis rejected a ranking write (${where}): ${describeCause(failed[0])}`, { cause: failed[0] });
  }
  return results.map(([, reply]) => reply);
}

/**
 * Builds the ranking-cache handler: turns `rtb-rankings-v2` upserts into one Redis key per
 * (placement, category) holding the ranking sorted by `rank_no`, without expiry (a tombstone or
 * an empty slot row expires the key after a grace), and the statement's heartbeat into the
 * freshness key, which expires the freshness bound after the heartbeat's event time (with
 * `heartbeatPartitions`, after the oldest partition's newest heartbeat). Only the
 * latest consistent record per key in a batch is applied (highest `as_of`, then offset), in
 * MULTIs of at most {@link RANKING_WRITES_PER_TRANSACTION}, the heartbeat after them, each slot by
 * an atomic compare-and-set that never replaces a newer stored ranking;
 * intermediate rankings are never written. Bad records
 * go to `dead_letters` and the batch goes on; Redis or Postgres failing throws so the batch is
 * retried.
 */
export function createRankingCacheHandler(deps: RankingCacheDeps): (event: unknown) => Promise<RankingCacheSummary> {
  const freshnessSeconds = deps.freshnessSeconds ?? DEFAULT_RANKING_FRESHNESS_SECONDS;
  const now = deps.now ?? Date.now;
  const heartbeatPartitions = deps.heartbeatPartitions ?? 0;
  return async (event) => {
    const summary: RankingCacheSummary = {
      ...emptySummary(RANKING_CACHE_HANDLER, RANKING_CACHE_METRICS),
      rankingsWritten: 0,
      rankingsDeleted: 0,
      rankingsInconsistent: 0,
      rankingsSuperseded: 0,
      freshnessRefreshed: 0,
      heartbeatsIgnored: 0,
      heartbeatPartitionsMissing: 0,
    };
    return instrumentInvocation(deps.observability, summary, 'ranking batch not applied; the trigger will retry it', async () => {
      await cacheRankings(deps, event, { boundMs: freshnessSeconds * 1000, now, heartbeatPartitions }, summary);
      deps.observability.metrics.addMetric('RankingsWritten', MetricUnit.Count, summary.rankingsWritten);
      deps.observability.metrics.addMetric('RankingsDeleted', MetricUnit.Count, summary.rankingsDeleted);
      deps.observability.metrics.addMetric('RankingsInconsistent', MetricUnit.Count, summary.rankingsInconsistent);
      deps.observability.metrics.addMetric('RankingsSuperseded', MetricUnit.Count, summary.rankingsSuperseded);
      deps.observability.metrics.addMetric('RankingFreshnessRefreshed', MetricUnit.Count, summary.freshnessRefreshed);
    });
  };
}

interface FreshnessSettings {
  readonly boundMs: number;
  readonly now: () => number;
  /** {@link RankingCacheDeps.heartbeatPartitions}. */
  readonly heartbeatPartitions: number;
}

async function cacheRankings(deps: RankingCacheDeps, event: unknown, freshness: FreshnessSettings, summary: RankingCacheSummary): Promise<void> {
  const { boundMs, now } = freshness;
  const records = decodeKafkaEvent(event);
  summary.records = records.length;
  const sorted = sortBatch(records, (record): PositionedChange => ({
    change: rankingChangeOf(record, { versionedRows: deps.versionedRows }),
    partition: record.coordinates.partition,
    offset: record.coordinates.offset,
    timestamp: record.timestamp,
  }));
  const letters = sorted.deadLetters;
  const changes = sorted.accepted.map((a) => a.event);

  // Intermediate rankings never reach Redis; the latest consistent row per key does.
  const usable = changes.filter((c) => c.change.kind !== 'inconsistent');
  summary.rankingsInconsistent = changes.length - usable.length;
  if (summary.rankingsInconsistent > 0) {
    const example = changes.find((c) => c.change.kind === 'inconsistent')!;
    deps.observability.logger.info('intermediate rankings skipped', {
      count: summary.rankingsInconsistent,
      example:
        example.change.kind === 'inconsistent'
          ? { key: example.change.cacheKey, reason: example.change.reason, partition: example.partition, offset: example.offset }
          : undefined,
    });
  }
  const slots = latestPerKey(usable.filter((c) => c.change.kind === 'upsert' || c.change.kind === 'delete'));

  const heartbeatChanges = usable.filter(
    (c): c is PositionedChange & { change: Extract<RankingChange, { kind: 'heartbeat' }> } => c.change.kind === 'heartbeat',
  );
  const heartbeats = heartbeatChanges.map((c) => c.change);
  let heartbeat: Heartbeat | undefined;
  if (freshness.heartbeatPartitions > 0) {
    // rtb-ranking v5 on: the newest keyed heartbeat per partition; the freshness key follows the
    // oldest partition (PARTITION_HEARTBEAT_SCRIPT). A ('', '') heartbeat is v4's (its last one
    // stays in the compacted topic): it says nothing about the partitions of v5's rows.
    const newest = new Map<number, number>();
    let single = 0;
    for (const { change, partition } of heartbeatChanges) {
      if (change.form === 'single') single += 1;
      else newest.set(partition, Math.max(newest.get(partition) ?? 0, change.asOf));
    }
    if (single > 0) deps.observability.logger.info('heartbeats of the single-key form (rtb-ranking v4 and earlier) ignored', { count: single });
    summary.heartbeatsIgnored = single;
    if (newest.size > 0) heartbeat = { kind: 'partitioned', partitions: freshness.heartbeatPartitions, now: now(), boundMs, newest };
  } else if (heartbeats.length > 0) {
    // The newest heartbeat of the batch; one whose bound has already passed (a replay, a
    // pipeline catching up) would only report stale rankings as fresh, so it is not written.
    const newest = heartbeats.reduce((a, b) => (b.asOf > a.asOf ? b : a));
    const clock = now();
    // A heartbeat from the future (a producer clock ahead) counts from now, never longer.
    const freshUntil = Math.min(newest.asOf, clock) + boundMs;
    if (freshUntil > clock) heartbeat = { kind: 'single', cacheKey: newest.cacheKey, freshness: { as_of: newest.asOf, fresh_until: freshUntil } };
    summary.heartbeatsIgnored = heartbeats.length - (heartbeat ? 1 : 0);
  }

  if (slots.length > 0 || heartbeat) {
    const applied = await applyChanges(deps.cache, slots, heartbeat);
    summary.rankingsWritten = applied.written;
    summary.rankingsDeleted = applied.deleted;
    summary.rankingsSuperseded = applied.superseded;
    summary.freshnessRefreshed = applied.freshnessRefreshed ? 1 : 0;
    if (heartbeat?.kind === 'single' && !applied.freshnessRefreshed) summary.heartbeatsIgnored += 1;
    if (heartbeat?.kind === 'partitioned' && applied.partitions) {
      const { recorded, oldest, oldestPartition, missing } = applied.partitions;
      // Every keyed heartbeat that did not become its partition's newest stored one.
      summary.heartbeatsIgnored += heartbeats.filter((h) => h.form === 'keyed').length - recorded;
      summary.heartbeatPartitionsMissing = missing.length;
      // Only from batches that carried heartbeats: a 0 from any other batch would hide a missing partition.
      deps.observability.metrics.addMetric(RANKING_HEARTBEAT_PARTITIONS_MISSING_METRIC, MetricUnit.Count, missing.length);
      if (missing.length > 0) {
        deps.observability.logger.warn(
          'partitions of rtb-rankings-v2 without a heartbeat yet: the freshness key stays unset and the bidder reads every ranking as stale',
          {
            missingPartitions: missing,
            partitions: freshness.heartbeatPartitions,
          },
        );
      } else if (oldest !== null && !applied.freshnessRefreshed && oldest + boundMs <= now()) {
        deps.observability.logger.warn('a partition of rtb-rankings-v2 is behind by more than the freshness bound: every ranking reads as stale', {
          partition: oldestPartition,
          heartbeatAsOf: oldest,
          boundMs,
        });
      }
    }
  }
  summary.skipped = usable.length - slots.length - heartbeats.length;

  // After Redis: a retry caused by Postgres re-applies the same SETs, and the coordinates key
  // of dead_letters makes recording the same bad record twice a no-op.
  if (letters.length > 0) {
    try {
      await recordDeadLetters(await deps.pool(), RANKING_CACHE_HANDLER, letters, deps.budgetTimeZone);
    } catch (cause) {
      throw new DatabaseUnavailableError('recording ranking dead letters', { cause });
    }
    summary.deadLettered = letters.length;
  }
}
