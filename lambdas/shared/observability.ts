import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
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
  /**
   * Money charged by this invocation: the sum of the DEDUCT amounts it inserted, as the
   * database's NUMERIC text. Only on the summary of a function that charges.
   */
  chargedAmount?: string;
  /** Money refunded by this invocation: the sum of the REFUND amounts it inserted. Only on the summary of a function that refunds. */
  refundedAmount?: string;
  /** The counters this function emits as metrics (the others are meaningless for it, not zero). */
  readonly emits: readonly SummaryCounter[];
}

/** Counters of an {@link InvocationSummary} that can be emitted as metrics. */
export type SummaryCounter = 'records' | 'charged' | 'skipped' | 'deadLettered' | 'refunded' | 'voided' | 'outboxPublished' | 'cacheFailures';

/** Metric name of each summary counter (alarms and the dashboard use these names). */
export const SUMMARY_METRICS: Readonly<Record<SummaryCounter, string>> = {
  records: 'RecordsReceived',
  charged: 'ClicksCharged',
  skipped: 'RecordsSkipped',
  deadLettered: 'RecordsDeadLettered',
  refunded: 'ClicksRefunded',
  voided: 'ClicksVoided',
  outboxPublished: 'OutboxPublished',
  cacheFailures: 'CacheUnavailable',
};

/**
 * A zeroed summary for `handler`, which emits the metrics of `emits` (and `InvocationMs`) after
 * each invocation. A counter that means nothing for the function is left out rather than
 * emitted as 0: a scheduled job reporting `ClicksCharged=0` would blur the charging alarms.
 */
export function emptySummary(handler: string, emits: readonly SummaryCounter[]): InvocationSummary {
  return {
    handler,
    emits,
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

/** First and last offset of one topic-partition of a Kafka batch. */
export interface PartitionCoordinates {
  /** Topic name. */
  readonly topic: string;
  /** Partition number. */
  readonly partition: number;
  /** Lowest offset in the batch for this partition. */
  readonly firstOffset: number;
  /** Highest offset in the batch for this partition. */
  readonly lastOffset: number;
  /** Records of this partition in the batch. */
  readonly records: number;
}

/**
 * Where a Lambda Kafka batch came from, per topic-partition: what an on-call engineer needs to
 * replay it (`npm run replay`) or find it on the on-failure queue. Undefined for an event that
 * is not a Kafka batch (a schedule). The event is untrusted input: records without a usable
 * offset are counted but do not move the offsets, and a partition with none is left out.
 */
export function kafkaBatchCoordinates(event: unknown): PartitionCoordinates[] | undefined {
  const records = (event as { records?: unknown } | null | undefined)?.records;
  if (typeof records !== 'object' || records === null || Array.isArray(records)) return undefined;
  const coordinates: PartitionCoordinates[] = [];
  for (const [key, list] of Object.entries(records as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    let first: number | undefined;
    let last: number | undefined;
    let topic: string | undefined;
    let partition: number | undefined;
    for (const raw of list as Array<{ topic?: unknown; partition?: unknown; offset?: unknown } | null>) {
      topic ??= typeof raw?.topic === 'string' ? raw.topic : undefined;
      partition ??= Number.isSafeInteger(raw?.partition) ? (raw?.partition as number) : undefined;
      const offset = raw?.offset;
      if (!Number.isSafeInteger(offset)) continue;
      first = first === undefined ? (offset as number) : Math.min(first, offset as number);
      last = last === undefined ? (offset as number) : Math.max(last, offset as number);
    }
    if (first === undefined || last === undefined) continue;
    const separator = key.lastIndexOf('-');
    coordinates.push({
      topic: topic ?? (separator > 0 ? key.slice(0, separator) : key),
      partition: partition ?? Number(key.slice(separator + 1)),
      firstOffset: first,
      lastOffset: last,
      records: list.length,
    });
  }
  return coordinates;
}

/**
 * Wraps a Lambda entry point so every line it logs carries the Powertools Lambda context
 * (`function_request_id`, `cold_start`, `function_name`, ...) and, for a Kafka batch, the
 * batch's coordinates under `kafka`. The keys are dropped after the invocation, so a warm
 * container never logs the previous batch's coordinates.
 */
export function withLambdaContext<E, R>(observability: Observability, handler: (event: E) => Promise<R>): (event: E, context?: Context) => Promise<R> {
  const { logger } = observability;
  return async (event, context) => {
    if (context) logger.addContext(context);
    const kafka = kafkaBatchCoordinates(event);
    if (kafka) logger.appendKeys({ kafka });
    try {
      return await handler(event);
    } finally {
      if (kafka) logger.removeKeys(['kafka']);
    }
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
    const { emits: _emits, ...line } = summary;
    logger.info('invocation summary', { summary: line });
    const count = MetricUnit.Count;
    for (const counter of summary.emits) metrics.addMetric(SUMMARY_METRICS[counter], count, summary[counter]);
    metrics.addMetric('InvocationMs', MetricUnit.Milliseconds, summary.elapsedMs);
    if (summary.emits.includes('refunded')) {
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
