import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { describeCause } from './errors';

/** CloudWatch namespace of every worker metric. */
export const METRICS_NAMESPACE = 'adstream';

/** Structured logger and EMF metrics of one handler. */
export interface Observability {
  /** Powertools logger (JSON lines). */
  readonly logger: Logger;
  /** Powertools metrics, flushed as EMF once per invocation. */
  readonly metrics: Metrics;
}

/**
 * What one invocation did; logged as a single line and emitted as metrics. Handlers return it
 * too (the Kafka trigger ignores return values), which is what tests assert on.
 */
export interface InvocationSummary {
  /** Handler name (`click-balance`, `compensation`, ...). */
  readonly handler: string;
  /** Records in the event. */
  records: number;
  /** Clicks newly charged (DEDUCT rows inserted). */
  charged: number;
  /** Records deliberately not applied: other event types, replays, voided clicks, duplicates in the batch. */
  skipped: number;
  /** Records written to the dead-letter table (newly, or already there from a redelivery). */
  deadLettered: number;
  /** Clicks newly refunded (REFUND rows inserted). */
  refunded: number;
  /** Clicks voided before they were charged. */
  voided: number;
  /** Outbox rows written in this invocation's transaction. */
  outboxWritten: number;
  /** Outbox rows published after commit (any destination). */
  outboxPublished: number;
  /** Cache calls that found Redis unavailable. */
  cacheFailures: number;
  /** Postgres statements sent for the batch (BEGIN and COMMIT included; outbox drain excluded). */
  dbRoundTrips: number;
  /** Wall-clock time of the invocation. */
  elapsedMs: number;
}

/** A zeroed summary for `handler`. */
export function emptySummary(handler: string): InvocationSummary {
  return {
    handler,
    records: 0,
    charged: 0,
    skipped: 0,
    deadLettered: 0,
    refunded: 0,
    voided: 0,
    outboxWritten: 0,
    outboxPublished: 0,
    cacheFailures: 0,
    dbRoundTrips: 0,
    elapsedMs: 0,
  };
}

/** Creates the logger and metrics of a handler (`POWERTOOLS_*` variables still apply). */
export function createObservability(serviceName: string): Observability {
  return {
    logger: new Logger({ serviceName }),
    metrics: new Metrics({ namespace: METRICS_NAMESPACE, serviceName }),
  };
}

/**
 * Writes the one summary line of an invocation and flushes its metrics as EMF. Never throws:
 * observability must not fail a batch whose money is already committed.
 */
export function reportInvocation(observability: Observability, summary: InvocationSummary): void {
  const { logger, metrics } = observability;
  try {
    logger.info('invocation summary', { summary });
    const count = MetricUnit.Count;
    metrics.addMetric('RecordsReceived', count, summary.records);
    metrics.addMetric('ClicksCharged', count, summary.charged);
    metrics.addMetric('RecordsSkipped', count, summary.skipped);
    metrics.addMetric('RecordsDeadLettered', count, summary.deadLettered);
    metrics.addMetric('ClicksRefunded', count, summary.refunded);
    metrics.addMetric('ClicksVoided', count, summary.voided);
    metrics.addMetric('OutboxPublished', count, summary.outboxPublished);
    metrics.addMetric('CacheUnavailable', count, summary.cacheFailures);
    metrics.addMetric('InvocationMs', MetricUnit.Milliseconds, summary.elapsedMs);
    if (summary.handler === 'compensation') {
      // Numerator of the duplicate-click rate alarm (DuplicateClicks / ClicksCharged).
      metrics.addMetric('DuplicateClicks', count, summary.refunded + summary.voided);
    }
    metrics.publishStoredMetrics();
  } catch (error) {
    logger.warn('could not emit metrics', { error: describeCause(error) });
  }
}

/**
 * Runs one invocation with the bookkeeping every handler shares: elapsed time, one error line
 * before rethrowing (Lambda then redelivers the batch, nothing having been applied), and the
 * summary line with its metrics whatever the outcome.
 */
export async function instrumentInvocation<S extends InvocationSummary>(
  observability: Observability,
  summary: S,
  failureMessage: string,
  work: () => Promise<void>,
): Promise<S> {
  const started = performance.now();
  try {
    await work();
  } catch (error) {
    observability.logger.error(failureMessage, { error: describeCause(error) });
    throw error;
  } finally {
    summary.elapsedMs = Math.round(performance.now() - started);
    reportInvocation(observability, summary);
  }
  return summary;
}
