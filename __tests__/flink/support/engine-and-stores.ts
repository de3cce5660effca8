import type Redis from 'ioredis';
import { FlinkEngine } from '../../../scripts/flink-engine';
import { createRankingCacheHandler, RankingCacheSummary } from '../../../lambdas/ranking-cache/ranking-cache';
import { cleanKeyspace, createTestDatabase, TestDatabase, testKeyPrefix, testRedis, workerDeps } from '../../lambdas/support/test-database';

/** A Flink engine plus the worker's own stores (a test database, a Redis key prefix) for one test file. */
export interface EngineAndStores {
  readonly engine: FlinkEngine;
  readonly db: TestDatabase;
  readonly redis: Redis;
  readonly prefix: string;
}

/**
 * Starts the engine, a test database and a prefixed Redis client before the file's tests and
 * closes and cleans all of them after; the returned object is filled in by `beforeAll`.
 */
export function useEngineAndStores(): EngineAndStores {
  const rig = { prefix: testKeyPrefix() } as { engine: FlinkEngine; db: TestDatabase; redis: Redis; prefix: string };
  beforeAll(async () => {
    rig.engine = await FlinkEngine.start();
    rig.db = await createTestDatabase();
    rig.redis = testRedis(rig.prefix);
  }, 300_000);
  afterAll(async () => {
    await rig.engine?.close();
    rig.redis?.disconnect();
    await cleanKeyspace(rig.prefix);
    await rig.db?.drop();
  });
  return rig;
}

/**
 * The ranking-cache worker on the rig's stores, as the deployed module builds it, with the
 * test's clock and `RANKING_HEARTBEAT_PARTITIONS`; `close` ends its pool and Redis client.
 */
export function rankingWorker(
  rig: EngineAndStores,
  now: () => number,
  heartbeatPartitions = 0,
): { readonly handler: (event: unknown) => Promise<RankingCacheSummary>; close(): Promise<void> } {
  const deps = workerDeps({ databaseUrl: rig.db.url, keyPrefix: rig.prefix });
  const handler = createRankingCacheHandler({
    pool: deps.pool,
    cache: deps.cache,
    observability: deps.observability,
    budgetTimeZone: deps.budgetTimeZone,
    now,
    // The scenarios run rtb-ranking v4 or later, which write as_of on every settled row.
    versionedRows: true,
    // RTB_RANKINGS_PARTITIONS for v5 on (one heartbeat per partition), 0 for v4's one heartbeat key.
    heartbeatPartitions,
  });
  return { handler, close: () => deps.close() };
}
