import { join } from 'node:path';
import { Construct } from 'constructs';
import type { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import type { FunctionSizing, LOG_RETENTION_DAYS } from '../../config/schema';
import { AlarmTarget, createAlarm } from './alarm';
import { AwsConstructError } from './errors';
import type { PostgresEndpoint, WorkerSubnets } from './endpoints';
import { WORKER_METRICS_NAMESPACE, WorkerFunction } from './worker-function';
import { WorkerSchedule, rate } from './worker-schedule';

/** The metric the reconcile function emits (lambdas/reconcile/reconcile-ledger.ts). */
export const RECONCILIATION_DRIFT_METRIC = 'ReconciliationDrift';
/** How long a completed run took, in seconds (the same file). */
export const RECONCILIATION_SECONDS_METRIC = 'ReconciliationSeconds';

/** Database role the function connects as (db/migrations/1764700000000_ledger-entries.sql: SELECT only). */
export const RECONCILE_DATABASE_ROLE = 'adstream_reconcile';

/** Props of {@link Reconciliation}. */
export interface ReconciliationProps {
  /** Name prefix, e.g. `adstream-prod`. */
  readonly namePrefix: string;
  /** Directory holding the bundles (`<root>/reconcile/index.js`). */
  readonly bundleRoot: string;
  /** Private subnets (the database is private). */
  readonly network: WorkerSubnets;
  /** The ledger database. */
  readonly database: PostgresEndpoint;
  /** Days the function's logs are kept. */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** Hours between runs (every run checks the whole ledger). */
  readonly everyHours: number;
  /** Where the drift alarm notifies. */
  readonly target: AlarmTarget;
  /** Account id (the schedule's role). */
  readonly accountId: string;
}

/**
 * The ledger reconciliation on a schedule: the `reconcile` function checks, in one snapshot,
 * that every balance and every day's spend is explained by the ledger and that no click is both
 * charged and voided or refunded twice, logs the offending ids and emits `ReconciliationDrift`.
 * One alarm fires on any drift, and when the function did not report (missing data breaches).
 */
/**
 * The reconciliation function's size: one instance at a time (it holds one ledger connection,
 * which the RDS Proxy client-connections alarm counts).
 */
export const RECONCILE_SIZING: FunctionSizing = { memoryMb: 256, timeoutSeconds: 300, reservedConcurrency: 1 };

export class Reconciliation extends Construct {
  /** The function. */
  public readonly worker: WorkerFunction;
  /** The drift alarm. */
  public readonly alarm: CloudwatchMetricAlarm;
  /** The names of the drift alarm and the slow-run alarm (known at synth; the dashboard lists them). */
  public readonly alarmNames: readonly string[];

  constructor(scope: Construct, id: string, props: ReconciliationProps) {
    super(scope, id);
    if (!Number.isInteger(props.everyHours) || props.everyHours < 1 || props.everyHours > 12) {
      throw new AwsConstructError(
        this.node.path,
        `everyHours must be a whole number from 1 to 12 (the drift alarm's period spans two runs and CloudWatch evaluates at most a day), got ${props.everyHours}.`,
      );
    }
    this.worker = new WorkerFunction(this, 'reconcile', {
      functionName: `${props.namePrefix}-reconcile`,
      description: 'Checks that balances and spend are explained by the ledger; alarms on drift.',
      bundleDirectory: join(props.bundleRoot, 'reconcile'),
      sizing: RECONCILE_SIZING,
      logRetentionDays: props.logRetentionDays,
      network: props.network,
      serviceName: 'reconcile',
      environment: {},
    });
    this.worker.connectTo(props.database, RECONCILE_DATABASE_ROLE);
    new WorkerSchedule(this, 'schedule', {
      worker: this.worker,
      scheduleName: `${props.namePrefix}-reconcile`,
      expression: rate(props.everyHours, 'hour'),
      description: 'Reconciles the ledger: balances, day spend, refunds, voids, outbox.',
      accountId: props.accountId,
    });
    // One period spans two runs, so a run landing late in its hour never leaves a period empty.
    const driftAlarmName = `${props.namePrefix}-reconciliation-drift`;
    this.alarm = createAlarm(this, 'drift', props.target, {
      alarmName: driftAlarmName,
      namespace: WORKER_METRICS_NAMESPACE,
      metricName: RECONCILIATION_DRIFT_METRIC,
      dimensions: { service: this.worker.serviceName },
      statistic: 'Maximum',
      period: 2 * props.everyHours * 3600,
      treatMissingData: 'breaching',
      alarmDescription:
        'The ledger does not reconcile (a balance or a day\'s spend not explained by the ledger, a click charged and voided, a duplicate refunded twice, an original refunded with its duplicate, an outbox row never published), or the reconciliation did not run. Money path: an advertiser is over- or under-charged. Do: read the reconcile log line "ledger does not reconcile" for the offending ids, then run npm run reconcile. Runbook: docs/operations.md#reconciliation-alarm',
    });
    // Every run reads the whole ledger, so it slows as the ledger grows; past the function's
    // timeout it is cut off and the drift alarm above can only say that it did not run.
    const slowAlarmName = `${props.namePrefix}-reconciliation-slow`;
    createAlarm(this, 'slow', props.target, {
      alarmName: slowAlarmName,
      namespace: WORKER_METRICS_NAMESPACE,
      metricName: RECONCILIATION_SECONDS_METRIC,
      dimensions: { service: this.worker.serviceName },
      statistic: 'Maximum',
      period: 2 * props.everyHours * 3600,
      threshold: RECONCILE_SIZING.timeoutSeconds / 2,
      alarmDescription: `A ledger reconciliation took over ${RECONCILE_SIZING.timeoutSeconds / 2} s, half its function's timeout: every run reads the whole ledger, and as the ledger grows the runs will be cut off and drift will go unseen. Money path: not yet; the checks still ran. Do: read durationsMs in the reconcile log line to see which check grows, then shorten the retention or the run's work. Runbook: docs/operations.md#reconciliation-slow`,
    });
    this.alarmNames = [driftAlarmName, slowAlarmName];
  }
}
