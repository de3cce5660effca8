import { Construct } from 'constructs';
import { SchedulerSchedule } from '@cdktf/provider-aws/lib/scheduler-schedule';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { AwsConstructError } from './errors';
import type { WorkerFunction } from './worker-function';

/** A Scheduler `rate(...)` expression: every `amount` minutes or hours (`rate(1 minute)`, `rate(5 minutes)`). */
export function rate(amount: number, unit: 'minute' | 'hour'): string {
  return amount === 1 ? `rate(1 ${unit})` : `rate(${amount} ${unit}s)`;
}

/** Props of {@link WorkerSchedule}. */
export interface WorkerScheduleProps {
  /** The function to invoke. */
  readonly worker: WorkerFunction;
  /** Schedule name, e.g. `adstream-dev-budget-reset`. */
  readonly scheduleName: string;
  /** `cron(...)` or `rate(...)` expression. */
  readonly expression: string;
  /** IANA zone the expression is read in. @default 'UTC' */
  readonly timeZone?: string;
  /** What the schedule is for. */
  readonly description: string;
  /**
   * Event passed to the function; `<aws.scheduler.scheduled-time>` is replaced by the
   * scheduled time, so a late retry still acts for the right day.
   * @default '{"scheduled_time":"<aws.scheduler.scheduled-time>"}'
   */
  readonly input?: string;
  /** Account id, so only this account's scheduler can assume the role. */
  readonly accountId: string;
}

/**
 * An EventBridge Scheduler schedule invoking one function, with its own role that may invoke
 * that function and nothing else. No flexible window: budget resets belong at midnight.
 */
export class WorkerSchedule extends Construct {
  /** Schedule ARN. */
  public readonly scheduleArn: string;

  constructor(scope: Construct, id: string, props: WorkerScheduleProps) {
    super(scope, id);
    if (!/^(cron|rate)\(.+\)$/.test(props.expression)) {
      throw new AwsConstructError(
        this.node.path,
        `expression ${JSON.stringify(props.expression)} is not a Scheduler expression; use "cron(0 0 * * ? *)" or "rate(5 minutes)".`,
      );
    }
    const assume = new DataAwsIamPolicyDocument(this, 'assume-role', {
      statement: [
        {
          effect: 'Allow',
          actions: ['sts:AssumeRole'],
          principals: [{ type: 'Service', identifiers: ['scheduler.amazonaws.com'] }],
          condition: [{ test: 'StringEquals', variable: 'aws:SourceAccount', values: [props.accountId] }],
        },
      ],
    });
    const invoke = new DataAwsIamPolicyDocument(this, 'access', {
      statement: [{ sid: 'InvokeOneFunction', effect: 'Allow', actions: ['lambda:InvokeFunction'], resources: [props.worker.liveArn] }],
    });
    const role = new IamRole(this, 'role', { name: props.scheduleName, assumeRolePolicy: assume.json });
    const policy = new IamRolePolicy(this, 'role-policy', { name: 'invoke-function', role: role.id, policy: invoke.json });
    const schedule = new SchedulerSchedule(this, 'schedule', {
      name: props.scheduleName,
      description: props.description,
      scheduleExpression: props.expression,
      scheduleExpressionTimezone: props.timeZone ?? 'UTC',
      flexibleTimeWindow: { mode: 'OFF' },
      target: {
        // The released version (the `live` alias), never code whose migration has not run.
        arn: props.worker.liveArn,
        roleArn: role.arn,
        input: props.input ?? JSON.stringify({ scheduled_time: '<aws.scheduler.scheduled-time>' }),
        retryPolicy: { maximumRetryAttempts: 3, maximumEventAgeInSeconds: 3600 },
      },
      dependsOn: [policy],
    });
    this.scheduleArn = schedule.arn;
  }
}
