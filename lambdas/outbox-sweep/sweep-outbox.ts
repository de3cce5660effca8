import { drainOutbox } from '../shared/outbox';
import { emptySummary, InvocationSummary, instrumentInvocation, SummaryCounter } from '../shared/observability';
import { WorkerDeps } from '../shared/runtime';
import { DatabaseUnavailableError } from '../shared/errors';

/** Name of the handler in logs and metrics. */
export const OUTBOX_SWEEP_HANDLER = 'outbox-sweep';

/** Metrics the sweep emits after each run (the backlog gauges come from withOutboxBacklog). */
export const OUTBOX_SWEEP_METRICS: readonly SummaryCounter[] = ['outboxPublished'];

/** What a sweep did. */
export interface OutboxSweepSummary extends InvocationSummary {
  /** Rows marked published to SNS. */
  publishedToSns: number;
  /** Rows marked published to Kafka. */
  publishedToKafka: number;
  /** Destinations that failed (their rows wait for the next sweep). */
  failures: string[];
}

/**
 * Builds the scheduled outbox sweep: publishes whatever the after-commit drains could not
 * (SNS or Kafka was down, or the Lambda stopped between commit and publish). Throws only when
 * Postgres fails, so the schedule's failure metrics show it.
 */
export function createOutboxSweepHandler(deps: WorkerDeps): (event?: unknown) => Promise<OutboxSweepSummary> {
  return async () => {
    const summary: OutboxSweepSummary = { ...emptySummary(OUTBOX_SWEEP_HANDLER, OUTBOX_SWEEP_METRICS), publishedToSns: 0, publishedToKafka: 0, failures: [] };
    return instrumentInvocation(deps.observability, summary, 'outbox sweep failed; rows stay pending for the next sweep', async () => {
      if (!deps.publishers.sns && !deps.publishers.kafka) {
        deps.observability.logger.info('no SNS topic or Kafka producer configured; outbox rows stay unpublished');
        return;
      }
      let pool;
      try {
        pool = await deps.pool();
      } catch (cause) {
        throw new DatabaseUnavailableError('sweeping the outbox', { cause });
      }
      const result = await drainOutbox(pool, deps.publishers, { batchSize: 100, maxBatches: 20 }).catch((cause: unknown) => {
        throw new DatabaseUnavailableError('sweeping the outbox', { cause });
      });
      summary.publishedToSns = result.published.sns;
      summary.publishedToKafka = result.published.kafka;
      summary.outboxPublished = result.published.sns + result.published.kafka;
      summary.failures = result.failures.map((f) => f.error);
      for (const failure of result.failures) deps.observability.logger.warn('outbox publish failed; will retry', failure);
    });
  };
}
