import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Pool } from 'pg';
import { describeCause } from './errors';
import type { LambdaKafkaEvent } from './kafka-event';
import { METRICS_NAMESPACE, Observability } from './observability';
import type { PoolProvider } from './db';

/**
 * Metrics that let silence be alarmed: how old the oldest record of a Kafka batch is (the
 * recovery window is measured against it), and how far the outbox is behind. Emitted on their
 * own EMF line, before the work they describe, so a batch that keeps failing still reports its
 * age on every retry.
 */

/** Metric names, shared with the alarms and the dashboard (constructs/aws/silence-alarms.ts). */
export const HEALTH_METRICS = {
  /** Age in seconds of the oldest record in the batch (now − Kafka record timestamp). */
  oldestRecordAge: 'OldestRecordAgeSeconds',
  /** Outbox rows not yet published to every destination. */
  outboxBacklog: 'OutboxBacklog',
  /** Age in seconds of the oldest unpublished outbox row (0 when none). */
  outboxOldestAge: 'OutboxOldestUnpublishedSeconds',
  /** Unpublished outbox rows whose last publish attempt failed. */
  outboxFailing: 'OutboxRowsFailing',
  /** Campaigns currently paused because their daily budget is exhausted. */
  campaignsBudgetPaused: 'CampaignsBudgetPaused',
} as const;

/** Age in milliseconds of the oldest record of `event` at `now`, or undefined when no record has a timestamp. */
export function oldestRecordAgeMs(event: LambdaKafkaEvent, now: number): number | undefined {
  let oldest: number | undefined;
  for (const records of Object.values(event?.records ?? {})) {
    for (const record of records ?? []) {
      const ts = record?.timestamp;
      if (typeof ts === 'number' && Number.isFinite(ts) && (oldest === undefined || ts < oldest)) oldest = ts;
    }
  }
  return oldest === undefined ? undefined : Math.max(0, now - oldest);
}

/** Writes one metric on its own EMF line now (never throws). */
export type HealthEmitter = (name: string, value: number, unit: 'Seconds' | 'Count') => void;

/** An emitter that prints one EMF line per call in namespace `adstream`, dimension `service`. */
export function emfEmitter(serviceName: string): HealthEmitter {
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName });
  return (name, value, unit) => {
    try {
      metrics.addMetric(name, unit === 'Seconds' ? MetricUnit.Seconds : MetricUnit.Count, value);
      metrics.publishStoredMetrics();
    } catch {
      // Observability never fails a batch.
    }
  };
}

/**
 * Wraps a Kafka handler so each invocation first reports the age of its oldest record. The
 * wrapped handler runs unchanged; its result or error passes through.
 */
export function withBatchAge<R>(
  handler: (event: LambdaKafkaEvent) => Promise<R>,
  emit: HealthEmitter,
  now: () => number = Date.now,
): (event: LambdaKafkaEvent) => Promise<R> {
  return async (event) => {
    const age = oldestRecordAgeMs(event, now());
    if (age !== undefined) emit(HEALTH_METRICS.oldestRecordAge, Math.round(age / 1000), 'Seconds');
    return handler(event);
  };
}

/** How far the outbox is behind. */
export interface OutboxBacklog {
  /** Rows not yet published everywhere. */
  readonly pending: number;
  /** Of those, rows whose last attempt failed. */
  readonly failing: number;
  /** Age of the oldest pending row in seconds (0 when none). */
  readonly oldestAgeSeconds: number;
  /** Campaigns paused by budget right now. */
  readonly campaignsBudgetPaused: number;
}

/**
 * Measures the outbox backlog and the budget-paused campaigns. Pending means not yet published
 * to every destination of its kind, read through the two partial "pending" indexes the
 * publishers use (one bitmap OR per daily partition, no lookup by id across the partitions), so
 * the cost follows the backlog and the number of days kept, not the outbox's rows.
 */
export async function measureOutboxBacklog(pool: Pool): Promise<OutboxBacklog> {
  const { rows } = await pool.query<{ pending: string; failing: string; oldest: string | null; paused: string }>(
    `SELECT count(*) AS pending,
            count(*) FILTER (WHERE attempts > 0) AS failing,
            floor(EXTRACT(EPOCH FROM now() - min(created_at))) AS oldest,
            (SELECT count(*) FROM campaigns WHERE status = 'PAUSED' AND paused_reason = 'BUDGET_EXHAUSTED') AS paused
       FROM outbox
      WHERE sns_published_at IS NULL OR (kafka_published_at IS NULL AND kind IN ('CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED'))`,
  );
  const row = rows[0];
  return {
    pending: Number(row.pending),
    failing: Number(row.failing),
    oldestAgeSeconds: row.oldest === null ? 0 : Math.max(0, Number(row.oldest)),
    campaignsBudgetPaused: Number(row.paused),
  };
}

/**
 * Wraps the outbox sweep so that after every run, whatever its outcome, the backlog is
 * measured and reported. When Postgres cannot be reached nothing is emitted, and the alarm
 * (missing data breaches) fires: a sweep that cannot see the outbox is not publishing it.
 */
export function withOutboxBacklog<E, R>(
  handler: (event: E) => Promise<R>,
  pool: PoolProvider,
  emit: HealthEmitter,
  observability: Observability,
): (event: E) => Promise<R> {
  return async (event) => {
    try {
      return await handler(event);
    } finally {
      try {
        const backlog = await measureOutboxBacklog(await pool());
        emit(HEALTH_METRICS.outboxBacklog, backlog.pending, 'Count');
        emit(HEALTH_METRICS.outboxFailing, backlog.failing, 'Count');
        emit(HEALTH_METRICS.outboxOldestAge, backlog.oldestAgeSeconds, 'Seconds');
        emit(HEALTH_METRICS.campaignsBudgetPaused, backlog.campaignsBudgetPaused, 'Count');
      } catch (error) {
        observability.logger.warn('could not measure the outbox backlog', { error: describeCause(error) });
      }
    }
  };
}
