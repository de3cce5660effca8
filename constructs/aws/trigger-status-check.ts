import { Construct } from 'constructs';
import { AwsLocation, partitionOf } from './arn';
import type { KafkaTrigger } from './kafka-trigger';
import { addScheduledCheck, ScheduledCheckProps } from './scheduled-check';
import type { WorkerFunction } from './worker-function';

/** Props of {@link TriggerStatusCheck}. */
export interface TriggerStatusCheckProps extends ScheduledCheckProps {
  /** The triggers to check. */
  readonly triggers: readonly KafkaTrigger[];
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
    const { region, accountId } = props.location;
    this.worker = addScheduledCheck(this, props, {
      service: 'trigger-status',
      description: 'Checks that every Kafka trigger is enabled and consuming.',
      natDescription: 'AWS Lambda API through the NAT (no Lambda interface endpoint in the VPC)',
      environment: { TRIGGER_MAPPINGS: props.triggers.map((t) => `${t.worker.serviceName}=${t.mappingUuid}`).join(',') },
      accountId,
    });
    this.worker.addStatement({
      sid: 'ReadTriggers',
      effect: 'Allow',
      actions: ['lambda:GetEventSourceMapping'],
      resources: props.triggers.map((t) => `arn:${partitionOf(region)}:lambda:${region}:${accountId}:event-source-mapping:${t.mappingUuid}`),
    });
  }
}
