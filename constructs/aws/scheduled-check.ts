import { join } from 'node:path';
import type { Construct } from 'constructs';
import type { LOG_RETENTION_DAYS } from '../../config/schema';
import type { WorkerSubnets } from './endpoints';
import { WorkerFunction } from './worker-function';
import { WorkerSchedule, rate } from './worker-schedule';

/** Props every check added by {@link addScheduledCheck} takes. */
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

/** What one check is. */
export interface ScheduledCheckDefinition {
  /** Bundle directory and service name of the checking function; also its construct id. */
  readonly service: 'flink-status' | 'trigger-status';
  /** What the check verifies; the function's and the schedule's description. */
  readonly description: string;
  /** Why the function calls out through the NAT (the egress rule's description). */
  readonly natDescription: string;
  /** Environment variables the check reads. */
  readonly environment: Readonly<Record<string, string>>;
  /** Account id (the schedule's role trusts this account's scheduler only). */
  readonly accountId: string;
}

/**
 * Adds a check on a schedule to `scope`: a small function (one at a time, a minute at most)
 * that calls an API through the NAT and reports what it finds as metrics, under the construct
 * id `check.service`, and its schedule (id `schedule`), every `everyMinutes`. The caller grants
 * the function what it reads. The children go straight into `scope` (no construct of their own),
 * so the check's resources keep the addresses they had when each check built them itself.
 */
export function addScheduledCheck(scope: Construct, props: ScheduledCheckProps, check: ScheduledCheckDefinition): WorkerFunction {
  const name = `${props.namePrefix}-${check.service}`;
  const worker = new WorkerFunction(scope, check.service, {
    functionName: name,
    description: check.description,
    bundleDirectory: join(props.bundleRoot, check.service),
    sizing: { memoryMb: 256, timeoutSeconds: 60, reservedConcurrency: 1 },
    logRetentionDays: props.logRetentionDays,
    network: props.network,
    serviceName: check.service,
    environment: check.environment,
  });
  worker.allowHttpsThroughNat(check.natDescription);
  new WorkerSchedule(scope, 'schedule', {
    worker,
    scheduleName: name,
    expression: rate(props.everyMinutes, 'minute'),
    description: check.description,
    accountId: check.accountId,
  });
  return worker;
}
