import { Construct } from 'constructs';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { addScheduledCheck, ScheduledCheckProps } from './scheduled-check';
import type { WorkerFunction } from './worker-function';

/** One continuous Flink statement the check expects to be RUNNING. */
export interface ExpectedFlinkStatement {
  /** Pipeline it belongs to (`duplicate-clicks`, `rtb-ranking`, …): the alarm text depends on it. */
  readonly pipeline: string;
  /** Confluent statement name. */
  readonly statementName: string;
}

/** Props of {@link FlinkStatusCheck}. */
export interface FlinkStatusCheckProps extends ScheduledCheckProps {
  /** Environment name (part of the secret name). */
  readonly environmentName: string;
  /** Statements that must be RUNNING. */
  readonly statements: readonly ExpectedFlinkStatement[];
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

    this.worker = addScheduledCheck(this, props, {
      service: 'flink-status',
      description: 'Checks that every continuous Flink statement is RUNNING.',
      natDescription: 'Confluent Cloud Flink REST API through the NAT',
      environment: {
        FLINK_STATUS_SECRET_ARN: secret.arn,
        FLINK_STATEMENTS: props.statements.map((s) => s.statementName).join(','),
      },
      accountId: props.accountId,
    });
    this.worker.readsSecret('FlinkStatusKey', secret.arn);
  }
}
