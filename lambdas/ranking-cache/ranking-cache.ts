import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type Redis from 'ioredis';
import { recordDeadLetters } from '../shared/dead-letter';
import type { PoolProvider } from '../shared/db';
import { ConfigError, DatabaseUnavailableError, describeCause } from '../shared/errors';
import { decodeKafkaEvent } from '../shared/kafka-event';
import { sortBatch } from '../shared/records';
import { emptySummary, InvocationSummary, instrumentInvocation, Observability } from '../shared/observability';
import type { RedisCache } from '../shared/redis';
import { latestPerKey, PositionedChange, rankingChangeOf } from './rankings';

/** Name of the handler in logs, metrics and `dead_letters.handler`. */
export const RANKING_CACHE_HANDLER = 'ranking-cache';

/**
 * Default lifetime of a cached ranking: 15 minutes. Flink only writes a ranking when it
 * changes, so this is the longest a bidder can keep serving a ranking after the pipeline (Flink,
 * the trigger or this function) stopped — a paused campaign that the pipeline never got to
 * remove stops being served at the latest then. The price: a ranking that stays unchanged for
 * longer than the TTL also expires, and the bidder sees "no ranking" for that slot until the next
 * change. The ranking's inputs (product CTR/CVR from 5-minute windows, bids, statuses) move far
 * more often than that on a live system; raise the TTL where they do not.
 */
export const DEFAULT_RANKING_TTL_SECONDS = 900;

/** What the ranking-cache handler needs; the deployed module builds it once at load time. */
export interface RankingCacheDeps {
  /** Postgres, used only for dead letters (no money here). */
  readonly pool: PoolProvider;
  /** Redis, the store this handler writes; unlike the money path it is required. */
  readonly cache: RedisCache;
  /** Logger and metrics. */
  readonly observability: Observability;
  /** Lifetime of each cached ranking in seconds. @default DEFAULT_RANKING_TTL_SECONDS */
  readonly ttlSeconds?: number;
}

/** The invocation summary plus what happened to the cache. */
export interface RankingCacheSummary extends InvocationSummary {
  /** Rankings written (SET with TTL). */
  rankingsWritten: number;
  /** Rankings deleted by tombstones. */
  rankingsDeleted: number;
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
 * Reads `RANKING_TTL_SECONDS` (whole seconds, 60 to 7 days). Called once at module load.
 */
export function parseRankingTtlSeconds(source: Readonly<Record<string, string | undefined>>): number {
  const raw = source.RANKING_TTL_SECONDS?.trim();
  if (!raw) return DEFAULT_RANKING_TTL_SECONDS;
  const value = Number(raw);
  if (!/^[0-9]+$/.test(raw) || value < 60 || value > 7 * 24 * 3600) {
    throw new ConfigError(
      'RANKING_TTL_SECONDS',
      `must be whole seconds between 60 and 604800 (a stale ranking must expire, a live one must survive between updates), got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

async function applyChanges(cache: RedisCache, changes: readonly PositionedChange[], ttlSeconds: number): Promise<void> {
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
  // One MULTI: the whole batch becomes visible to the bidder at once, in one round trip.
  const transaction = client.multi();
  for (const { change } of changes) {
    if (change.kind === 'upsert') transaction.set(change.cacheKey, JSON.stringify(change.row), 'EX', ttlSeconds);
    else transaction.del(change.cacheKey);
  }
  let results: [Error | null, unknown][] | null;
  try {
    results = await transaction.exec();
  } catch (cause) {
    throw new RankingCacheUnavailableError(`Redis MULTI/EXEC failed: ${describeCause(cause)}`, { cause });
  }
  if (results === null) {
    throw new RankingCacheUnavailableError('Redis aborted the MULTI/EXEC transaction');
  }
  const failed = results.find(([error]) => error !== null);
  if (failed) {
    throw new RankingCacheUnavailableError(`Redis rejected a ranking write: ${describeCause(failed[0])}`, { cause: failed[0] });
  }
}

/**
 * Builds the ranking-cache handler: turns `rtb-rankings` upserts into one Redis key per
 * (placement, category) holding the ranking sorted by `rank_no`, with a TTL; a tombstone deletes
 * the key. Only the latest record per key in a batch is applied, all in one MULTI. Bad records
 * go to `dead_letters` and the batch goes on; Redis or Postgres failing throws so the batch is
 * retried.
 */
export function createRankingCacheHandler(deps: RankingCacheDeps): (event: unknown) => Promise<RankingCacheSummary> {
  const ttlSeconds = deps.ttlSeconds ?? DEFAULT_RANKING_TTL_SECONDS;
  return async (event) => {
    const summary: RankingCacheSummary = { ...emptySummary(RANKING_CACHE_HANDLER), rankingsWritten: 0, rankingsDeleted: 0 };
    return instrumentInvocation(deps.observability, summary, 'ranking batch not applied; the trigger will retry it', async () => {
      await cacheRankings(deps, event, ttlSeconds, summary);
      deps.observability.metrics.addMetric('RankingsWritten', MetricUnit.Count, summary.rankingsWritten);
      deps.observability.metrics.addMetric('RankingsDeleted', MetricUnit.Count, summary.rankingsDeleted);
    });
  };
}

async function cacheRankings(deps: RankingCacheDeps, event: unknown, ttlSeconds: number, summary: RankingCacheSummary): Promise<void> {
  const records = decodeKafkaEvent(event);
  summary.records = records.length;
  const sorted = sortBatch(records, (record): PositionedChange => ({
    change: rankingChangeOf(record),
    partition: record.coordinates.partition,
    offset: record.coordinates.offset,
    timestamp: record.timestamp,
  }));
  const letters = sorted.deadLetters;
  const changes = sorted.accepted.map((a) => a.event);

  const latest = latestPerKey(changes);
  if (latest.length > 0) await applyChanges(deps.cache, latest, ttlSeconds);
  summary.skipped = changes.length - latest.length;
  for (const { change } of latest) {
    if (change.kind === 'upsert') summary.rankingsWritten += 1;
    else summary.rankingsDeleted += 1;
  }

  // After Redis: a retry caused by Postgres re-applies the same SETs, and the coordinates key
  // of dead_letters makes recording the same bad record twice a no-op.
  if (letters.length > 0) {
    try {
      await recordDeadLetters(await deps.pool(), RANKING_CACHE_HANDLER, letters);
    } catch (cause) {
      throw new DatabaseUnavailableError('recording ranking dead letters', { cause });
    }
    summary.deadLettered = letters.length;
  }
}
