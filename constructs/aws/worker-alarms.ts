import { Construct } from 'constructs';
import { CloudwatchMetricAlarm, CloudwatchMetricAlarmConfig } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import type { AlertChannel } from './alert-channel';
import type { KafkaTrigger } from './kafka-trigger';
import { WORKER_METRICS_NAMESPACE, WorkerFunction } from './worker-function';

/**
 * Custom EMF metrics the handlers emit (lambdas/shared/observability.ts), in namespace
 * `adstream` with the Powertools `service` dimension.
 */
export const WORKER_METRICS = {
  /** Records written to the dead-letter table. */
  deadLettered: 'RecordsDeadLettered',
  /** Clicks newly charged (denominator of the duplicate rate). */
  clicksCharged: 'ClicksCharged',
  /** Duplicate clicks refunded or voided (numerator of the duplicate rate). */
  duplicateClicks: 'DuplicateClicks',
  /** Partitions of rtb-rankings-v2 the ranking cache has never had a heartbeat from (rtb-ranking v5 on). */
  rankingHeartbeatPartitionsMissing: 'RankingHeartbeatPartitionsMissing',
} as const;

/** What a function is for, which decides what its errors mean. */
export type FunctionDuty = 'kafka-consumer' | 'scheduled' | 'deploy';

/** Props of {@link WorkerAlarms}. */
export interface WorkerAlarmsProps {
  /** Where every alarm (and its recovery) is sent. */
  readonly alerts: AlertChannel;
  /** Alarm name prefix, e.g. `adstream-dev`. */
  readonly namePrefix: string;
}

/** Thresholds of the Kafka and data-quality alarms. */
export interface TriggerAlarmThresholds {
  /** Records the consumer group may lag behind before it alarms. */
  readonly offsetLag: number;
}

/**
 * The CloudWatch alarms of the workers, all notifying the alert channel on ALARM and OK:
 * function errors and throttles, trigger offset lag and discarded batches, dead-lettered
 * records and the duplicate-click rate.
 */
export class WorkerAlarms extends Construct {
  /** Names of the alarms created so far (the dashboard lists them). */
  public readonly alarmNames: string[] = [];
  private readonly actions: string[];

  constructor(
    scope: Construct,
    id: string,
    private readonly props: WorkerAlarmsProps,
  ) {
    super(scope, id);
    this.actions = [props.alerts.topicArn];
  }

  /**
   * `Errors` > 0 and `Throttles` > 0 over 5 minutes, with texts that match what the function
   * does: a Kafka consumer's error blocks its partition, a scheduled function's waits for its
   * next run, the migration's fails the deploy.
   */
  public watchFunction(worker: WorkerFunction, duty: FunctionDuty = 'kafka-consumer'): void {
    const id = worker.node.id;
    const errors: Record<FunctionDuty, string> = {
      'kafka-consumer': `${id} threw: its Kafka partition is blocked and the batch is retried until it succeeds. Check the function's logs. Runbook: docs/operations.md#blocked-partition`,
      scheduled: `${id} threw on its scheduled run; nothing is blocked, the next run retries. Check the function's logs. Runbook: docs/operations.md#scheduled-function-errors`,
      deploy: `${id} threw: the schema migration of the last deploy failed and the deploy stopped before the triggers. Check the function's logs. Runbook: docs/operations.md#scheduled-function-errors`,
    };
    const throttles: Record<FunctionDuty, string> = {
      'kafka-consumer': `${id} was throttled: reserved concurrency is below what its trigger's partitions need, so Lambda sheds pollers and lag grows.`,
      scheduled: `${id} was throttled: a run overlapped the previous one or reserved concurrency is too low; that run was skipped.`,
      deploy: `${id} was throttled during a deploy: two deploys ran at once.`,
    };
    for (const metric of ['Errors', 'Throttles'] as const) {
      this.alarmOn(`${id}-${metric.toLowerCase()}`, {
        alarmDescription: metric === 'Errors' ? errors[duty] : throttles[duty],
        namespace: 'AWS/Lambda',
        metricName: metric,
        dimensions: { FunctionName: worker.functionName },
        statistic: 'Sum',
      });
    }
  }

  /**
   * The trigger's consumer group lagging (`OffsetLag`, maximum over 5 minutes, three periods
   * in a row) and any message on its on-failure queue.
   */
  public watchTrigger(trigger: KafkaTrigger, thresholds: TriggerAlarmThresholds): void {
    const id = trigger.worker.node.id;
    this.alarmOn(`${id}-offset-lag`, {
      alarmDescription: `Consumer group ${trigger.consumerGroupId} is more than ${thresholds.offsetLag} records behind on ${trigger.topic}.`,
      namespace: 'AWS/Lambda',
      metricName: 'OffsetLag',
      // One trigger per function, so the function name identifies the mapping.
      dimensions: { FunctionName: trigger.worker.functionName },
      statistic: 'Maximum',
      evaluationPeriods: 3,
      threshold: thresholds.offsetLag,
    });
    this.alarmOn(`${id}-discarded-batches`, {
      alarmDescription: `Lambda gave up on a batch of ${trigger.topic}; its coordinates are on queue ${trigger.failureQueueName}. Fix the cause, then replay the message's offsets (npm run replay -- --on-failure-message). Runbook: docs/operations.md#blocked-partition`,
      namespace: 'AWS/SQS',
      metricName: 'ApproximateNumberOfMessagesVisible',
      dimensions: { QueueName: trigger.failureQueueName },
      statistic: 'Maximum',
    });
  }

  /** Any record written to the dead-letter table by this function in 5 minutes. */
  public watchDeadLetters(worker: WorkerFunction): void {
    this.alarmOn(`${worker.node.id}-dead-lettered`, {
      alarmDescription: `${worker.node.id} dead-lettered records (bad or unknown input); see the dead-letter table for reasons and Kafka coordinates, and re-drive them (npm run redrive) once the cause is fixed. Runbook: docs/operations.md#dead-letters`,
      namespace: WORKER_METRICS_NAMESPACE,
      metricName: WORKER_METRICS.deadLettered,
      dimensions: { service: worker.serviceName },
      statistic: 'Sum',
    });
  }

  /**
   * A partition of rtb-rankings-v2 without any heartbeat, for 15 minutes of batches that carried
   * heartbeats (rtb-ranking v5 writes one per partition; the ranking cache sets the freshness key
   * from the oldest partition's, so until every partition has one the bidder reads every ranking
   * as stale). The metric comes only from batches with heartbeats: no data is no news.
   */
  public watchRankingHeartbeats(worker: WorkerFunction): void {
    this.alarmOn('ranking-heartbeat-partitions-missing', {
      alarmDescription: `${worker.node.id} has had no ranking heartbeat from some partition of rtb-rankings-v2 for 15 minutes: the freshness key stays unset and the bidder reads every ranking as stale (falls back). Either none of the statement's 64 heartbeat keys lands on that partition (about 1 environment in 20 000), or the statement is still catching up after an upgrade. The worker's log names the partitions. Runbook: docs/operations.md#failed-flink-statement`,
      namespace: WORKER_METRICS_NAMESPACE,
      metricName: WORKER_METRICS.rankingHeartbeatPartitionsMissing,
      dimensions: { service: worker.serviceName },
      statistic: 'Maximum',
      evaluationPeriods: 3,
    });
  }

  /**
   * Duplicate clicks (refunded or voided by compensation) over clicks charged, per hour, above
   * `maxRate` — a burst of invalid traffic or a broken dedup window.
   */
  public watchDuplicateRate(charging: WorkerFunction, compensating: WorkerFunction, maxRate: number): void {
    this.alarmOn('duplicate-click-rate', {
      alarmDescription: `More than ${maxRate * 100}% of charged clicks were duplicates in the last hour.`,
      threshold: maxRate,
      metricQuery: [
        {
          id: 'duplicates',
          returnData: false,
          metric: {
            namespace: WORKER_METRICS_NAMESPACE,
            metricName: WORKER_METRICS.duplicateClicks,
            dimensions: { service: compensating.serviceName },
            stat: 'Sum',
            period: 3600,
          },
        },
        {
          id: 'charged',
          returnData: false,
          metric: {
            namespace: WORKER_METRICS_NAMESPACE,
            metricName: WORKER_METRICS.clicksCharged,
            dimensions: { service: charging.serviceName },
            stat: 'Sum',
            period: 3600,
          },
        },
        // No charged clicks means no rate, not an infinite one.
        { id: 'rate', expression: 'IF(charged > 0, duplicates / charged, 0)', label: 'Duplicate click rate', returnData: true },
      ],
    });
  }

  /**
   * One alarm with the settings every worker alarm shares: named under the prefix, above the
   * threshold (0 unless given) for one period (5 minutes for a plain metric) unless told otherwise, missing data is
   * fine, and both ALARM and OK go to the alert channel.
   */
  private alarmOn(
    id: string,
    config: Omit<CloudwatchMetricAlarmConfig, 'alarmName' | 'comparisonOperator' | 'evaluationPeriods'> & { readonly evaluationPeriods?: number },
  ): CloudwatchMetricAlarm {
    this.alarmNames.push(`${this.props.namePrefix}-${id}`);
    return new CloudwatchMetricAlarm(this, id, {
      alarmName: `${this.props.namePrefix}-${id}`,
      // A metric-math alarm takes its periods from its queries.
      ...(config.metricQuery ? {} : { period: 300 }),
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: 'GreaterThanThreshold',
      treatMissingData: 'notBreaching',
      alarmActions: this.actions,
      okActions: this.actions,
      ...config,
    });
  }
}
