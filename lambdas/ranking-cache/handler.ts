import { createPoolProvider } from '../shared/db';
import { parseWorkerEnv } from '../shared/env';
import { ConfigError } from '../shared/errors';
import { createObservability, withLambdaContext } from '../shared/observability';
import { emfEmitter, withBatchAge } from '../shared/health-metrics';
import { createRedisClientProvider, RedisCache } from '../shared/redis';
import {
  createRankingCacheHandler,
  parseRankingFreshnessSeconds,
  parseRankingHeartbeatPartitions,
  parseRankingRowsVersioned,
  RANKING_CACHE_HANDLER,
} from './ranking-cache';

// Module scope: parsed and connected once per container, reused by every invocation. Built
// from the shared pieces rather than loadWorkerDeps so this bundle carries no outbox publishers
// (kafkajs, SNS), which the ranking cache never uses.
const env = parseWorkerEnv(process.env);
if (!env.redis) {
  throw new ConfigError('REDIS_URL', 'is not set, nor REDIS_HOST; the ranking cache writes Redis and cannot run without it');
}

const observability = createObservability(RANKING_CACHE_HANDLER);

/** Lambda entry point for the `rtb-rankings-v2` Kafka trigger (consumer group `ranking-cache-writer`). */
export const handler = withLambdaContext(
  observability,
  withBatchAge(
    createRankingCacheHandler({
      pool: createPoolProvider(env.database),
      cache: new RedisCache(createRedisClientProvider(env.redis, env.redisKeyPrefix)),
      observability,
      budgetTimeZone: env.budgetTimeZone,
      freshnessSeconds: parseRankingFreshnessSeconds(process.env),
      versionedRows: parseRankingRowsVersioned(process.env),
      heartbeatPartitions: parseRankingHeartbeatPartitions(process.env),
    }),
    emfEmitter(RANKING_CACHE_HANDLER),
  ),
);
