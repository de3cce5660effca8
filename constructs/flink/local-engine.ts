import { EVENT_CONTRACTS } from '../../contracts';
import { InferredSourceTable, inferredSourceTable, parseCreateTable, ROWTIME_COLUMN, TopicCleanupPolicy } from './catalog';
import { FlinkTranslationError } from './errors';
import { isSymbol, isWord, matchingParen, tokenize } from './sql-text';

/**
 * The translation of Confluent-only parts of the synthesized statements for the local engine
 * (`java/flink-runner`, Apache Flink's planner and runtime). Small and explicit: every rewrite
 * is listed in flink-sql/README.md ("Local engine") with the Confluent behaviour it emulates,
 * and anything not listed fails with {@link FlinkTranslationError}. No cdktf imports: the
 * statements come in as plain values (from the synthesized stack).
 */

/** A statement as one `confluent_flink_statement` receives it. */
export interface SynthesizedStatement {
  /** Confluent statement name. */
  readonly name: string;
  /** The SQL text exactly as deployed. */
  readonly sql: string;
  /** The statement properties exactly as deployed. */
  readonly properties: Readonly<Record<string, string>>;
  /** DDL or DML. */
  readonly kind: 'ddl' | 'dml';
  /** Path of the SQL file relative to flink-sql/. */
  readonly source: string;
}

/** One statement of a local job. */
export interface LocalStatement {
  /** Confluent statement name (errors name it). */
  readonly name: string;
  /** Path relative to flink-sql/. */
  readonly source: string;
  /** DDL runs once; DML is explained (and executed in a scenario). */
  readonly kind: 'ddl' | 'dml';
  /** SQL after translation. */
  readonly sql: string;
  /** Flink table options the statement properties map to. */
  readonly config: Readonly<Record<string, string>>;
}

/** What the runner executes: catalog, base configuration, source tables, statements. */
export interface LocalJob {
  /** `sql.current-catalog` of the statements. */
  readonly catalog: string;
  /** `sql.current-database` of the statements. */
  readonly database: string;
  /** Flink options of every statement (see {@link LOCAL_BASE_CONFIG}). */
  readonly baseConfig: Readonly<Record<string, string>>;
  /** The inferred source tables, created before the statements. */
  readonly tables: readonly { readonly name: string; readonly sql: string }[];
  /** The statements in deployment order. */
  readonly statements: readonly LocalStatement[];
}

/** Name of the runner's table connector (an in-JVM topic). */
export const LOCAL_CONNECTOR = 'adstream-topic';

/**
 * Flink options set for every statement: Confluent rejects non-deterministic updates
 * (TRY_RESOLVE makes Flink fail the same statements), statements run at parallelism 1 with a
 * watermark emitted after every record (deterministic scenarios), and the session time zone is
 * Confluent's default, UTC.
 */
export const LOCAL_BASE_CONFIG: Readonly<Record<string, string>> = {
  'table.optimizer.non-deterministic-update.strategy': 'TRY_RESOLVE',
  'pipeline.auto-watermark-interval': '0 ms',
  'parallelism.default': '1',
  'table.local-time-zone': 'UTC',
};

/** Statement properties and the Flink option each maps to; catalog and database select the catalog. */
export const PROPERTY_MAPPING: Readonly<Record<string, string>> = {
  'sql.state-ttl': 'table.exec.state.ttl',
  'sql.local-time-zone': 'table.local-time-zone',
  'sql.tables.scan.idle-timeout': 'table.exec.source.idle-timeout',
};

/** Confluent CREATE TABLE options the local topic connector accepts, with the values it understands. */
export const LOCAL_TABLE_OPTIONS: Readonly<Record<string, readonly string[] | 'any'>> = {
  'changelog.mode': ['append', 'upsert', 'retract'],
  'key.format': ['json-registry', 'avro-registry', 'proto-registry', 'raw'],
  'value.format': ['json-registry', 'avro-registry', 'proto-registry'],
  'value.fields-include': ['all'],
  'kafka.cleanup-policy': ['delete', 'compact', 'delete,compact', 'compact,delete'],
  'kafka.retention.time': 'any',
  'kafka.retention.size': 'any',
  'kafka.max-message-size': 'any',
};

/** ALTER TABLE … SET options the translation passes to Flink. */
const ALTER_SET_OPTIONS = ['changelog.mode'];

function quote(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The CREATE TABLE that stands for Confluent's inferred table of a foundation topic. */
export function inferredTableDdl(table: InferredSourceTable): string {
  const upsert = table.changelogMode === 'upsert';
  const lines = [
    `${quote(table.keyColumn.name)} ${table.keyColumn.type}${upsert ? ' NOT NULL' : ''}`,
    ...table.columns.map((c) => `${quote(c.name)} ${c.type}${c.nullable ? '' : ' NOT NULL'}`),
    `${quote(ROWTIME_COLUMN)} TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL`,
    ...(upsert ? [`PRIMARY KEY (${table.primaryKey.map(quote).join(', ')}) NOT ENFORCED`] : []),
    `WATERMARK FOR ${quote(ROWTIME_COLUMN)} AS ${quote(ROWTIME_COLUMN)}`,
  ];
  const options = {
    connector: LOCAL_CONNECTOR,
    topic: table.name,
    'key.column': table.keyColumn.name,
    'changelog.mode': table.changelogMode,
  };
  return `CREATE TABLE ${quote(table.name)} (\n  ${lines.join(',\n  ')}\n) WITH (\n  ${Object.entries(options)
    .map(([k, v]) => `${literal(k)} = ${literal(v)}`)
    .join(',\n  ')}\n)`;
}

/** The inferred tables of every foundation topic under the environment's cleanup policies. */
export function inferredTables(cleanupPolicies: Readonly<Record<string, TopicCleanupPolicy>>): InferredSourceTable[] {
  return EVENT_CONTRACTS.map((contract) => {
    const policy = cleanupPolicies[contract.topic];
    if (!policy) throw new FlinkTranslationError(`topic ${contract.topic}`, 'the environment config sets no cleanup policy for this foundation topic.');
    return inferredSourceTable(contract, policy);
  });
}

function translateCreateTable(statement: SynthesizedStatement): string {
  const sql = statement.sql;
  const create = parseCreateTable(sql);
  if (!create) throw new FlinkTranslationError(statement.name, 'not a CREATE TABLE statement.');
  if (create.asSelect) throw new FlinkTranslationError(statement.name, 'CREATE TABLE … AS SELECT is not translated for the local engine.');
  for (const [key, value] of Object.entries(create.options)) {
    const allowed = LOCAL_TABLE_OPTIONS[key];
    if (!allowed)
      throw new FlinkTranslationError(
        statement.name,
        `CREATE TABLE \`${create.table}\` option '${key}' has no local equivalent (known: ${Object.keys(LOCAL_TABLE_OPTIONS).join(', ')}).`,
      );
    if (allowed !== 'any' && !allowed.includes(value)) {
      throw new FlinkTranslationError(
        statement.name,
        `CREATE TABLE \`${create.table}\` option '${key}' = '${value}' is not understood locally (understood: ${allowed.join(', ')}).`,
      );
    }
  }
  const tokens = tokenize(sql);
  const open = tokens.findIndex((t) => isSymbol(t, '(') && t.depth === 0);
  if (open < 0) throw new FlinkTranslationError(statement.name, `CREATE TABLE \`${create.table}\` declares no columns.`);
  const close = matchingParen(tokens, open);
  const withAt = tokens.findIndex((t, i) => i > close && isWord(t, 'WITH') && t.depth === 0 && isSymbol(tokens[i + 1], '('));
  // Confluent adds the $rowtime system column (record timestamp) and its system watermark to every table.
  const systemColumns = `,\n  ${quote(ROWTIME_COLUMN)} TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,\n  WATERMARK FOR ${quote(ROWTIME_COLUMN)} AS ${quote(ROWTIME_COLUMN)}\n`;
  const connector = `'connector' = '${LOCAL_CONNECTOR}',\n  'topic' = ${literal(create.table)}`;
  const columnsEnd = tokens[close].offset;
  let out = sql.slice(0, columnsEnd).replace(/\s*$/, '') + systemColumns + sql.slice(columnsEnd);
  const shift = out.length - sql.length;
  if (withAt < 0) {
    out = `${out}\nWITH (\n  ${connector}\n)`;
  } else {
    const withOpen = withAt + 1;
    const withClose = matchingParen(tokens, withOpen);
    const at = tokens[withOpen].offset + 1 + shift;
    const empty = withClose === withOpen + 1;
    out = `${out.slice(0, at)}\n  ${connector}${empty ? '' : ','}${out.slice(at)}`;
  }
  return out;
}

function translateAlterTable(statement: SynthesizedStatement): string {
  const tokens = tokenize(statement.sql);
  // ALTER TABLE t MODIFY WATERMARK FOR c AS e: Apache Flink applies it to the catalog table as Confluent does.
  const modify = tokens.findIndex((t) => isWord(t, 'MODIFY') && t.depth === 0);
  if (modify > 0 && isWord(tokens[modify + 1], 'WATERMARK')) return statement.sql;
  const set = tokens.findIndex((t) => isWord(t, 'SET') && t.depth === 0);
  if (set > 0 && isSymbol(tokens[set + 1], '(')) {
    const close = matchingParen(tokens, set + 1);
    for (let k = set + 2; k < close; k += 1) {
      const t = tokens[k];
      if (t.kind === 'string' && isSymbol(tokens[k + 1], '=') && !ALTER_SET_OPTIONS.includes(t.text)) {
        throw new FlinkTranslationError(
          statement.name,
          `ALTER TABLE … SET option '${t.text}' has no local equivalent (known: ${ALTER_SET_OPTIONS.join(', ')}).`,
        );
      }
    }
    return statement.sql;
  }
  throw new FlinkTranslationError(statement.name, "only ALTER TABLE … MODIFY WATERMARK and ALTER TABLE … SET ('changelog.mode' = …) are translated.");
}

/** Translates one synthesized statement; `catalog` receives its catalog and database. */
export function translateStatement(statement: SynthesizedStatement): LocalStatement & { catalog: string; database: string } {
  const config: Record<string, string> = {};
  let catalog = '';
  let database = '';
  for (const [key, value] of Object.entries(statement.properties)) {
    if (key === 'sql.current-catalog') catalog = value;
    else if (key === 'sql.current-database') database = value;
    else if (PROPERTY_MAPPING[key]) config[PROPERTY_MAPPING[key]] = value;
    else
      throw new FlinkTranslationError(
        statement.name,
        `statement property '${key}' has no local equivalent (known: sql.current-catalog, sql.current-database, ${Object.keys(PROPERTY_MAPPING).join(', ')}).`,
      );
  }
  if (!catalog || !database) throw new FlinkTranslationError(statement.name, 'sql.current-catalog and sql.current-database are required.');
  const first = tokenize(statement.sql)[0];
  let sql: string;
  if (isWord(first, 'CREATE')) sql = translateCreateTable(statement);
  else if (isWord(first, 'ALTER')) sql = translateAlterTable(statement);
  else if (isWord(first, 'INSERT')) sql = statement.sql;
  else throw new FlinkTranslationError(statement.name, `statement kind "${first?.text ?? ''}" is not translated (CREATE TABLE, ALTER TABLE, INSERT INTO are).`);
  if (statement.kind === 'ddl' && Object.keys(config).length > 0) {
    throw new FlinkTranslationError(statement.name, `DDL carries properties ${Object.keys(statement.properties).join(', ')} that only a DML statement uses.`);
  }
  return { name: statement.name, source: statement.source, kind: statement.kind, sql, config, catalog, database };
}

/** The local job for a list of statements (deployment order) and the environment's topics. */
export function localJob(statements: readonly SynthesizedStatement[], cleanupPolicies: Readonly<Record<string, TopicCleanupPolicy>>): LocalJob {
  const translated = statements.map(translateStatement);
  if (translated.length === 0) throw new FlinkTranslationError('(job)', 'no statements.');
  const { catalog, database } = translated[0];
  for (const t of translated) {
    if (t.catalog !== catalog || t.database !== database) {
      throw new FlinkTranslationError(t.name, `runs in ${t.catalog}.${t.database}, the others in ${catalog}.${database}; one job has one catalog.`);
    }
  }
  return {
    catalog,
    database,
    baseConfig: LOCAL_BASE_CONFIG,
    tables: inferredTables(cleanupPolicies).map((table) => ({ name: `inferred table ${table.name}`, sql: inferredTableDdl(table) })),
    statements: translated.map(({ catalog: _c, database: _d, ...rest }) => rest),
  };
}
