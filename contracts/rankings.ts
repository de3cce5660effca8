/**
 * The RTB ranking cache: rows the ranking Flink statement (`20-rtb-ranking/v5`; the table is
 * v3's) upserts into the compacted topic `rtb-rankings-v2`, and the Redis keys the
 * ranking-cache worker makes of them.
 * Flink registers the topic's key and value schemas itself (CREATE TABLE).
 *
 * **Contract for the bidder** (flink-sql/README.md, "Freshness"):
 * 1. Read the slot's ranking and the freshness key in one round trip:
 *    `MGET rtb:ranking:<placement>:<category> rtb:ranking-freshness`.
 * 2. If the freshness key is missing, or its `fresh_until` (epoch ms) is in the past, every
 *    ranking is stale: the pipeline or the worker has stopped (or fallen behind), on any one
 *    partition of the topic; fall back.
 * 3. Otherwise a present ranking key is current; a missing one means the slot has no active
 *    campaign (fall back for that slot). A stored ranking carries its version (`as_of`, see
 *    {@link RankingRow}); the worker never replaces it with an older one, nor brings back an
 *    emptied slot's ranking with a row older than the emptying.
 *
 * A ranking key has no expiry: it changes only when its ranking changes (a tombstone deletes
 * it), so a stable slot is never missing while the pipeline runs. The freshness key is
 * refreshed from the statement's heartbeat, once per 5 minutes of ad-event time, and expires
 * `RANKING_TTL_SECONDS` (the freshness bound, default 900 s) after the heartbeat's `as_of`:
 * the bidder sees stale rankings at most that long after the last ad event the pipeline
 * processed, whichever part (Flink, the trigger, the worker, Redis writes) stopped.
 *
 * From rtb-ranking v5 on ({@link FIRST_PARTITIONED_HEARTBEAT_RANKING_STATEMENT}) the heartbeat
 * is written under {@link RANKING_HEARTBEAT_KEY_COUNT} keys, which Kafka spreads over the
 * topic's partitions, and the freshness key's `as_of` is the **oldest** of the newest
 * heartbeats the worker has applied on each partition ({@link RANKING_HEARTBEATS_KEY}). A slot's
 * rows and the heartbeats on its partition are applied in offset order, so a partition the
 * worker is stuck on or lagging behind holds freshness back and every ranking reads stale
 * within the bound, as for a stopped pipeline (the bidder falls back wholesale; it cannot tell
 * which slots are behind). A partition that has received no heartbeat yet keeps the freshness
 * key unset; the worker logs it and counts it (`RankingHeartbeatPartitionsMissing`). With 64
 * keys over 6 partitions that happens with probability about 6·(5/6)^64 ≈ 5·10⁻⁵ per
 * environment (which partition a key lands on depends on its serialized bytes, schema id
 * included), and then only a version with different heartbeat keys fixes it. The bidder's reads
 * do not change.
 */

/**
 * Kafka topic of the ranking rows the ranking-cache worker reads: the second row schema (with
 * `as_of`), created by `20-rtb-ranking/v3`'s DDL.
 */
export const RTB_RANKINGS_TOPIC = 'rtb-rankings-v2';

/**
 * Partitions of {@link RTB_RANKINGS_TOPIC}: the bucket count of its CREATE TABLE
 * (`20-rtb-ranking/v3`, `INTO 6 BUCKETS`). Flink creates the topic, so no topic config carries
 * it; the ranking cache's reserved concurrency is checked against it (config/schema.ts), and a
 * test keeps it equal to the DDL.
 */
export const RTB_RANKINGS_PARTITIONS = 6;

/** Topic of the first row schema (no `as_of`), created by `20-rtb-ranking/v1`, written by v1 and v2. */
export const RTB_RANKINGS_V1_TOPIC = 'rtb-rankings';

/** Append-only topic where the ranking reports source records it skipped (malformed decimal strings). */
export const RTB_RANKING_REJECTS_TOPIC = 'rtb-ranking-rejects';

/** Key of a ranking row: the partition of the top-N. */
export interface RankingKey {
  /** Slot the ranking is for. */
  readonly placement: string;
  /** Category the ranking is for. */
  readonly category: string;
}

/** One ranked campaign. Scores are informational for the bidder, never money. */
export interface RankedCampaign {
  /** 1-based rank within (placement, category); `ARRAY_AGG` has no order, so this orders it. */
  readonly rank_no: number;
  /** Ranked campaign. */
  readonly campaign_id: number;
  /** Owner of the campaign. */
  readonly advertiser_id: number;
  /** Advertised product. */
  readonly product_id: number;
  /** Bid per click, as Flink serialises DECIMAL (number or string). */
  readonly bid_price: number | string;
  /** Ranking score `bid * ctr + 0.1 * ctr * cvr * price`. */
  readonly score: number | string;
}

/**
 * Value of a ranking row, and of the Redis key the worker stores it under. A tombstone (null
 * value) or a `ranking` of null means the slot has no ranking.
 */
export interface RankingRow extends RankingKey {
  /**
   * The row's version (`20-rtb-ranking/v4`; absent on v3's rows): the newest event time (epoch
   * ms) among the source records that bear on this slot — its campaigns' events, their products'
   * catalogue entries and 24-hour metrics. It never decreases for a slot, so the worker keeps a
   * row only if its `as_of` is at least the stored one (a redelivered, replayed or re-emitted
   * older row is ignored). Equal versions are normal: a ranking changed by the metrics clock
   * alone (ageing) keeps the version of the row before it.
   */
  readonly as_of?: number;
  /** Top-N campaigns, in any order; sort by `rank_no`. */
  readonly ranking: readonly RankedCampaign[];
}

/**
 * A heartbeat row of `rtb-rankings-v2`: placement `''` (no real slot has an empty placement;
 * the worker dead-letters such a slot row), `ranking` null. Up to v4 the statement writes one,
 * with category `''`; from v5 on it writes {@link RANKING_HEARTBEAT_KEY_COUNT}, with the
 * categories {@link rankingHeartbeatCategory}(0..63) = `'#00'`..`'#63'`.
 */
export interface RankingHeartbeatRow {
  /** Always `''`. */
  readonly placement: '';
  /** `''` (v3, v4) or `'#00'`..`'#63'` (v5 on). */
  readonly category: string;
  /** Start (epoch ms, UTC) of the 5-minute bucket of the newest ad event the statement has read. */
  readonly as_of: number;
  /** Always null. */
  readonly ranking: null;
}

/**
 * First released version of the rtb-ranking statement (flink-sql/20-rtb-ranking) that writes
 * `as_of` on every settled slot row: from it on the worker takes a slot row without one for an
 * intermediate and does not write it (`RANKING_ROWS_VERSIONED`).
 */
export const FIRST_VERSIONED_RANKING_STATEMENT = 4;

/**
 * First released version of the rtb-ranking statement that writes its heartbeat under
 * {@link RANKING_HEARTBEAT_KEY_COUNT} keys (one per category `'#00'`..`'#63'`) instead of the one
 * key `('', '')`: from it on the worker keeps the newest heartbeat per partition and makes the
 * freshness key their minimum (`RANKING_HEARTBEAT_PARTITIONS`), and ignores a `('', '')` row.
 */
export const FIRST_PARTITIONED_HEARTBEAT_RANKING_STATEMENT = 5;

/**
 * Keys the heartbeat is written under from rtb-ranking v5 on. Kafka's default partitioner
 * hashes each key's bytes onto one of the {@link RTB_RANKINGS_PARTITIONS} partitions; with 64
 * keys the chance that some partition gets none is 6·(5/6)^64 ≈ 5·10⁻⁵.
 */
export const RANKING_HEARTBEAT_KEY_COUNT = 64;

/**
 * Category of heartbeat key `index` (0..63) from v5 on: `'#'` and two digits. The empty
 * placement is what reserves these keys (no slot has one); the category only numbers the
 * copies, in a fixed-width form that reads as no real category in logs and that v3's and
 * v4's `('', '')` cannot be mistaken for.
 */
export function rankingHeartbeatCategory(index: number): string {
  return `#${String(index).padStart(2, '0')}`;
}

/**
 * Redis hash the worker keeps from v5's heartbeats: field = partition number of
 * {@link RTB_RANKINGS_TOPIC}, value = the newest heartbeat `as_of` applied on that partition.
 * The bidder never reads it; an operator can (`HGETALL`) to see which partition is behind.
 */
export const RANKING_HEARTBEATS_KEY = 'rtb:ranking-heartbeats';

/** Minutes of ad-event time between two heartbeats of the ranking statement. */
export const RANKING_HEARTBEAT_MINUTES = 5;

/** Redis key the worker writes from the heartbeat; its absence means every ranking is stale. */
export const RANKING_FRESHNESS_KEY = 'rtb:ranking-freshness';

/** Value of {@link RANKING_FRESHNESS_KEY} (JSON). */
export interface RankingFreshness {
  /**
   * The heartbeat's `as_of` (from v5 on: the oldest of the newest heartbeats of the topic's
   * partitions): rankings include every input up to this event time (epoch ms).
   */
  readonly as_of: number;
  /** Epoch ms after which rankings are stale; the key expires at this instant too. */
  readonly fresh_until: number;
}

/** Redis key that holds the ranking for one (placement, category). */
export function rankingCacheKey(key: RankingKey): string {
  return `rtb:ranking:${key.placement}:${key.category}`;
}
