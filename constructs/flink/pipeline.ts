import { Construct } from 'constructs';
import type { FlinkPipelineDeployment, FlinkPipelineId } from '../../config/flink';
import { contractTables, FlinkTableSchema, parseCreateTable, tableOfCreate } from './catalog';
import { FlinkLintError, FlinkSqlFileError, FlinkStatementError } from './errors';
import { lintFlinkSql, StatementTables, tablesOfStatement } from './lint';
import { FLINK_SQL_ROOT, FlinkSqlFile, LockCandidate, loadPipelineVersion, readStatementLock, StatementLock, verifyAgainstLock } from './sql-files';
import { renderTemplate } from './sql-text';
import { FlinkSqlStatement } from './statement';

/**
 * The tables the statements of one stack know about: the contract topics (as Confluent infers
 * them) plus every table our DDL creates, with the statement that creates it and the watermark
 * statements that give it event time. Pipelines register into it in stack order, so a
 * statement can depend on exactly the DDL it needs.
 */
export class FlinkTableRegistry {
  private readonly schemas = new Map<string, FlinkTableSchema>(contractTables().map((t) => [t.name, t]));
  private readonly creators = new Map<string, FlinkSqlStatement>();
  private readonly watermarks = new Map<string, FlinkSqlStatement[]>();

  /** Every known table, by name. */
  public get tables(): ReadonlyMap<string, FlinkTableSchema> {
    return this.schemas;
  }

  /** Records the DDL statement that creates `schema`. */
  public registerCreate(schema: FlinkTableSchema, statement: FlinkSqlStatement): void {
    const existing = this.creators.get(schema.name);
    if (existing || this.schemas.get(schema.name)?.origin === 'contract') {
      throw new FlinkStatementError(
        `flink-sql/${statement.source} creates table \`${schema.name}\`, which ${existing ? `flink-sql/${existing.source} already creates` : 'is a foundation topic'}; CREATE TABLE fails when the topic exists. A new version writes to a new table name, or reuses the table without a CREATE.`,
      );
    }
    this.schemas.set(schema.name, schema);
    this.creators.set(schema.name, statement);
  }

  /** Records a watermark (ALTER TABLE … MODIFY WATERMARK) statement for `table`. */
  public registerWatermark(table: string, statement: FlinkSqlStatement): void {
    this.watermarks.set(table, [...(this.watermarks.get(table) ?? []), statement]);
  }

  /** The DDL a statement must wait for: creators of every table it touches, watermarks of what it reads. */
  public dependenciesOf(tables: StatementTables): FlinkSqlStatement[] {
    const needed: FlinkSqlStatement[] = [];
    const add = (statement: FlinkSqlStatement | undefined): void => {
      if (statement && !needed.includes(statement)) needed.push(statement);
    };
    for (const table of [tables.writes, tables.alters, ...tables.reads]) {
      if (table) add(this.creators.get(table));
    }
    for (const table of tables.reads) (this.watermarks.get(table) ?? []).forEach(add);
    return needed;
  }
}

/** Props of one pipeline (one `flink-sql/<nn>-<pipeline>/` directory). */
export interface FlinkPipelineProps {
  /** Which pipeline this is. */
  readonly pipeline: FlinkPipelineId;
  /** Running version, stopped flag and retired versions, from the environment config. */
  readonly deployment: FlinkPipelineDeployment;
  /** Environment name, part of every statement name (`adstream-<env>-<pipeline>-v<n>-<nn>`). */
  readonly environmentName: string;
  /** Production: statements get `prevent_destroy`. */
  readonly production: boolean;
  /** `sql.current-catalog`: the Confluent environment's display name. */
  readonly catalogName: string;
  /** `sql.current-database`: the Kafka cluster's display name. */
  readonly databaseName: string;
  /** The stack's table registry; this pipeline reads from it and registers its DDL into it. */
  readonly tables: FlinkTableRegistry;
  /** Whether versions missing from the lock file may deploy (ignored in production). */
  readonly allowUnreleasedVersions: boolean;
  /**
   * Values for `${NAME}` placeholders in the SQL files; part of the released statement.
   * @default - no placeholders allowed
   */
  readonly parameters?: Readonly<Record<string, string>>;
  /**
   * Environment-independent properties of the INSERT statements (`sql.state-ttl`, `sql.local-time-zone`); part of the released statement.
   * @default - only catalog and database
   */
  readonly dmlProperties?: Readonly<Record<string, string>>;
  /**
   * Directory holding the pipeline directories and the lock file.
   * @default - flink-sql/ at the repository root, resolved from this module
   */
  readonly sqlRoot?: string;
}

/**
 * One pipeline: every statement file of its running version and of its retired versions, each
 * validated by the dialect lint and the lock file at synth and deployed as its own statement.
 * Retired versions stay deployed with their INSERTs stopped, so a migration can overlap.
 */
export class FlinkPipeline extends Construct {
  /** Every statement of the pipeline, retired versions first, in file order. */
  public readonly statements: readonly FlinkSqlStatement[];
  /** The statements of the running version. */
  public readonly runningStatements: readonly FlinkSqlStatement[];
  /** What `flink-sql/release.ts` records in the lock for each statement, by version. */
  public readonly lockCandidates: ReadonlyMap<number, readonly LockCandidate[]>;

  constructor(scope: Construct, id: string, props: FlinkPipelineProps) {
    super(scope, id);
    const root = props.sqlRoot ?? FLINK_SQL_ROOT;
    const lock: StatementLock = readStatementLock(root);
    const versions = [...[...props.deployment.retiredVersions].sort((a, b) => a - b), props.deployment.version];
    const all: FlinkSqlStatement[] = [];
    const running: FlinkSqlStatement[] = [];
    const candidatesByVersion = new Map<number, LockCandidate[]>();
    for (const version of versions) {
      const retired = version !== props.deployment.version;
      const files = loadPipelineVersion(root, props.pipeline, version);
      const prepared = files.map((file) => this.prepare(file, props));
      const candidates = prepared.map((p) => ({ file: p.file, parameters: p.parameters, properties: p.releasedProperties }));
      candidatesByVersion.set(version, candidates);
      // Production never deploys an unreleased version, whatever the flag says.
      verifyAgainstLock(lock, candidates, props.allowUnreleasedVersions && !props.production);
      for (const p of prepared) {
        const findings = lintFlinkSql({ sql: p.sql, properties: p.releasedProperties, tables: props.tables.tables });
        if (findings.length > 0) throw new FlinkLintError(p.file.relativePath, findings);
        const statement = new FlinkSqlStatement(this, `v${version}-${p.file.sequence}-${p.file.title}`, {
          statementName: `adstream-${props.environmentName}-${props.pipeline}-v${version}-${p.file.sequence}`,
          sql: p.sql,
          kind: p.kind,
          properties: {
            'sql.current-catalog': props.catalogName,
            'sql.current-database': props.databaseName,
            ...p.releasedProperties,
          },
          tables: p.tables,
          source: p.file.relativePath,
          stopped: p.kind === 'dml' ? retired || props.deployment.stopped : undefined,
          preventDestroy: props.production,
          dependsOn: props.tables.dependenciesOf(p.tables),
        });
        const created = parseCreateTable(p.sql);
        if (created) props.tables.registerCreate(tableOfCreate(created), statement);
        if (p.tables.alters) props.tables.registerWatermark(p.tables.alters, statement);
        all.push(statement);
        if (!retired) running.push(statement);
      }
    }
    this.statements = all;
    this.runningStatements = running;
    this.lockCandidates = candidatesByVersion;
  }

  private prepare(file: FlinkSqlFile, props: FlinkPipelineProps) {
    const rendered = renderTemplate(file.template, props.parameters ?? {});
    if (rendered.missing.length > 0) {
      throw new FlinkSqlFileError(
        `flink-sql/${file.relativePath} uses placeholder(s) ${rendered.missing.map((m) => `\${${m}}`).join(', ')} that the ${props.pipeline} pipeline does not provide (it provides: ${Object.keys(props.parameters ?? {}).join(', ') || 'none'}).`,
      );
    }
    const parameters: Record<string, string> = {};
    for (const name of rendered.used) parameters[name] = (props.parameters ?? {})[name];
    const tables = tablesOfStatement(rendered.text);
    const kind = tables.kind === 'insert' ? 'dml' : 'ddl';
    if (tables.kind === 'other') {
      throw new FlinkSqlFileError(
        `flink-sql/${file.relativePath}: only CREATE TABLE, ALTER TABLE … MODIFY WATERMARK, ALTER TABLE … SET ('changelog.mode' = …) and INSERT INTO statements are deployed from flink-sql/.`,
      );
    }
    const releasedProperties: Record<string, string> = kind === 'dml' ? { ...(props.dmlProperties ?? {}) } : {};
    return { file, sql: rendered.text, parameters, tables, kind: kind as 'ddl' | 'dml', releasedProperties };
  }
}
