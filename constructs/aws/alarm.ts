import { Construct } from 'constructs';
import { CloudwatchMetricAlarm, CloudwatchMetricAlarmConfig } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { partitionOf, type AwsLocation } from './arn';
import { AwsConstructError } from './errors';

/** Where an alarm notifies, on ALARM and on OK: the alert channel's topic. */
export interface AlarmTarget {
  /** SNS topic ARN. */
  readonly topicArn: string;
}

/** What an alarm needs besides its metric: its name, its text and how it treats silence. */
export type AlarmSettings = Omit<
  CloudwatchMetricAlarmConfig,
  'alarmName' | 'alarmActions' | 'okActions' | 'evaluationPeriods' | 'comparisonOperator' | 'threshold' | 'treatMissingData'
> & {
  /** Full alarm name (the dashboard refers to alarms by name). */
  readonly alarmName: string;
  /** What it means for the money path and what to do; CloudWatch caps it at 1024 characters. */
  readonly alarmDescription: string;
  /** @default 1 */
  readonly evaluationPeriods?: number;
  /** @default 'GreaterThanThreshold' */
  readonly comparisonOperator?: CloudwatchMetricAlarmConfig['comparisonOperator'];
  /** @default 0 */
  readonly threshold?: number;
  /**
   * `breaching` where silence is the failure (a function that should report and does not),
   * `notBreaching` where no data means nothing happened.
   * @default 'notBreaching'
   */
  readonly treatMissingData?: 'breaching' | 'notBreaching' | 'ignore' | 'missing';
};

/** Longest alarm description CloudWatch accepts. */
export const MAX_ALARM_DESCRIPTION = 1024;

/**
 * One CloudWatch alarm that notifies `target` on ALARM and on OK, with a plain metric's
 * period defaulting to 5 minutes. The description length is checked here so synth fails
 * instead of the apply.
 */
export function createAlarm(scope: Construct, id: string, target: AlarmTarget, settings: AlarmSettings): CloudwatchMetricAlarm {
  if (settings.alarmDescription.length > MAX_ALARM_DESCRIPTION) {
    throw new AwsConstructError(
      `${scope.node.path}/${id}`,
      `alarm description is ${settings.alarmDescription.length} characters; CloudWatch accepts at most ${MAX_ALARM_DESCRIPTION}. Shorten it and keep the runbook link.`,
    );
  }
  return new CloudwatchMetricAlarm(scope, id, {
    ...(settings.metricQuery ? {} : { period: 300 }),
    evaluationPeriods: 1,
    threshold: 0,
    comparisonOperator: 'GreaterThanThreshold',
    treatMissingData: 'notBreaching',
    alarmActions: [target.topicArn],
    okActions: [target.topicArn],
    ...settings,
  });
}

/** The ARN of an alarm by name, known before it exists (dashboards refer to other stacks' alarms). */
export function alarmArn(location: AwsLocation, alarmName: string): string {
  return `arn:${partitionOf(location.region)}:cloudwatch:${location.region}:${location.accountId}:alarm:${alarmName}`;
}
