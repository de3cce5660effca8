import { join } from 'node:path';
import { Construct } from 'constructs';
import type { LOG_RETENTION_DAYS } from '../../config/schema';
import type { WorkerSubnets } from './endpoints';
import { WorkerFunction } from './worker-function';
import { WorkerSchedule, rate } from './worker-schedule';

/** Props every {@link ScheduledCheck} takes. */
export interface ScheduledCheckProps {
  /** Name prefix, e.g. `adstream-prod`. */
  readonly namePrefix: string;
  /** Directory holding the bundles (`<root>/<check>/index.js`, e.g. `<root>/flink-status/index.js`). */
  readonly bundleRoot: string;
  /** Private subnets (the API the check calls is reached through the NAT). */
  readonly network: WorkerSubnets;
  /** Days the function's logs are kept. */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** Minutes between checks. */
  readonly everyMinutes: number;
}

/** What a subclass says about its check. */
export interface ScheduledCheckDefinition {
  /** Bundle directory and service name of the checking function; also its construct id. */
  readonly service: 'flink-status' | 'trigger-status';
  /** What the check verifies; the function's and the schedule's description. */
  readonly description: string;
  /** Why the function calls out through the NAT (the egress rule's description). */
  readonly natDescription: string;
  /** Account id (the schedule's role trusts this account's scheduler only). */
  readonly accountId: string;
  /** Environment variables known before the subclass adds its own. @default - none */
  readonly environment?: Readonly<Record<string, string>>;
}

/**
 * A check on a schedule: a small function (one at a time, one minute at most) that calls an API
 * through the NAT and reports what it finds as metrics, invoked every `everyMinutes` by its own
 * schedule. Subclasses grant the function what it reads.
 */
export abstract class ScheduledCheck extends Construct {
  /** The checking function. */
  public readonly worker: WorkerFunction;

  protected constructor(scope: Construct, id: string, props: ScheduledCheckProps, check: ScheduledCheckDefinition) {
    super(scope, id);
    const name = `${props.namePrefix}-${check.service}`;
    this.worker = new WorkerFunction(this, check.service, {
      functionName: name,
      description: check.description,
      bundleDirectory: join(props.bundleRoot, check.service),
      sizing: { memoryMb: 256, timeoutSeconds: 60, reservedConcurrency: 1 },
      logRetentionDays: props.logRetentionDays,
      network: props.network,
      serviceName: check.service,
      environment: check.environment,
    });
    this.worker.allowHttpsThroughNat(check.natDescription);
    new WorkerSchedule(this, 'schedule', {
      worker: this.worker,
      scheduleName: name,
      expression: rate(props.everyMinutes, 'minute'),
      description: check.description,
      accountId: check.accountId,
    });
  }
}
