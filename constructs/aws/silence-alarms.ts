import { Construct } from 'constructs';
import type { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import type { EnvironmentConfig, TopicName } from '../../config/schema';
import { AlarmSettings, AlarmTarget, createAlarm } from './alarm';
import type { FlinkStatusCheck } from './flink-status-check';
import type { TriggerStatusCheck } from './trigger-status-check';
import type { KafkaTrigger } from './kafka-trigger';
import { WORKER_METRICS_NAMESPACE, WorkerFunction } from './worker-function';

const RUNBOOK = 'Runbook: docs/operations.md';

/**
 * Metrics the silence alarms read, in namespace `adstream` with the `service` dimension:
 * the invocation summary (lambdas/shared/observability.ts), the health metrics
 * (lambdas/shared/health-metrics.ts) and the Flink check (lambdas/flink-status).
 */
export const SILENCE_METRICS = {
  recordsReceived: 'RecordsReceived',
  recordsSkipped: 'RecordsSkipped',
  clicksCharged: 'ClicksCharged',
  oldestRecordAge: 'OldestRecordAgeSeconds',
  outboxOldestAge: 'OutboxOldestUnpublishedSeconds',
  outboxFailing: 'OutboxRowsFailing',
  outboxBacklog: 'OutboxBacklog',
  campaignsBudgetPaused: 'CampaignsBudgetPaused',
  flinkRunning: 'FlinkStatementRunning',
  flinkNotRunning: 'FlinkStatementsNotRunning',
  triggerHealthy: 'TriggerHealthy',
} as const;

/**
 * Retention of the topics Flink creates (`rtb-rankings`): the Confluent Cloud default for a
 * table created without `kafka.retention.time`, 7 days.
 */
export const FLINK_TABLE_RETENTION_MS = 7 * 24 * 3600 * 1000;

/** What each continuous Flink pipeline's failure does to the money path. */
const PIPELINE_IMPACT: Readonly<Record<string, string>> = {
  'duplicate-clicks': 'no compensation events are produced, so duplicate clicks stay charged (advertisers are over-charged) until it runs again and catches up',
  'rtb-ranking': 'rankings and their heartbeat stop; the bidder reads every ranking stale once the freshness bound passes',
  'performance-metrics': 'the 5-minute metrics and the 24-hour product rollup stop, so the ranking scores go stale',
  attribution: 'conversions are not attributed to clicks (reporting only; no money moves)',
};

/** How long a consumer's records stay in Kafka, i.e. how long its blocked partition can wait. */
export function recoveryWindowMs(config: Pick<EnvironmentConfig, 'confluent'>, topic: string): number {
  const configured = config.confluent.topics[topic as TopicName];
  if (configured === undefined) return FLINK_TABLE_RETENTION_MS;
  // A compacted topic keeps the latest record per key; count only its delete part, if any.
  return configured.retentionMs === -1 ? Number.POSITIVE_INFINITY : configured.retentionMs;
}

/** Hours, to one decimal, for alarm texts. */
function hours(ms: number): string {
  return `${Math.round((ms / 3_600_000) * 10) / 10} h`;
}

/** Props of {@link SilenceAlarms}. */
export interface SilenceAlarmsProps {
  /** Thresholds (`monitoring.silence`, `monitoring.recovery`) and topic retention. */
  readonly config: EnvironmentConfig;
  /** Where every alarm, and its recovery, is sent. */
  readonly target: AlarmTarget;
  /** The function that charges clicks. */
  readonly clickBalance: WorkerFunction;
  /** The function that refunds duplicates. */
  readonly compensation: WorkerFunction;
  /** The outbox sweep (it reports the backlog). */
  readonly outboxSweep: WorkerFunction;
  /** The Kafka triggers. */
  readonly triggers: readonly KafkaTrigger[];
  /** The Flink status check. */
  readonly flinkStatus: FlinkStatusCheck;
  /** The trigger status check. */
  readonly triggerStatus: TriggerStatusCheck;
}

/**
 * The alarms for silence: the failures that raise no error, only stop money from moving.
 * Clicks arriving but none charged; no click traffic at all (where it should flow); duplicates
 * no longer refunded while clicks flow; a trigger that lags but consumes nothing; the oldest
 * unprocessed record against the recovery window (the topic's retention); a Flink statement
 * not RUNNING; the outbox backlog and its failed publishes. Where silence itself is the
 * failure (the click feed, the Flink check, the outbox sweep), missing data breaches.
 */
export class SilenceAlarms extends Construct {
  /** Every alarm, in creation order. */
  public readonly alarms: readonly CloudwatchMetricAlarm[];
  /** Their names, in the same order (the dashboard lists them). */
  public readonly alarmNames: readonly string[];

  constructor(scope: Construct, id: string, props: SilenceAlarmsProps) {
    super(scope, id);
    const { config, clickBalance, compensation, outboxSweep } = props;
    const prefix = `adstream-${config.name}`;
    const { silence, recovery } = config.monitoring;
    const stalledPeriods = silence.stalledMinutes / 5;
    const alarms: CloudwatchMetricAlarm[] = [];
    const names: string[] = [];
    this.alarms = alarms;
    this.alarmNames = names;
    const add = (alarmId: string, settings: Omit<AlarmSettings, 'alarmName'>) => {
      const alarmName = `${prefix}-${alarmId}`;
      names.push(alarmName);
      alarms.push(createAlarm(this, alarmId, props.target, { alarmName, ...settings }));
    };
    const custom = (worker: WorkerFunction, metricName: string, stat: string, period = 300) => ({
      namespace: WORKER_METRICS_NAMESPACE,
      metricName,
      dimensions: { service: worker.serviceName },
      stat,
      period,
    });
    const plain = (worker: WorkerFunction, metricName: string, statistic: string) => ({
      namespace: WORKER_METRICS_NAMESPACE,
      metricName,
      dimensions: { service: worker.serviceName },
      statistic,
      period: 300,
    });

    add('click-charging-stopped', {
      evaluationPeriods: stalledPeriods,
      datapointsToAlarm: stalledPeriods,
      metricQuery: [
        { id: 'received', returnData: false, metric: custom(clickBalance, SILENCE_METRICS.recordsReceived, 'Sum') },
        { id: 'skipped', returnData: false, metric: custom(clickBalance, SILENCE_METRICS.recordsSkipped, 'Sum') },
        { id: 'charged', returnData: false, metric: custom(clickBalance, SILENCE_METRICS.clicksCharged, 'Sum') },
        // Records that are not impressions or replays (skipped) should charge or dead-letter.
        {
          id: 'stopped',
          label: 'Records to charge, none charged',
          returnData: true,
          expression: 'IF(FILL(received, 0) - FILL(skipped, 0) > 0 AND FILL(charged, 0) == 0, 1, 0)',
        },
      ],
      alarmDescription: `click-balance received clicks for ${silence.stalledMinutes} minutes and charged none. Money path: clicks are served and not billed (every one dead-lettered, or charged nowhere). Do: read the dead_letters reasons and the click-balance log. ${RUNBOOK}#click-charging-stopped`,
    });

    if (silence.clickTrafficQuietMinutes !== undefined) {
      const periods = silence.clickTrafficQuietMinutes / 5;
      add('click-traffic-stopped', {
        ...plain(clickBalance, SILENCE_METRICS.recordsReceived, 'Sum'),
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        comparisonOperator: 'LessThanThreshold',
        threshold: 1,
        treatMissingData: 'breaching',
        alarmDescription: `click-balance received nothing from ad-events for ${silence.clickTrafficQuietMinutes} minutes (no data counts as nothing). Money path: clicks served now are not charged until the trigger reads them; if retention passes first they are lost. Do: check the event source mapping state and LastProcessingResult (revoked key, ACL, disabled mapping), then the ad server. ${RUNBOOK}#click-traffic-stopped`,
      });
    }

    add('compensations-stopped', {
      metricQuery: [
        { id: 'charged', returnData: false, metric: custom(clickBalance, SILENCE_METRICS.clicksCharged, 'Sum', 3600) },
        { id: 'received', returnData: false, metric: custom(compensation, SILENCE_METRICS.recordsReceived, 'Sum', 3600) },
        {
          id: 'stopped',
          label: 'Clicks flowing, no compensation',
          returnData: true,
          expression: `IF(FILL(charged, 0) >= ${silence.clicksPerHourExpectingDuplicates} AND FILL(received, 0) == 0, 1, 0)`,
        },
      ],
      alarmDescription: `At least ${silence.clicksPerHourExpectingDuplicates} clicks were charged in the last hour and the compensation function received no event. Money path: duplicate clicks are charged and not refunded. Do: check the duplicate-clicks Flink statement (flink-status alarms) and the compensation trigger. ${RUNBOOK}#compensations-stopped`,
    });

    const triggerPeriod = Math.max(300, Math.ceil(silence.triggerCheckMinutes / 5) * 300);
    for (const trigger of props.triggers) {
      const fn = trigger.worker;
      const name = fn.node.id;
      const money = name !== 'ranking-cache';
      add(`${name}-trigger-state`, {
        namespace: WORKER_METRICS_NAMESPACE,
        metricName: SILENCE_METRICS.triggerHealthy,
        dimensions: { service: props.triggerStatus.worker.serviceName, trigger: fn.serviceName },
        statistic: 'Minimum',
        period: triggerPeriod,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        comparisonOperator: 'LessThanThreshold',
        threshold: 1,
        treatMissingData: 'breaching',
        alarmDescription: `The Kafka trigger of ${name} (${trigger.topic}, group ${trigger.consumerGroupId}) is not Enabled or reports a PROBLEM (revoked or wrong Confluent key, missing ACL, unreachable brokers), or the check could not read it. Money path: ${money ? 'its records are neither charged nor refunded' : 'rankings stop updating'}, silently, until Kafka retention deletes them. Do: read State and LastProcessingResult of the mapping. ${RUNBOOK}#trigger-not-consuming`,
      });
      add(`${name}-not-consuming`, {
        evaluationPeriods: stalledPeriods,
        datapointsToAlarm: stalledPeriods,
        metricQuery: [
          {
            id: 'lag',
            returnData: false,
            metric: { namespace: 'AWS/Lambda', metricName: 'OffsetLag', dimensions: { FunctionName: fn.functionName }, stat: 'Maximum', period: 300 },
          },
          { id: 'received', returnData: false, metric: custom(fn, SILENCE_METRICS.recordsReceived, 'Sum') },
          { id: 'stalled', label: 'Lagging, nothing consumed', returnData: true, expression: 'IF(FILL(lag, 0) > 0 AND FILL(received, 0) == 0, 1, 0)' },
        ],
        alarmDescription: `Trigger of ${name} (group ${trigger.consumerGroupId}) lags on ${trigger.topic} and delivered nothing for ${silence.stalledMinutes} minutes. Money path: ${money ? 'its records are neither charged nor refunded' : 'rankings in Redis stop updating'} while they wait. Do: check the mapping's State and LastProcessingResult and the function's Throttles. ${RUNBOOK}#trigger-not-consuming`,
      });

      const windowMs = recoveryWindowMs(config, trigger.topic);
      add(`${name}-record-age`, {
        ...plain(fn, SILENCE_METRICS.oldestRecordAge, 'Maximum'),
        threshold: recovery.recordAgeWarnMinutes * 60,
        alarmDescription: `${name} is processing records older than ${recovery.recordAgeWarnMinutes} minutes from ${trigger.topic}: a partition is blocked or far behind. Money path: ${money ? 'those clicks or refunds wait' : 'rankings are stale'}; Kafka deletes them after ${hours(windowMs)}. Do: find the failing batch in the ${name} log. ${RUNBOOK}#blocked-partition`,
      });
      if (Number.isFinite(windowMs)) {
        const alarmAt = Math.floor((recovery.recoveryWindowAlarmPercent / 100) * windowMs);
        add(`${name}-recovery-window`, {
          ...plain(fn, SILENCE_METRICS.oldestRecordAge, 'Maximum'),
          threshold: Math.floor(alarmAt / 1000),
          alarmDescription: `${name}'s oldest unprocessed record from ${trigger.topic} is older than ${hours(alarmAt)}, ${recovery.recoveryWindowAlarmPercent}% of the ${hours(windowMs)} retention. Money path: in ${hours(windowMs - alarmAt)} Kafka deletes it${money ? ' and those clicks or refunds are lost for good' : ''}. Do: fix or skip the blocking batch now. ${RUNBOOK}#recovery-window`,
        });
      }
    }

    const check = props.flinkStatus;
    const checkPeriod = Math.max(300, Math.ceil(silence.flinkCheckMinutes / 5) * 300);
    for (const statement of check.statements) {
      add(`flink-${statement.statementName.replace(`${prefix}-`, '')}`, {
        namespace: WORKER_METRICS_NAMESPACE,
        metricName: SILENCE_METRICS.flinkRunning,
        dimensions: { service: check.worker.serviceName, statement: statement.statementName },
        statistic: 'Minimum',
        period: checkPeriod,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        comparisonOperator: 'LessThanThreshold',
        threshold: 1,
        treatMissingData: 'breaching',
        alarmDescription: `Flink statement ${statement.statementName} (${statement.pipeline}) is not RUNNING (FAILED, DEGRADED, STOPPED or missing), or the check could not ask Confluent. Money path: ${PIPELINE_IMPACT[statement.pipeline] ?? 'its output stops'}. Do: read the flink-status log for the phase, then the statement's exceptions. ${RUNBOOK}#failed-flink-statement`,
      });
    }

    add('outbox-backlog-age', {
      ...plain(outboxSweep, SILENCE_METRICS.outboxOldestAge, 'Maximum'),
      threshold: silence.outboxMaxAgeMinutes * 60,
      treatMissingData: 'breaching',
      alarmDescription: `An outbox row has waited more than ${silence.outboxMaxAgeMinutes} minutes to be published, or the outbox sweep stopped reporting. Money path: a CAMPAIGN_PAUSED that has not reached the bidder keeps an exhausted campaign serving (clicks still charged, balance goes negative); budget warnings are late. Do: read last_error of the oldest unpublished rows. ${RUNBOOK}#outbox-backlog`,
    });
    add('outbox-publish-failures', {
      ...plain(outboxSweep, SILENCE_METRICS.outboxFailing, 'Maximum'),
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      alarmDescription: `Outbox rows have failed to publish (SNS or Kafka) and are still unpublished after 10 minutes of retries. Money path: pauses and resumes do not reach the bidder; budget warnings are not delivered. Do: read last_error and attempts of the unpublished rows. ${RUNBOOK}#outbox-backlog`,
    });
  }
}
