import { Construct } from 'constructs';
import { Token } from 'cdktf';
import { FlinkStatement } from '../../.gen/providers/confluent/flink-statement';
import { FlinkStatementError } from './errors';
import { isAllowedStatementProperty, StatementTables } from './lint';

/** DDL completes once; DML (INSERT) runs continuously and can be stopped and resumed. */
export type FlinkStatementKind = 'ddl' | 'dml';

/** Props of one Confluent Flink statement. */
export interface FlinkSqlStatementProps {
  /** Confluent statement name: lowercase letters, digits and hyphens, starting with a letter, at most 100 characters. */
  readonly statementName: string;
  /** The SQL exactly as deployed (one statement, templates rendered). */
  readonly sql: string;
  /** Whether the statement is DDL or a continuous DML. */
  readonly kind: FlinkStatementKind;
  /** Statement properties; only the `sql.*` options Confluent accepts. */
  readonly properties: Readonly<Record<string, string>>;
  /** The tables the statement creates, alters, writes and reads. */
  readonly tables: StatementTables;
  /** Path of the SQL file relative to flink-sql/, for messages. */
  readonly source: string;
  /**
   * Whether a DML statement is stopped. Must be left undefined for DDL, which Confluent cannot resume.
   * @default - running (false) for DML, not set for DDL
   */
  readonly stopped?: boolean;
  /** Sets `lifecycle { prevent_destroy = true }` (production): no plan may delete or replace it. */
  readonly preventDestroy: boolean;
  /**
   * Statements that must exist first: the DDL creating the tables it uses, the watermark DDL of its sources.
   * @default - none
   */
  readonly dependsOn?: readonly FlinkSqlStatement[];
}

const STATEMENT_NAME = /^[a-z][a-z0-9-]{0,98}[a-z0-9]$/;

/**
 * One SQL statement deployed as one `confluent_flink_statement`. Credentials, compute pool,
 * principal, organization and environment come from the provider (its "option #2"), so no
 * secret is copied onto the resource.
 */
export class FlinkSqlStatement extends Construct {
  /** The Confluent statement name (a state address: renaming it replaces the statement). */
  public readonly statementName: string;
  /** The deployed SQL. */
  public readonly sql: string;
  /** DDL or DML. */
  public readonly kind: FlinkStatementKind;
  /** The statement properties as deployed. */
  public readonly properties: Readonly<Record<string, string>>;
  /** Tables the statement creates, alters, writes and reads. */
  public readonly tables: StatementTables;
  /** Path of the SQL file relative to flink-sql/. */
  public readonly source: string;
  /** Whether the statement is deployed stopped (DML only). */
  public readonly stopped: boolean | undefined;
  /** The generated resource. */
  public readonly resource: FlinkStatement;

  constructor(scope: Construct, id: string, props: FlinkSqlStatementProps) {
    super(scope, id);
    if (!Token.isUnresolved(props.statementName) && !STATEMENT_NAME.test(props.statementName)) {
      throw new FlinkStatementError(
        `Flink statement name ${JSON.stringify(props.statementName)} (from flink-sql/${props.source}) is not valid on Confluent Cloud: use lowercase letters, digits and hyphens, start with a letter, end with a letter or digit, at most 100 characters.`,
      );
    }
    for (const key of Object.keys(props.properties)) {
      if (!isAllowedStatementProperty(key)) {
        throw new FlinkStatementError(
          `Statement ${props.statementName}: property "${key}" is not one of Confluent Cloud's sql.* statement properties; checkpointing, parallelism and table.exec.* are managed by the service.`,
        );
      }
    }
    if (/[$%]\{/.test(props.sql)) {
      throw new FlinkStatementError(
        `flink-sql/${props.source} still contains "\${" or "%{" after rendering: Terraform would read it as an interpolation. Provide the placeholder's value or remove the sequence.`,
      );
    }
    if (props.kind === 'ddl' && props.stopped !== undefined) {
      throw new FlinkStatementError(
        `Statement ${props.statementName} is DDL: it completes once and cannot be stopped or resumed (only INSERT INTO, CREATE TABLE AS and statement sets can), so leave stopped unset.`,
      );
    }
    this.statementName = props.statementName;
    this.sql = props.sql;
    this.kind = props.kind;
    this.properties = props.properties;
    this.tables = props.tables;
    this.source = props.source;
    this.stopped = props.kind === 'dml' ? (props.stopped ?? false) : undefined;
    this.resource = new FlinkStatement(this, 'statement', {
      statementName: props.statementName,
      statement: props.sql,
      properties: { ...props.properties },
      stopped: this.stopped,
      dependsOn: props.dependsOn && props.dependsOn.length > 0 ? props.dependsOn.map((dependency) => dependency.resource) : undefined,
      lifecycle: props.preventDestroy ? { preventDestroy: true } : undefined,
    });
  }
}
