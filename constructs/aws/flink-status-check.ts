import { join } from 'node:path';
import { Construct } from 'constructs';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import type { LOG_RETENTION_DAYS } from '../../config/schema';
import type { WorkerSubnets } from './endpoints';
import { WorkerFunction } from './worker-function';
import { WorkerSchedule } from './worker-schedule';

/** One continuous Flink statement the check expects to be RUNNING. */
export interface ExpectedFlinkStatement {
  /** Pipeline it belongs to (`duplicate-clicks`, `rtb-ranking`, …): the alarm text depends on it. */
  readonly pipeline: string;
  /** Confluent statement name. */
  readonly statementName: string;
}

/** Props of {@link FlinkStatusCheck}. */
export interface FlinkStatusCheckProps {
  /** Name prefix, e.g. `adstream-prod`. */
  readonly namePrefix: string;
  /** Environment name (part of the secret name). */
  readonly environmentName: string;
  /** Directory holding the bundles (`<root>/flink-status/index.js`). */
  readonly bundleRoot: string;
  /** Private subnets (the Flink REST API is reached through the NAT). */
  readonly network: WorkerSubnets;
  /** Days the function's logs are kept. */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** Statements that must be RUNNING. */
  readonly statements: readonly ExpectedFlinkStatement[];
  /** Minutes between checks. */
  readonly everyMinutes: number;
  /** Account id (the schedule's role trusts this account's scheduler only). */
  readonly accountId: string;
  /** Keeps the secret for 30 days after deletion rather than 7. */
  readonly production: boolean;
}

/**
 * Checks on a schedule that every continuous Flink statement is RUNNING, through the Flink
 * SQL REST API, and reports it as metrics (the `flink-status` function). Its credentials live
 * in a secret this construct creates empty: an operator stores the REST endpoint, ids and a
 * Flink API key in it once (docs/operations.md, "Flink status check"); until then every check
 * reports "cannot check" and the Flink alarms fire.
 */
export class FlinkStatusCheck extends Construct {
  /** The checking function. */
  public readonly worker: WorkerFunction;
  /** ARN of the credentials secret. */
  public readonly secretArn: string;
  /** Name of the credentials secret, e.g. `adstream/prod/flink/status-reader`. */
  public readonly secretName: string;
  /** The statements it checks. */
  public readonly statements: readonly ExpectedFlinkStatement[];

  constructor(scope: Construct, id: string, props: FlinkStatusCheckProps) {
    super(scope, id);
    this.statements = props.statements;
    this.secretName = `adstream/${props.environmentName}/flink/status-reader`;
    const secret = new SecretsmanagerSecret(this, 'credentials', {
      name: this.secretName,
      description:
        'Flink REST endpoint, organization and environment ids, and a Flink API key that can read the statements (JSON: rest_endpoint, organization_id, environment_id, api_key, api_secret)',
      recoveryWindowInDays: props.production ? 30 : 7,
    });
    this.secretArn = secret.arn;

    this.worker = new WorkerFunction(this, 'flink-status', {
      functionName: `${props.namePrefix}-flink-status`,
      description: 'Checks that every continuous Flink statement is RUNNING.',
      bundleDirectory: join(props.bundleRoot, 'flink-status'),
      sizing: { memoryMb: 256, timeoutSeconds: 60, reservedConcurrency: 1 },
      logRetentionDays: props.logRetentionDays,
      network: props.network,
      serviceName: 'flink-status',
      environment: {
        FLINK_STATUS_SECRET_ARN: secret.arn,
        FLINK_STATEMENTS: props.statements.map((s) => s.statementName).join(','),
      },
    });
    this.worker.allowHttpsThroughNat('Confluent Cloud Flink REST API through the NAT');
    this.worker.readsSecret('FlinkStatusKey', secret.arn);

    new WorkerSchedule(this, 'schedule', {
      worker: this.worker,
      scheduleName: `${props.namePrefix}-flink-status`,
      expression: props.everyMinutes === 1 ? 'rate(1 minute)' : `rate(${props.everyMinutes} minutes)`,
      description: 'Checks that every continuous Flink statement is RUNNING.',
      accountId: props.accountId,
    });
  }
}
