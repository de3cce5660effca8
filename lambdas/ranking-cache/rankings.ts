import {
  RANKING_FRESHNESS_KEY,
  RANKING_HEARTBEAT_KEY_COUNT,
  RankedCampaign,
  RankingKey,
  RankingRow,
  rankingCacheKey,
  rankingHeartbeatCategory,
} from '../../contracts';
import { KafkaRecordError } from '../shared/errors';
import { DecodedKafkaRecord, parseJsonValue } from '../shared/kafka-event';
import { hasLoneSurrogate } from '../shared/records';

/** Longest placement or category accepted (the ad-event contract allows 64 characters). */
export const MAX_KEY_PART_LENGTH = 64;

/** More ranked campaigns than this in one row means a broken statement, not a ranking (N defaults to 50). */
export const MAX_RANKED_CAMPAIGNS = 1000;

/** What one `rtb-rankings` record asks of the cache. */
export type RankingChange =
  | {
      /** Store the ranking under `cacheKey`. */
      readonly kind: 'upsert';
      /** Redis key (`rankingCacheKey`), without the keyspace prefix. */
      readonly cacheKey: string;
      /** {@link emptiedRankingVersionKey} of the slot, without the keyspace prefix. */
      readonly emptiedKey: string;
      /** The ranking, sorted by `rank_no`. */
      readonly row: RankingRow;
      /** The row's `as_of` (rtb-ranking v4), or null for a row without one (v3). */
      readonly version: number | null;
    }
  | {
      /**
       * A ranking Flink emitted on its way to the next one (an update of an ARRAY_AGG is applied
       * element by element): ranks not exactly 1..n, a campaign twice, or scores out of rank
       * order; or, from a versioned statement, a row without `as_of`. Never written; the
       * consistent row that follows replaces it.
       */
      readonly kind: 'inconsistent';
      /** Redis key (`rankingCacheKey`), without the keyspace prefix. */
      readonly cacheKey: string;
      /** What is inconsistent. */
      readonly reason: string;
    }
  | {
      /** The statement's heartbeat: it has read ad events up to `asOf`. */
      readonly kind: 'heartbeat';
      /** {@link RANKING_FRESHNESS_KEY}, without the keyspace prefix. */
      readonly cacheKey: string;
      /** Event time (epoch ms) the statement has read up to. */
      readonly asOf: number;
      /**
       * `single`: the one heartbeat key `('', '')` of rtb-ranking v3 and v4; `keyed`: one of
       * v5's 64 keys `('', '#00')`..`('', '#63')` (contracts/rankings.ts).
       */
      readonly form: 'single' | 'keyed';
    }
  | {
      /**
       * The (placement, category) has no ranking any more: a tombstone (v3), or a row whose
       * `ranking` is null or empty (v4 keeps the row, with its version).
       */
      readonly kind: 'delete';
      /** Redis key (`rankingCacheKey`), without the keyspace prefix. */
      readonly cacheKey: string;
      /** {@link emptiedRankingVersionKey} of the slot, without the keyspace prefix. */
      readonly emptiedKey: string;
      /** Whose ranking disappeared. */
      readonly key: RankingKey;
      /** The row's `as_of`, or null for a tombstone or a row without one. */
      readonly version: number | null;
    };

/**
 * Redis key holding the version (`as_of`) at which a slot was emptied (a v4 row with `ranking`
 * null): the ranking key itself expires after the delete grace and takes its version with it,
 * so this key keeps it, and no older row brings the emptied ranking back. The worker deletes it
 * when it writes the slot's next ranking (which carries the version itself). The bidder never
 * reads it; the placement has no ':', so it cannot collide with another slot's key.
 */
export function emptiedRankingVersionKey(key: RankingKey): string {
  return `rtb:ranking-emptied:${key.placement}:${key.category}`;
}

const CONFLUENT_MAGIC_BYTE = 0;
const CONFLUENT_HEADER_BYTES = 5;

/**
 * Removes the Confluent wire header (magic byte 0 + 4-byte schema id) from a key. The shared
 * envelope decoder strips it from values only; `json-registry` keys carry it as well.
 */
export function withoutWireHeader(bytes: Buffer): Buffer {
  return bytes.length >= CONFLUENT_HEADER_BYTES && bytes[0] === CONFLUENT_MAGIC_BYTE ? bytes.subarray(CONFLUENT_HEADER_BYTES) : bytes;
}

function violation(message: string): KafkaRecordError {
  return new KafkaRecordError('CONTRACT_VIOLATION', `RankingRow: ${message}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : String(value);
}

function keyPart(where: string, name: 'placement' | 'category', value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw violation(`${where}.${name} must be a non-empty string, got ${describe(value)}`);
  }
  if (value.length > MAX_KEY_PART_LENGTH) {
    throw violation(`${where}.${name} must be at most ${MAX_KEY_PART_LENGTH} characters, got ${value.length}`);
  }
  // Control characters have no business in a slot name and would make an unreadable Redis key.
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw violation(`${where}.${name} must not contain control characters`);
  }
  // Redis keys are UTF-8 bytes, where every lone surrogate becomes U+FFFD: two slots differing
  // only in one would share a key and overwrite each other's ranking.
  if (hasLoneSurrogate(value)) {
    throw violation(`${where}.${name} must be valid Unicode (it contains a lone UTF-16 surrogate)`);
  }
  // rtb:ranking:<placement>:<category> is only unambiguous when the placement has no colon:
  // ("a:b", "c") and ("a", "b:c") would otherwise share one key and overwrite each other.
  if (name === 'placement' && value.includes(':')) {
    throw violation(`${where}.placement must not contain ':' (it separates placement and category in the Redis key), got ${describe(value)}`);
  }
  return value;
}

function parseKey(record: DecodedKafkaRecord): RankingKey {
  if (record.key === null || record.key.length === 0) {
    throw violation('record has no key (or an undecodable one); rtb-rankings is keyed by {placement, category}');
  }
  const parsed = parseJsonValue(withoutWireHeader(record.key));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw violation(`key must be a JSON object {placement, category}, got ${describe(parsed)}`);
  }
  const key = parsed as Record<string, unknown>;
  if (key.placement === '' && key.category === '') return HEARTBEAT_KEY;
  if (key.placement === '' && typeof key.category === 'string' && KEYED_HEARTBEAT_CATEGORIES.has(key.category)) {
    return { placement: '', category: key.category };
  }
  return { placement: keyPart('key', 'placement', key.placement), category: keyPart('key', 'category', key.category) };
}

/** The reserved key of the heartbeat row of rtb-ranking v3 and v4. */
const HEARTBEAT_KEY: RankingKey = Object.freeze({ placement: '', category: '' });

/** Categories of v5's heartbeat keys (placement ''): '#00'..'#63'. */
const KEYED_HEARTBEAT_CATEGORIES: ReadonlySet<string> = new Set(Array.from({ length: RANKING_HEARTBEAT_KEY_COUNT }, (_, i) => rankingHeartbeatCategory(i)));

/** Latest plausible heartbeat: year 2200 (a larger value is a broken row, not a clock). */
const MAX_AS_OF = 7_258_118_400_000;

function epochMillis(where: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > MAX_AS_OF) {
    throw violation(`${where} must be epoch milliseconds, got ${describe(value)}`);
  }
  return value;
}

function parseHeartbeat(value: Buffer | null, form: 'single' | 'keyed'): RankingChange {
  if (value === null || value.length === 0) {
    throw violation('a heartbeat key (placement empty) has no value; the ranking statement never deletes its heartbeat');
  }
  const parsed = parseJsonValue(value);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw violation(`heartbeat value must be a JSON object, got ${describe(parsed)}`);
  }
  const row = parsed as Record<string, unknown>;
  const asOf = epochMillis('heartbeat as_of', row.as_of);
  if (row.ranking !== undefined && row.ranking !== null) {
    throw violation(`heartbeat ranking must be null, got ${describe(row.ranking)}`);
  }
  return { kind: 'heartbeat', cacheKey: RANKING_FRESHNESS_KEY, asOf, form };
}

/**
 * Why `ranking` (sorted by rank_no, then campaign_id) is not a ranking the bidder may see, or
 * undefined if it is one: ranks exactly 1..n, each campaign once, scores never rising with rank.
 */
export function rankingInconsistency(ranking: readonly RankedCampaign[]): string | undefined {
  const campaigns = new Set<number>();
  for (let i = 0; i < ranking.length; i += 1) {
    const entry = ranking[i];
    if (entry.rank_no !== i + 1) return `rank_no ${entry.rank_no} at position ${i + 1} (ranks must be exactly 1..${ranking.length})`;
    if (campaigns.has(entry.campaign_id)) return `campaign ${entry.campaign_id} is ranked twice`;
    campaigns.add(entry.campaign_id);
    if (i > 0 && Number(entry.score) > Number(ranking[i - 1].score)) return `rank ${entry.rank_no} scores higher than rank ${entry.rank_no - 1}`;
  }
  return undefined;
}

function identifier(where: string, value: unknown, minimum: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minimum) {
    throw violation(`${where} must be an integer ≥ ${minimum}, got ${describe(value)}`);
  }
  return value;
}

function decimal(where: string, value: unknown): number | string {
  // Flink writes DECIMAL as a JSON number, or a string when configured so; both stay as given.
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  // The bidder reads it as a double: an exponent beyond one ('1e999') would be Infinity.
  if (typeof value === 'string' && /^-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?$/.test(value) && Number.isFinite(Number(value))) {
    return value;
  }
  throw violation(`${where} must be a finite number or a decimal string within a double's range, got ${describe(value)}`);
}

function rankedCampaign(index: number, value: unknown): RankedCampaign {
  const where = `ranking[${index}]`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw violation(`${where} must be an object, got ${describe(value)}`);
  }
  const entry = value as Record<string, unknown>;
  // Only the contract's fields are kept: the bidder reads exactly what RankedCampaign promises.
  return {
    rank_no: identifier(`${where}.rank_no`, entry.rank_no, 1),
    campaign_id: identifier(`${where}.campaign_id`, entry.campaign_id, 0),
    advertiser_id: identifier(`${where}.advertiser_id`, entry.advertiser_id, 0),
    product_id: identifier(`${where}.product_id`, entry.product_id, 0),
    bid_price: decimal(`${where}.bid_price`, entry.bid_price),
    score: decimal(`${where}.score`, entry.score),
  };
}

/** A slot row: its ranking (empty when the slot has none) and its version. */
interface ParsedRow {
  readonly row: RankingRow;
  readonly version: number | null;
}

function parseRow(key: RankingKey, value: Buffer): ParsedRow {
  const parsed = parseJsonValue(value);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw violation(`value must be a JSON object, got ${describe(parsed)}`);
  }
  const row = parsed as Record<string, unknown>;
  // With value.fields-include = ALL the value repeats the key; it must then agree with it.
  for (const name of ['placement', 'category'] as const) {
    if (row[name] !== undefined && row[name] !== null && row[name] !== key[name]) {
      throw violation(`value.${name} ${describe(row[name])} differs from the record key's ${describe(key[name])}`);
    }
  }
  const version = row.as_of === undefined || row.as_of === null ? null : epochMillis('as_of', row.as_of);
  // The stored JSON carries as_of only when the row has one (v3 rows stay as they were).
  const slot = version === null ? { placement: key.placement, category: key.category } : { placement: key.placement, category: key.category, as_of: version };
  if (row.ranking === null) return { row: { ...slot, ranking: [] }, version };
  if (!Array.isArray(row.ranking)) {
    throw violation(`ranking must be an array, or null for a slot without campaigns, got ${describe(row.ranking)}`);
  }
  if (row.ranking.length > MAX_RANKED_CAMPAIGNS) {
    throw violation(`ranking has ${row.ranking.length} entries, more than ${MAX_RANKED_CAMPAIGNS}`);
  }
  const ranking = row.ranking.map((entry, index) => rankedCampaign(index, entry));
  // ARRAY_AGG has no order; rank_no does. campaign_id breaks ties so the stored JSON is stable.
  ranking.sort((a, b) => a.rank_no - b.rank_no || a.campaign_id - b.campaign_id);
  return { row: { ...slot, ranking }, version };
}

/**
 * Turns one decoded `rtb-rankings-v2` record into a cache change. A null (or empty) value is a
 * tombstone, and a row whose ranking is null or empty an empty slot: the ranking of that
 * (placement, category) is gone. The key ('', '') is the heartbeat of rtb-ranking v3 and v4,
 * the keys ('', '#00')..('', '#63') are v5's (never a slot). A ranking that is not consistent (see {@link rankingInconsistency}) is
 * an intermediate state, returned as `inconsistent` so it is never written; so is, with
 * `versionedRows` (the statement writes `as_of` on every settled row, rtb-ranking v4 on), a row
 * without `as_of`. Throws
 * `KafkaRecordError` (dead-letter reason) for a bad key or value.
 */
export function rankingChangeOf(record: DecodedKafkaRecord, options: { readonly versionedRows?: boolean } = {}): RankingChange {
  const key = parseKey(record);
  if (key === HEARTBEAT_KEY) return parseHeartbeat(record.value, 'single');
  if (key.placement === '') return parseHeartbeat(record.value, 'keyed');
  const cacheKey = rankingCacheKey(key);
  const emptiedKey = emptiedRankingVersionKey(key);
  if (record.value === null || record.value.length === 0) {
    return { kind: 'delete', cacheKey, emptiedKey, key, version: null };
  }
  const { row, version } = parseRow(key, record.value);
  if (version === null && options.versionedRows) {
    // rtb-ranking v4 writes as_of = MAX of the slot's input clocks on every row; none means the
    // row was emitted while every clock of the slot was retracted and not yet re-inserted.
    return { kind: 'inconsistent', cacheKey, reason: 'no as_of from a versioned statement (every input clock of the slot retracted for a moment)' };
  }
  if (row.ranking.length === 0) return { kind: 'delete', cacheKey, emptiedKey, key, version };
  const reason = rankingInconsistency(row.ranking);
  if (reason !== undefined) return { kind: 'inconsistent', cacheKey, reason };
  return { kind: 'upsert', cacheKey, emptiedKey, row, version };
}

/** A change with where it came from, to pick the latest one per key. */
export interface PositionedChange {
  /** The change. */
  readonly change: RankingChange;
  /** Kafka partition of the record. */
  readonly partition: number;
  /** Kafka offset of the record. */
  readonly offset: number;
  /** Record timestamp (epoch ms), if known. */
  readonly timestamp?: number;
}

function versionOf(change: RankingChange): number | null {
  return change.kind === 'upsert' || change.kind === 'delete' ? change.version : null;
}

/**
 * Keeps only the latest change per Redis key: the highest version (`as_of`; none counts as
 * lowest); for equal versions, within a partition the highest offset, across partitions (only
 * after the topic was repartitioned) the later record timestamp, ties going to the record that
 * came later in the event. Returns them in first-seen key order.
 */
export function latestPerKey(changes: readonly PositionedChange[]): PositionedChange[] {
  const latest = new Map<string, PositionedChange>();
  for (const candidate of changes) {
    const current = latest.get(candidate.change.cacheKey);
    if (current === undefined) {
      latest.set(candidate.change.cacheKey, candidate);
      continue;
    }
    const [was, is] = [versionOf(current.change) ?? -1, versionOf(candidate.change) ?? -1];
    const later = current.partition === candidate.partition ? candidate.offset >= current.offset : (candidate.timestamp ?? 0) >= (current.timestamp ?? 0);
    if (is > was || (is === was && later)) latest.set(candidate.change.cacheKey, candidate);
  }
  return [...latest.values()];
}
