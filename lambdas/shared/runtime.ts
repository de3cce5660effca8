import { createPoolProvider, PoolProvider } from './db';
import { parseWorkerEnv, WorkerEnv } from './env';
import { describeCause } from './errors';
import { createObservability, InvocationSummary, Observability } from './observability';
import { createKafkaPublisher, createSnsPublisher, drainOutbox, OutboxPublishers } from './outbox';
import { createRedisClientProvider, RedisCache } from './redis';

/**
 * What every worker handler depends on. Handlers are built from these by factories
 * (`createClickBalanceHandler(deps)`), so tests inject a pool and cache pointing at their own
 * database and keyspace, and the deployed module wires the real ones at load time.
 */
export interface WorkerDeps {
  /** The module-scope pg pool (max 1). */
  readonly pool: PoolProvider;
  /** The Redis cache (fail-fast; may be disabled). */
  readonly cache: RedisCache;
  /** Outbox publishers; an absent one keeps its rows unpublished. */
  readonly publishers: OutboxPublishers;
  /** Logger and metrics. */
  readonly observability: Observability;
  /** IANA zone whose calendar day is the budget day. */
  readonly budgetTimeZone: string;
  /** Clock (epoch ms); tests pin it. @default Date.now */
  readonly now?: () => number;
  /**
   * Oldest budget day (`YYYY-MM-DD`) whose charges, voids and duplicate log are surely still
   * kept: a click or compensation of that day or earlier (its day before may be expired) is
   * dead-lettered `HISTORY_EXPIRED`. Set by the recovery commands, which feed records older than
   * the topics' retention. @default - no bound (a record from Kafka is younger than the retention)
   */
  readonly historySince?: string;
  /**
   * Time a handler may spend publishing outbox rows right after its commit; what is not sent by
   * then is left to the outbox sweep, so a slow SNS or Kafka never holds up the next batch for
   * long. @default AFTER_COMMIT_PUBLISH_MS
   */
  readonly afterCommitPublishMs?: number;
}

/** Default of `WorkerDeps.afterCommitPublishMs`. */
export const AFTER_COMMIT_PUBLISH_MS = 300;

/** Rows an after-commit drain sends per destination at most (a backlog is the sweep's job). */
const AFTER_COMMIT_ROWS = 25;

/**
 * Parses the environment and creates the module-scope clients of one handler. Called once at
 * module load by each `handler.ts`; a bad environment fails the cold start, loudly.
 */
export function loadWorkerDeps(serviceName: string, source: NodeJS.ProcessEnv = process.env): WorkerDeps & { readonly env: WorkerEnv } {
  const env = parseWorkerEnv(source);
  const observability = createObservability(serviceName);
  const cache = env.redis ? new RedisCache(createRedisClientProvider(env.redis, env.redisKeyPrefix)) : RedisCache.disabled();
  return {
    env,
    pool: createPoolProvider(env.database),
    cache,
    publishers: {
      sns: env.alertsTopicArn ? createSnsPublisher(env.alertsTopicArn) : undefined,
      kafka: env.kafkaProducer
        ? createKafkaPublisher({
            brokers: env.kafkaProducer.brokers,
            secretArn: env.kafkaProducer.secretArn,
            topic: env.campaignEventsTopic,
            schemaId: env.campaignEventsSchemaId,
          })
        : undefined,
    },
    observability,
    budgetTimeZone: env.budgetTimeZone,
  };
}

/**
 * Publishes outbox rows right after a commit, within `afterCommitPublishMs` and at most one
 * small batch per destination; the rest (a slow destination, a backlog) is left to the
 * scheduled sweep. Failures are logged, never thrown: throwing here would make Lambda redeliver
 * a batch whose money is already committed.
 */
export async function publishAfterCommit(deps: WorkerDeps, summary: InvocationSummary): Promise<void> {
  if (summary.outboxWritten === 0 || (!deps.publishers.sns && !deps.publishers.kafka)) return;
  const signal = AbortSignal.timeout(deps.afterCommitPublishMs ?? AFTER_COMMIT_PUBLISH_MS);
  try {
    const result = await drainOutbox(await deps.pool(), deps.publishers, { maxBatches: 1, batchSize: AFTER_COMMIT_ROWS, signal });
    summary.outboxPublished = result.published.sns + result.published.kafka;
    for (const failure of result.failures) {
      deps.observability.logger.warn('outbox publish failed; the sweep will retry', failure);
    }
  } catch (error) {
    deps.observability.logger.warn('outbox drain failed; the sweep will retry', { error: describeCause(error) });
  }
}

/** Wires cache failures into the summary and a rate-limited warning. */
export function watchCache(deps: WorkerDeps, summary: InvocationSummary): void {
  let warned = false;
  deps.cache.onFailure((operation, error) => {
    summary.cacheFailures++;
    if (!warned) {
      warned = true;
      deps.observability.logger.warn('Redis unavailable; using the database', { operation, error: describeCause(error) });
    }
  });
}
