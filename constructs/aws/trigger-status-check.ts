import { join } from 'node:path';
import { Construct } from 'constructs';
import type { LOG_RETENTION_DAYS } from '../../config/schema';
import { AwsLocation, partitionOf } from './arn';
import type { WorkerSubnets } from './endpoints';
import type { KafkaTrigger } from './kafka-trigger';
import { WorkerFunction } from './worker-function';
import { WorkerSchedule } from './worker-schedule';

/** Props of {@link TriggerStatusCheck}. */
export interface TriggerStatusCheckProps {
  /** Name prefix, e.g. `adstream-prod`. */
  readonly namePrefix: string;
  /** Directory holding the bundles (`<root>/trigger-status/index.js`). */
  readonly bundleRoot: string;
  /** Private subnets (the Lambda API is reached through the NAT). */
  readonly network: WorkerSubnets;
  /** Days the function's logs are kept. */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** The triggers to check. */
  readonly triggers: readonly KafkaTrigger[];
  /** Minutes between checks. */
  readonly everyMinutes: number;
  /** Region and account (the grant names each mapping's ARN). */
  readonly location: AwsLocation;
}

/**
 * Checks on a schedule that every Kafka trigger is consuming: its event source mapping is
 * Enabled and its last processing result is not a PROBLEM (a revoked key, a missing ACL,
 * unreachable brokers). Those failures raise no function error; the `trigger-status` function
 * reports them as a metric per trigger. It may only read the mappings it checks.
 */
export class TriggerStatusCheck extends Construct {
  /** The checking function. */
  public readonly worker: WorkerFunction;
  /** The triggers it checks, by the consuming function's service name. */
  public readonly triggerNames: readonly string[];

  constructor(scope: Construct, id: string, props: TriggerStatusCheckProps) {
    super(scope, id);
    this.triggerNames = props.triggers.map((t) => t.worker.serviceName);
    this.worker = new WorkerFunction(this, 'trigger-status', {
      functionName: `${props.namePrefix}-trigger-status`,
      description: 'Checks that every Kafka trigger is enabled and consuming.',
      bundleDirectory: join(props.bundleRoot, 'trigger-status'),
      sizing: { memoryMb: 256, timeoutSeconds: 60, reservedConcurrency: 1 },
      logRetentionDays: props.logRetentionDays,
      network: props.network,
      serviceName: 'trigger-status',
      environment: { TRIGGER_MAPPINGS: props.triggers.map((t) => `${t.worker.serviceName}=${t.mappingUuid}`).join(',') },
    });
    const { region, accountId } = props.location;
    this.worker.allowHttpsThroughNat('AWS Lambda API through the NAT (no Lambda interface endpoint in the VPC)');
    this.worker.addStatement({
      sid: 'ReadTriggers',
      effect: 'Allow',
      actions: ['lambda:GetEventSourceMapping'],
      resources: props.triggers.map((t) => `arn:${partitionOf(region)}:lambda:${region}:${accountId}:event-source-mapping:${t.mappingUuid}`),
    });
    new WorkerSchedule(this, 'schedule', {
      worker: this.worker,
      scheduleName: `${props.namePrefix}-trigger-status`,
      expression: props.everyMinutes === 1 ? 'rate(1 minute)' : `rate(${props.everyMinutes} minutes)`,
      description: 'Checks that every Kafka trigger is enabled and consuming.',
      accountId,
    });
  }
}
