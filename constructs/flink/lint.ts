import { EVENT_CONTRACTS } from '../../contracts';
import {
  ChangelogMode,
  CreateTableInfo,
  FlinkTableSchema,
  parseAlterTableSet,
  parseAlterWatermark,
  parseCreateTable,
  readNameList,
  ROWTIME_COLUMN,
  tableOfCreate,
} from './catalog';
import { identifierName, isIdentifierToken, isSymbol, isWord, matchingParen, splitStatements, SqlToken, tokenize } from './sql-text';

/**
 * The Confluent Cloud dialect lint: the mistakes that make Confluent reject a statement, or
 * accept it and get the money wrong, caught at synth and in the tests. Token-based, not a full
 * parser: each rule is a shape check that is exact for the statements in `flink-sql/` and
 * conservative elsewhere (a finding names the rule and says how to fix it).
 */

/** Ids of the lint rules; a finding carries one. */
export type FlinkLintRuleId =
  | 'single-statement'
  | 'with-options'
  | 'statement-properties'
  | 'window-bounds'
  | 'upsert-primary-key'
  | 'nondeterministic-update'
  | 'source-columns'
  | 'sink-columns'
  | 'unknown-table'
  | 'create-existing-topic'
  | 'aggregate-order-by'
  | 'collect-multiset'
  | 'row-number-partition'
  | 'or-join';

/** One lint finding. */
export interface FlinkLintFinding {
  /** The rule that fired. */
  readonly rule: FlinkLintRuleId;
  /** What is wrong and how to fix it. */
  readonly message: string;
}

/** What the lint is given. */
export interface FlinkLintInput {
  /** The SQL text as it will be deployed (templates already rendered). */
  readonly sql: string;
  /** Statement properties the resource will carry. */
  readonly properties?: Readonly<Record<string, string>>;
  /** Tables that exist before this statement runs: the contract topics plus earlier DDL. */
  readonly tables: ReadonlyMap<string, FlinkTableSchema>;
}

/** Statement properties Confluent Cloud accepts (the `sql.*` SET options). */
export const ALLOWED_STATEMENT_PROPERTIES: readonly string[] = [
  'sql.current-catalog',
  'sql.current-database',
  'sql.dry-run',
  'sql.inline-result',
  'sql.local-time-zone',
  'sql.state-ttl',
  'sql.tables.initial-offset-from',
  'sql.tables.scan.bounded.mode',
  'sql.tables.scan.bounded.timestamp-millis',
  'sql.tables.scan.idle-timeout',
  'sql.tables.scan.source-operator-parallelism',
  'sql.tables.scan.startup.mode',
  'sql.tables.scan.startup.specific-offsets',
  'sql.tables.scan.startup.timestamp-millis',
  'sql.tables.scan.watermark-alignment.max-allowed-drift',
];

/** Whether `key` is a statement property Confluent Cloud accepts. */
export function isAllowedStatementProperty(key: string): boolean {
  return ALLOWED_STATEMENT_PROPERTIES.includes(key);
}

/** Open-source connector options that Confluent rejects (its tables are the topics). */
const FORBIDDEN_WITH_OPTIONS = ['connector', 'topic', 'format'];
const FORBIDDEN_WITH_PREFIXES = ['properties.'];
/** Confluent CREATE TABLE options (exact keys, then prefixes). */
const KNOWN_WITH_OPTIONS = [
  'changelog.mode',
  'kafka.cleanup-policy',
  'kafka.retention.time',
  'kafka.retention.size',
  'kafka.max-message-size',
  'kafka.consumer.isolation-level',
  'kafka.producer.compression.type',
  'value.format',
  'key.format',
  'value.fields-include',
  'key.fields-prefix',
  'scan.startup.mode',
  'scan.startup.timestamp-millis',
  'scan.startup.specific-offsets',
  'scan.bounded.mode',
  'scan.bounded.timestamp-millis',
  'scan.bounded.specific-offsets',
  'error-handling.mode',
  'error-handling.log.target',
];
const KNOWN_WITH_PREFIXES = [
  'value.avro-registry.',
  'value.json-registry.',
  'value.proto-registry.',
  'key.avro-registry.',
  'key.json-registry.',
  'key.proto-registry.',
];

const NONDETERMINISTIC = [
  'CURRENT_TIMESTAMP',
  'NOW',
  'RAND',
  'RAND_INTEGER',
  'UUID',
  'CURRENT_DATE',
  'CURRENT_TIME',
  'LOCALTIMESTAMP',
  'LOCALTIME',
  'CURRENT_ROW_TIMESTAMP',
  'PROCTIME',
];
const WINDOW_TVFS = ['TUMBLE', 'HOP', 'CUMULATE', 'SESSION'];
const WINDOW_COLUMNS = ['window_start', 'window_end', 'window_time'];
const RANKING_FUNCTIONS = ['ROW_NUMBER', 'RANK', 'DENSE_RANK'];
const ORDERED_AGGREGATES = ['COLLECT', 'ARRAY_AGG', 'LISTAGG', 'JSON_ARRAYAGG'];

/** Words that are never column references (keywords, types, interval units, literals). */
const KEYWORDS = new Set(
  (
    'SELECT FROM WHERE GROUP BY HAVING ORDER ASC DESC LIMIT OFFSET FETCH FIRST NEXT ONLY AS ON AND OR NOT NULL IS IN ' +
    'CASE WHEN THEN ELSE END JOIN LEFT RIGHT FULL INNER OUTER CROSS UNION INTERSECT EXCEPT MINUS ALL DISTINCT ' +
    'INSERT INTO OVERWRITE VALUES TABLE CREATE TEMPORARY ALTER DROP MODIFY WATERMARK FOR INTERVAL PRIMARY KEY ENFORCED ' +
    'WITH DISTRIBUTED HASH BUCKETS PARTITION PARTITIONED OVER ROWS RANGE BETWEEN PRECEDING FOLLOWING CURRENT ROW ' +
    'UNBOUNDED TRUE FALSE UNKNOWN CAST TRY_CAST DESCRIPTOR LATERAL EXISTS LIKE SIMILAR ESCAPE EXECUTE STATEMENT SET ' +
    'BEGIN IF COMMENT CONSTRAINT METADATA VIRTUAL WINDOW SYSTEM_TIME OF UNNEST ORDINALITY RESPECT IGNORE NULLS ' +
    'FILTER WITHIN LIKE ESCAPE USING NATURAL TO SECOND SECONDS MINUTE MINUTES HOUR HOURS DAY DAYS MONTH MONTHS ' +
    'YEAR YEARS WEEK QUARTER MILLISECOND MICROSECOND NANOSECOND EPOCH DOW DOY ' +
    'STRING VARCHAR CHAR BOOLEAN BOOL TINYINT SMALLINT INT INTEGER BIGINT FLOAT DOUBLE PRECISION REAL DECIMAL DEC ' +
    'NUMERIC DATE TIME TIMESTAMP TIMESTAMP_LTZ ZONE LOCAL ARRAY MAP MULTISET BYTES BINARY VARBINARY RAW ' +
    'CURRENT_TIMESTAMP CURRENT_DATE CURRENT_TIME LOCALTIMESTAMP LOCALTIME ENFORCED EXPLAIN PLAN ADD RESET'
  ).split(/\s+/),
);

/** Lints one SQL file (which should hold one statement) against the tables known before it. */
export function lintFlinkSql(input: FlinkLintInput): FlinkLintFinding[] {
  const findings: FlinkLintFinding[] = [];
  for (const key of Object.keys(input.properties ?? {})) {
    if (!isAllowedStatementProperty(key)) {
      findings.push({
        rule: 'statement-properties',
        message: `Statement property "${key}" is not accepted by Confluent Cloud (checkpointing, parallelism and table.exec.* are managed by the service). Allowed: ${ALLOWED_STATEMENT_PROPERTIES.join(', ')}; per-operator TTL goes in a /*+ STATE_TTL(...) */ hint.`,
      });
    }
  }
  const statements = splitStatements(input.sql);
  if (statements.length !== 1) {
    findings.push({
      rule: 'single-statement',
      message: `Found ${statements.length} statements; one confluent_flink_statement runs exactly one statement (SET prefixes do not work either: use the resource's properties). Put each statement in its own numbered file.`,
    });
  }
  // Later statements in the same file see the tables the earlier ones create, as the seed intended.
  const tables = new Map(input.tables);
  for (const statement of statements) {
    findings.push(...lintOneStatement(statement, tables));
    const created = parseCreateTable(statement);
    if (created) tables.set(created.table, tableOfCreate(created));
  }
  return findings;
}

function lintOneStatement(sql: string, tables: ReadonlyMap<string, FlinkTableSchema>): FlinkLintFinding[] {
  const tokens = tokenize(sql);
  if (tokens.length === 0) return [];
  const create = parseCreateTable(sql);
  if (create) {
    const findings = lintCreateTable(create, tables);
    if (create.asSelect) findings.push(...lintQuery(tokens, tables));
    return findings;
  }
  const alterSet = parseAlterTableSet(sql);
  if (alterSet) {
    if (!tables.has(alterSet.table)) {
      return [{ rule: 'unknown-table', message: `ALTER TABLE \`${alterSet.table}\`: no contract topic or earlier CREATE TABLE defines this table.` }];
    }
    const findings: FlinkLintFinding[] = [];
    for (const [key, value] of Object.entries(alterSet.options)) {
      if (key !== 'changelog.mode' || !['append', 'upsert', 'retract'].includes(value)) {
        findings.push({
          rule: 'with-options',
          message: `ALTER TABLE \`${alterSet.table}\` SET '${key}' = '${value}': only 'changelog.mode' = 'append' | 'upsert' | 'retract' is deployed from flink-sql/.`,
        });
      }
    }
    return findings;
  }
  const watermark = parseAlterWatermark(sql);
  if (watermark) {
    const table = tables.get(watermark.table);
    if (!table) {
      return [{ rule: 'unknown-table', message: `ALTER TABLE \`${watermark.table}\`: no contract topic or earlier CREATE TABLE defines this table.` }];
    }
    if (!table.columns.some((c) => c.name === watermark.column) && watermark.column !== ROWTIME_COLUMN) {
      return [
        {
          rule: 'source-columns',
          message: `Watermark column \`${watermark.column}\` is not a column of \`${watermark.table}\` (columns: ${table.columns.map((c) => c.name).join(', ')}).`,
        },
      ];
    }
    return [];
  }
  return lintQuery(tokens, tables);
}

function contractTopics(): string[] {
  return EVENT_CONTRACTS.map((c) => c.topic);
}

function lintCreateTable(create: CreateTableInfo, tables: ReadonlyMap<string, FlinkTableSchema>): FlinkLintFinding[] {
  const findings: FlinkLintFinding[] = [];
  for (const key of Object.keys(create.options)) {
    if (FORBIDDEN_WITH_OPTIONS.includes(key) || FORBIDDEN_WITH_PREFIXES.some((prefix) => key.startsWith(prefix))) {
      findings.push({
        rule: 'with-options',
        message: `CREATE TABLE \`${create.table}\`: WITH option '${key}' is an open-source connector option that Confluent Cloud rejects; the table is the topic of the same name. Use only changelog.mode, key/value.format (avro|json|proto-registry), kafka.*, scan.*, value.fields-include, error-handling.*.`,
      });
    } else if (!KNOWN_WITH_OPTIONS.includes(key) && !KNOWN_WITH_PREFIXES.some((prefix) => key.startsWith(prefix))) {
      findings.push({ rule: 'with-options', message: `CREATE TABLE \`${create.table}\`: WITH option '${key}' is not a Confluent Cloud table option.` });
    }
  }
  const targetTopic = create.options.topic ?? create.table;
  if (contractTopics().includes(targetTopic) || contractTopics().includes(create.table)) {
    findings.push({
      rule: 'create-existing-topic',
      message: `CREATE TABLE \`${create.table}\` would create topic "${targetTopic}", which the foundation stack already creates with a registered schema (CREATE TABLE never attaches to an existing topic; it fails). Read the inferred table \`${targetTopic}\` directly; add event time with ALTER TABLE … MODIFY WATERMARK.`,
    });
    const contract = EVENT_CONTRACTS.find((c) => c.topic === targetTopic);
    if (contract) {
      const declared = create.columns.map((c) => c.name);
      const expected = Object.keys(contract.fields);
      const missing = expected.filter((c) => !declared.includes(c));
      const extra = declared.filter((c) => !expected.includes(c));
      if (missing.length > 0 || extra.length > 0) {
        findings.push({
          rule: 'sink-columns',
          message: `\`${create.table}\` declares topic "${targetTopic}" with columns that differ from the ${contract.name} contract its consumers decode: missing ${missing.join(', ') || 'none'}; unknown ${extra.join(', ') || 'none'}.`,
        });
      }
    }
  } else if (tables.has(create.table)) {
    findings.push({
      rule: 'create-existing-topic',
      message: `CREATE TABLE \`${create.table}\`: an earlier statement already creates this table; CREATE TABLE fails when the topic exists. Write a new table name for a new version.`,
    });
  }
  const upsert = create.options['changelog.mode'] === 'upsert';
  if (upsert && create.primaryKey.length === 0) {
    findings.push({
      rule: 'upsert-primary-key',
      message: `CREATE TABLE \`${create.table}\`: 'changelog.mode' = 'upsert' needs PRIMARY KEY (…) NOT ENFORCED naming the upsert key.`,
    });
  }
  if (create.primaryKey.length > 0 && !create.primaryKeyNotEnforced) {
    findings.push({ rule: 'upsert-primary-key', message: `CREATE TABLE \`${create.table}\`: Flink only supports PRIMARY KEY (…) NOT ENFORCED.` });
  }
  if (create.primaryKey.length > 0 && create.distributedBy.length > 0) {
    const same = create.primaryKey.length === create.distributedBy.length && create.primaryKey.every((c) => create.distributedBy.includes(c));
    if (!same) {
      findings.push({
        rule: 'upsert-primary-key',
        message: `CREATE TABLE \`${create.table}\`: DISTRIBUTED BY (${create.distributedBy.join(', ')}) must equal the primary key (${create.primaryKey.join(', ')}) so every update of a key lands in the same partition.`,
      });
    }
  }
  for (const key of create.primaryKey) {
    if (!create.columns.some((c) => c.name === key)) {
      findings.push({ rule: 'upsert-primary-key', message: `CREATE TABLE \`${create.table}\`: primary key column \`${key}\` is not declared.` });
    }
  }
  return findings;
}

/** A table reference in a query: its name, alias, and where the name sits. */
interface TableReference {
  readonly table: string;
  readonly alias?: string;
  readonly viaWindowTvf: boolean;
  /** Offset of the subquery the FROM belongs to (-1: the outermost query). */
  readonly scope: number;
}

interface QueryShape {
  readonly references: TableReference[];
  /** Scope (subquery offset) of every token. */
  readonly scopes: number[];
  /** Scopes that read a subquery or a CTE, whose columns the lint does not derive. */
  readonly openScopes: Set<number>;
  readonly cteNames: Set<string>;
  /** Token indexes that define names (aliases, CTE names, ROW<…> fields) or name tables. */
  readonly nonColumnPositions: Set<number>;
  readonly definedNames: Set<string>;
}

function readTableName(tokens: readonly SqlToken[], k: number): { table: string; next: number } | undefined {
  if (!isIdentifierToken(tokens[k])) return undefined;
  if (tokens[k].kind === 'word' && KEYWORDS.has(tokens[k].upper)) return undefined;
  let table = identifierName(tokens[k]);
  let next = k + 1;
  while (isSymbol(tokens[next], '.') && isIdentifierToken(tokens[next + 1])) {
    table = identifierName(tokens[next + 1]);
    next += 2;
  }
  return { table, next };
}

const ALIAS_STOP = new Set([
  'WHERE',
  'JOIN',
  'LEFT',
  'RIGHT',
  'FULL',
  'INNER',
  'CROSS',
  'ON',
  'GROUP',
  'ORDER',
  'HAVING',
  'UNION',
  'WINDOW',
  'LIMIT',
  'FOR',
  'NATURAL',
  'USING',
  'EXCEPT',
  'INTERSECT',
  'SELECT',
]);

function analyseShape(tokens: readonly SqlToken[]): QueryShape {
  const references: TableReference[] = [];
  const cteNames = new Set<string>();
  const nonColumn = new Set<number>();
  const defined = new Set<string>();
  const scopes = subqueryScopes(tokens);
  const openScopes = new Set<number>();
  const define = (k: number): void => {
    nonColumn.add(k);
    defined.add(identifierName(tokens[k]));
  };
  for (let k = 0; k < tokens.length; k += 1) {
    const t = tokens[k];
    // WITH name AS ( … ) — common table expressions
    if ((isWord(t, 'WITH') || (isSymbol(t, ',') && cteNames.size > 0 && t.depth === 0)) && isIdentifierToken(tokens[k + 1])) {
      const nameIndex = k + 1;
      let after = k + 2;
      if (isSymbol(tokens[after], '(')) after = matchingParen(tokens, after) + 1;
      if (isWord(tokens[after], 'AS') && isSymbol(tokens[after + 1], '(')) {
        cteNames.add(identifierName(tokens[nameIndex]));
        define(nameIndex);
      }
    }
    if (isWord(t, 'AS') && isIdentifierToken(tokens[k + 1]) && !(tokens[k + 1].kind === 'word' && KEYWORDS.has(tokens[k + 1].upper))) {
      define(k + 1);
      // `AS alias (column, …)`: the column list of a derived table or UNNEST names its columns
      if (isSymbol(tokens[k + 2], '(')) {
        const close = matchingParen(tokens, k + 2);
        const list = tokens.slice(k + 3, close);
        if (list.length > 0 && list.every((x, i) => (i % 2 === 0 ? isIdentifierToken(x) : isSymbol(x, ',')))) {
          for (let j = k + 3; j < close; j += 2) define(j);
        }
      }
    }
    // ROW<name TYPE, …> / ARRAY<ROW<…>>: field names are definitions, not columns
    if (isSymbol(t, '<') && isWord(tokens[k - 1], 'ROW', 'ARRAY', 'MAP', 'MULTISET')) {
      let angle = 1;
      let j = k + 1;
      for (; j < tokens.length && angle > 0; j += 1) {
        if (isSymbol(tokens[j], '<')) angle += 1;
        if (isSymbol(tokens[j], '>')) angle -= 1;
        if (isIdentifierToken(tokens[j])) define(j);
      }
      k = j - 1;
      continue;
    }
    if (isWord(t, 'FROM', 'JOIN') || (isWord(t, 'TABLE') && isSymbol(tokens[k - 1], '(')) || (isWord(t, 'TABLE') && isSymbol(tokens[k - 1], ','))) {
      if (isSymbol(tokens[k + 1], '(') || isWord(tokens[k + 1], 'LATERAL', 'UNNEST')) openScopes.add(scopes[k]);
      if (isWord(tokens[k + 1], 'TABLE') || isWord(tokens[k + 1], 'LATERAL', 'UNNEST') || isSymbol(tokens[k + 1], '(')) {
        // FROM TABLE(TUMBLE(TABLE x …)) AS w — the inner TABLE x is the reference; alias the TVF
        if (isWord(tokens[k + 1], 'TABLE') && isSymbol(tokens[k + 2], '(')) {
          const close = matchingParen(tokens, k + 2);
          const inner = tokens.slice(k + 3, close).findIndex((x, i, arr) => isWord(x, 'TABLE') && isIdentifierToken(arr[i + 1]));
          const aliasAt = isWord(tokens[close + 1], 'AS') ? close + 2 : close + 1;
          if (
            inner >= 0 &&
            isIdentifierToken(tokens[aliasAt]) &&
            !(tokens[aliasAt].kind === 'word' && (KEYWORDS.has(tokens[aliasAt].upper) || ALIAS_STOP.has(tokens[aliasAt].upper)))
          ) {
            const innerName = readTableName(tokens, k + 3 + inner + 1);
            if (innerName) references.push({ table: innerName.table, alias: identifierName(tokens[aliasAt]), viaWindowTvf: true, scope: scopes[k] });
            define(aliasAt);
          }
        }
        continue;
      }
      const read = readTableName(tokens, k + 1);
      if (!read) continue;
      for (let j = k + 1; j < read.next; j += 1) nonColumn.add(j);
      let aliasAt = read.next;
      if (isWord(tokens[aliasAt], 'AS')) aliasAt += 1;
      let alias: string | undefined;
      if (
        isIdentifierToken(tokens[aliasAt]) &&
        !(tokens[aliasAt].kind === 'word' && (KEYWORDS.has(tokens[aliasAt].upper) || ALIAS_STOP.has(tokens[aliasAt].upper)))
      ) {
        alias = identifierName(tokens[aliasAt]);
        define(aliasAt);
      }
      const tvf = isWord(t, 'TABLE');
      references.push({ table: read.table, alias, viaWindowTvf: tvf, scope: scopes[k] });
    }
    // ") alias" after a subquery
    if (isSymbol(t, ')') && isIdentifierToken(tokens[k + 1]) && tokens[k + 1].kind === 'quoted') define(k + 1);
    if (
      isSymbol(t, ')') &&
      tokens[k + 1]?.kind === 'word' &&
      !KEYWORDS.has(tokens[k + 1].upper) &&
      !ALIAS_STOP.has(tokens[k + 1].upper) &&
      !isSymbol(tokens[k + 2], '(')
    ) {
      define(k + 1);
    }
    // WINDOW w AS (…)
    if (isWord(t, 'WINDOW') && isIdentifierToken(tokens[k + 1])) define(k + 1);
    if (isWord(t, 'OVER') && isIdentifierToken(tokens[k + 1])) nonColumn.add(k + 1);
  }
  for (const reference of references) {
    if (cteNames.has(reference.table)) openScopes.add(reference.scope);
  }
  return { references, scopes, openScopes, cteNames, nonColumnPositions: nonColumn, definedNames: defined };
}

/** For each token, the offset of the innermost `(` that opens a subquery (-1 at top level). */
function subqueryScopes(tokens: readonly SqlToken[]): number[] {
  const stack: number[] = [];
  const scopes: number[] = [];
  for (let k = 0; k < tokens.length; k += 1) {
    const t = tokens[k];
    if (isSymbol(t, ')')) stack.pop();
    const open = [...stack].reverse().find((index) => index >= 0);
    scopes.push(open ?? -1);
    if (isSymbol(t, '(')) stack.push(isWord(tokens[k + 1], 'SELECT', 'WITH') ? tokens[k].offset : -1);
  }
  return scopes;
}

/** The token ranges of each `GROUP BY` clause. */
function groupByClauses(tokens: readonly SqlToken[]): SqlToken[][] {
  const clauses: SqlToken[][] = [];
  for (let k = 0; k < tokens.length; k += 1) {
    if (!isWord(tokens[k], 'GROUP') || !isWord(tokens[k + 1], 'BY')) continue;
    const depth = tokens[k].depth;
    const clause: SqlToken[] = [];
    for (let j = k + 2; j < tokens.length; j += 1) {
      const t = tokens[j];
      if (t.depth < depth || (t.depth === depth && (isSymbol(t, ')') || isWord(t, 'HAVING', 'ORDER', 'LIMIT', 'UNION', 'WINDOW', 'EXCEPT', 'INTERSECT'))))
        break;
      clause.push(t);
    }
    clauses.push(clause);
  }
  return clauses;
}

function mentions(clause: readonly SqlToken[], column: string): boolean {
  return clause.some((t) => isIdentifierToken(t) && t.text.toLowerCase() === column);
}

/** `PARTITION BY … ORDER BY …` of each `RANK-like() OVER (…)`. */
function rankingWindows(tokens: readonly SqlToken[]): { fn: string; spec: SqlToken[] }[] {
  const out: { fn: string; spec: SqlToken[] }[] = [];
  for (let k = 0; k < tokens.length; k += 1) {
    if (!isWord(tokens[k], ...RANKING_FUNCTIONS) || !isSymbol(tokens[k + 1], '(')) continue;
    const close = matchingParen(tokens, k + 1);
    if (!isWord(tokens[close + 1], 'OVER') || !isSymbol(tokens[close + 2], '(')) continue;
    const end = matchingParen(tokens, close + 2);
    out.push({ fn: tokens[k].upper, spec: tokens.slice(close + 3, end) });
  }
  return out;
}

/** The ON condition tokens of each JOIN. */
function joinConditions(tokens: readonly SqlToken[]): { condition: SqlToken[]; temporal: boolean }[] {
  const out: { condition: SqlToken[]; temporal: boolean }[] = [];
  for (let k = 0; k < tokens.length; k += 1) {
    if (!isWord(tokens[k], 'JOIN')) continue;
    const depth = tokens[k].depth;
    let j = k + 1;
    let temporal = false;
    while (j < tokens.length && !(isWord(tokens[j], 'ON') && tokens[j].depth === depth)) {
      if (isWord(tokens[j], 'SYSTEM_TIME')) temporal = true;
      if (tokens[j].depth === depth && isWord(tokens[j], 'JOIN', 'WHERE', 'GROUP')) break;
      j += 1;
    }
    if (!isWord(tokens[j], 'ON')) continue;
    const condition: SqlToken[] = [];
    for (let m = j + 1; m < tokens.length; m += 1) {
      const t = tokens[m];
      if (
        t.depth < depth ||
        (t.depth === depth &&
          (isSymbol(t, ')') || isWord(t, 'JOIN', 'LEFT', 'RIGHT', 'FULL', 'INNER', 'CROSS', 'WHERE', 'GROUP', 'ORDER', 'HAVING', 'UNION', 'WINDOW')))
      )
        break;
      condition.push(t);
    }
    out.push({ condition, temporal });
  }
  return out;
}

interface Updating {
  readonly updating: boolean;
  readonly why: string[];
}

function updatingShape(tokens: readonly SqlToken[], references: readonly TableReference[], tables: ReadonlyMap<string, FlinkTableSchema>): Updating {
  const why: string[] = [];
  for (const clause of groupByClauses(tokens)) {
    if (!(mentions(clause, 'window_start') && mentions(clause, 'window_end')))
      why.push('a GROUP BY without window_start and window_end (a regular, updating aggregation)');
  }
  for (const window of rankingWindows(tokens)) {
    const partitionIndex = window.spec.findIndex((t, i) => isWord(t, 'PARTITION') && isWord(window.spec[i + 1], 'BY'));
    const partition = partitionIndex >= 0 ? window.spec.slice(partitionIndex) : [];
    if (!(mentions(partition, 'window_start') && mentions(partition, 'window_end')))
      why.push(`${window.fn}() OVER (…) top-N / deduplication (updates earlier results)`);
  }
  for (const join of joinConditions(tokens)) {
    if (!join.temporal && !join.condition.some((t) => isWord(t, 'INTERVAL'))) why.push('a regular JOIN without time bounds (updates as either side changes)');
  }
  for (const reference of references) {
    const mode: ChangelogMode | undefined = tables.get(reference.table)?.changelogMode;
    if (mode && mode !== 'append') why.push(`reading \`${reference.table}\`, a ${mode} table`);
  }
  return { updating: why.length > 0, why };
}

/** The output names of the top-level SELECT list of an INSERT (undefined for `SELECT *`). */
function topLevelOutputNames(tokens: readonly SqlToken[], selectIndex: number): string[] | undefined {
  const depth = tokens[selectIndex].depth;
  const items: SqlToken[][] = [];
  let current: SqlToken[] = [];
  let k = selectIndex + 1;
  if (isWord(tokens[k], 'DISTINCT', 'ALL')) k += 1;
  for (; k < tokens.length; k += 1) {
    const t = tokens[k];
    if (t.depth === depth && isWord(t, 'FROM')) break;
    if (t.depth === depth && isSymbol(t, ',')) {
      items.push(current);
      current = [];
    } else {
      current.push(t);
    }
  }
  items.push(current);
  const names: string[] = [];
  for (const item of items) {
    if (item.length === 1 && isSymbol(item[0], '*')) return undefined;
    const last = item[item.length - 1];
    if (!last || !isIdentifierToken(last)) return undefined;
    names.push(identifierName(last));
  }
  return names;
}

function lintQuery(tokens: readonly SqlToken[], tables: ReadonlyMap<string, FlinkTableSchema>): FlinkLintFinding[] {
  const findings: FlinkLintFinding[] = [];
  const shape = analyseShape(tokens);
  const hasWindowTvf = tokens.some((t, k) => isWord(t, ...WINDOW_TVFS) && isSymbol(tokens[k + 1], '(') && isWord(tokens[k + 2], 'TABLE'));

  // INSERT INTO target [(cols)]
  let sink: { table: string; columns?: string[]; at: number } | undefined;
  if (isWord(tokens[0], 'INSERT') && isWord(tokens[1], 'INTO', 'OVERWRITE')) {
    const read = readTableName(tokens, 2);
    if (read) {
      for (let j = 2; j < read.next; j += 1) shape.nonColumnPositions.add(j);
      let columns: string[] | undefined;
      if (isSymbol(tokens[read.next], '(')) {
        const list = readNameList(tokens, read.next);
        columns = list.names;
        for (let j = read.next; j < list.next; j += 1) shape.nonColumnPositions.add(j);
      }
      sink = { table: read.table, columns, at: 2 };
    }
  }
  const sources = shape.references;

  // unknown tables
  for (const reference of sources) {
    if (shape.cteNames.has(reference.table)) continue;
    if (!tables.has(reference.table)) {
      findings.push({
        rule: 'unknown-table',
        message: `Reads \`${reference.table}\`, which no contract topic and no earlier CREATE TABLE defines. Sources are the inferred tables of the registered topics (${contractTopics().join(', ')}) and the tables our DDL creates.`,
      });
    }
  }
  if (sink && !tables.has(sink.table)) {
    findings.push({
      rule: 'unknown-table',
      message: `INSERT INTO \`${sink.table}\`: no contract topic and no earlier CREATE TABLE defines this sink; create it in a numbered DDL file before the DML.`,
    });
  }

  // window aggregations must group by window_start AND window_end
  if (hasWindowTvf) {
    for (const clause of groupByClauses(tokens)) {
      if (!(mentions(clause, 'window_start') && mentions(clause, 'window_end'))) {
        findings.push({
          rule: 'window-bounds',
          message:
            'A window TVF aggregation must GROUP BY both window_start and window_end; otherwise Confluent plans a regular updating aggregation that never closes the window.',
        });
      }
    }
  }
  for (const clause of groupByClauses(tokens)) {
    if (clause.some((t, i) => isWord(t, ...WINDOW_TVFS) && isSymbol(clause[i + 1], '('))) {
      findings.push({
        rule: 'window-bounds',
        message:
          'GROUP BY TUMBLE(…)/HOP(…) is the legacy group-window syntax; use the window TVF form FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), …)) GROUP BY …, window_start, window_end.',
      });
    }
  }

  // ranking functions need a partition
  for (const window of rankingWindows(tokens)) {
    if (!window.spec.some((t, i) => isWord(t, 'PARTITION') && isWord(window.spec[i + 1], 'BY'))) {
      findings.push({
        rule: 'row-number-partition',
        message: `${window.fn}() OVER (ORDER BY …) without PARTITION BY is rejected in streaming (a global ranking); partition it and filter on the rank (Top-N), or drop it — sinks are keyed by their natural key, not by a row number.`,
      });
    }
  }

  // OR in join conditions
  for (const join of joinConditions(tokens)) {
    if (join.condition.some((t) => isWord(t, 'OR'))) {
      findings.push({
        rule: 'or-join',
        message:
          'A JOIN condition with OR leaves no equality key for the interval join (only the shared columns remain); write one equality join per alternative key and combine them with UNION ALL.',
      });
    }
  }

  // aggregates with ORDER BY, COLLECT
  for (let k = 0; k < tokens.length; k += 1) {
    if (!isWord(tokens[k], ...ORDERED_AGGREGATES) || !isSymbol(tokens[k + 1], '(')) continue;
    const close = matchingParen(tokens, k + 1);
    const inside = tokens.slice(k + 2, close);
    if (inside.some((t, i) => isWord(t, 'ORDER') && isWord(inside[i + 1], 'BY'))) {
      findings.push({
        rule: 'aggregate-order-by',
        message: `${tokens[k].upper}(… ORDER BY …) is not supported; rank with ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) and carry the rank in each element.`,
      });
    }
    if (isWord(tokens[k], 'COLLECT')) {
      findings.push({
        rule: 'collect-multiset',
        message:
          'COLLECT returns an unordered MULTISET, which does not fit an ARRAY column or a JSON array; use ARRAY_AGG (with the rank inside each element).',
      });
    }
  }

  // updating queries: nondeterminism (Confluent rejects it; an updating query into an append-only
  // table is rejected by Apache Flink's planner, which the tests run)
  const updating = updatingShape(tokens, sources, tables);
  if (updating.updating) {
    for (let k = 0; k < tokens.length; k += 1) {
      const t = tokens[k];
      if (!isWord(t, ...NONDETERMINISTIC)) continue;
      const isCall = isSymbol(tokens[k + 1], '(');
      if (['CURRENT_TIMESTAMP', 'CURRENT_DATE', 'CURRENT_TIME', 'LOCALTIMESTAMP', 'LOCALTIME'].includes(t.upper) || isCall) {
        findings.push({
          rule: 'nondeterministic-update',
          message: `${t.text} in an updating query (${updating.why[0]}): Confluent rejects non-deterministic functions where earlier results are retracted, and a replay would differ. Use event time (event_ts, window_end) instead.`,
        });
      }
    }
  }

  // columns must exist in the sources
  const sourceColumns = new Set<string>([ROWTIME_COLUMN]);
  for (const reference of sources) {
    for (const column of tables.get(reference.table)?.columns ?? []) sourceColumns.add(column.name);
  }
  if (hasWindowTvf) WINDOW_COLUMNS.forEach((c) => sourceColumns.add(c));
  const aliasTable = new Map<string, TableReference>();
  for (const reference of sources) {
    aliasTable.set(reference.alias ?? reference.table, reference);
  }
  const reported = new Set<string>();
  for (let k = 0; k < tokens.length; k += 1) {
    const t = tokens[k];
    if (!isIdentifierToken(t) || shape.nonColumnPositions.has(k)) continue;
    if (t.kind === 'word' && KEYWORDS.has(t.upper)) continue;
    if (isSymbol(tokens[k + 1], '(')) continue; // function call
    if (isSymbol(tokens[k - 1], '.')) continue; // member of a qualified name, checked below
    const qualified = isSymbol(tokens[k + 1], '.') && isIdentifierToken(tokens[k + 2]);
    const nameText = identifierName(t);
    if (qualified) {
      const reference = aliasTable.get(nameText);
      const column = identifierName(tokens[k + 2]);
      if (reference && tables.has(reference.table)) {
        const columns = new Set((tables.get(reference.table)?.columns ?? []).map((c) => c.name));
        columns.add(ROWTIME_COLUMN);
        if (reference.viaWindowTvf) WINDOW_COLUMNS.forEach((c) => columns.add(c));
        if (!columns.has(column) && !reported.has(`${nameText}.${column}`)) {
          reported.add(`${nameText}.${column}`);
          findings.push({
            rule: 'source-columns',
            message: `\`${nameText}\`.\`${column}\`: \`${reference.table}\` has no column \`${column}\` (its columns come from the registered schema: ${[...columns].join(', ')}).`,
          });
        }
      } else if (!reference && !shape.definedNames.has(nameText) && !shape.cteNames.has(nameText) && !tables.has(nameText) && !reported.has(nameText)) {
        reported.add(nameText);
        findings.push({ rule: 'source-columns', message: `\`${nameText}\` qualifies a column but names no table, alias or subquery in this statement.` });
      }
      k += 2;
      continue;
    }
    if (shape.definedNames.has(nameText) || shape.cteNames.has(nameText)) continue;
    const scope = shape.scopes[k];
    const inScope = sources.filter((r) => r.scope === scope && tables.has(r.table));
    const scoped = !shape.openScopes.has(scope) && inScope.length > 0;
    const available = scoped ? columnsOf(inScope, tables) : sourceColumns;
    if (available.has(nameText)) continue;
    if (reported.has(nameText)) continue;
    reported.add(nameText);
    const where = (scoped ? inScope : sources).map((r) => r.table);
    findings.push({
      rule: 'source-columns',
      message: `Column \`${nameText}\` is not a column of ${where.join(', ') || 'any source'} and is not defined by an alias; the source columns come from the registered contracts and the DDL.`,
    });
  }

  // sink columns: by position, so names and order must match the sink (or its column list)
  if (sink && tables.has(sink.table)) {
    const table = tables.get(sink.table) as FlinkTableSchema;
    const tableColumns = table.columns.map((c) => c.name);
    const expected = sink.columns ?? tableColumns;
    for (const column of sink.columns ?? []) {
      if (!tableColumns.includes(column)) {
        findings.push({ rule: 'sink-columns', message: `INSERT INTO \`${sink.table}\` (… ${column} …): the sink has no column \`${column}\`.` });
      }
    }
    if (table.origin === 'contract' && sink.columns) {
      const contract = EVENT_CONTRACTS.find((c) => c.topic === sink?.table);
      const required = contract
        ? Object.entries(contract.fields)
            .filter(([, spec]) => spec.required)
            .map(([n]) => n)
        : [];
      const missing = required.filter((c) => !sink?.columns?.includes(c));
      if (missing.length > 0) {
        findings.push({
          rule: 'sink-columns',
          message: `INSERT INTO \`${sink.table}\` leaves required ${contract?.name} fields empty: ${missing.join(', ')}; the consumers reject such records.`,
        });
      }
    }
    const selectIndex = findMainSelect(tokens);
    const names = selectIndex >= 0 ? topLevelOutputNames(tokens, selectIndex) : undefined;
    if (names) {
      const same = names.length === expected.length && names.every((n, i) => n === expected[i]);
      if (!same) {
        findings.push({
          rule: 'sink-columns',
          message: `INSERT INTO \`${sink.table}\` writes by position: the SELECT produces (${names.join(', ')}) but the sink expects (${expected.join(', ')}). Alias every output column with the sink's column name, in order.`,
        });
      }
    }
  }
  return findings;
}

function columnsOf(references: readonly TableReference[], tables: ReadonlyMap<string, FlinkTableSchema>): Set<string> {
  const columns = new Set<string>([ROWTIME_COLUMN]);
  for (const reference of references) {
    for (const column of tables.get(reference.table)?.columns ?? []) columns.add(column.name);
    if (reference.viaWindowTvf) WINDOW_COLUMNS.forEach((c) => columns.add(c));
  }
  return columns;
}

/** The SELECT whose list feeds the INSERT: the first SELECT at depth 0 after any CTEs. */
function findMainSelect(tokens: readonly SqlToken[]): number {
  for (let k = 0; k < tokens.length; k += 1) {
    if (isWord(tokens[k], 'SELECT') && tokens[k].depth === 0) return k;
  }
  return -1;
}

/** The tables one statement touches, for dependencies and for the runner's role bindings. */
export interface StatementTables {
  /** What kind of statement it is. */
  readonly kind: 'create-table' | 'alter-table' | 'insert' | 'other';
  /** Table a CREATE TABLE creates. */
  readonly creates?: string;
  /** Table an ALTER TABLE alters. */
  readonly alters?: string;
  /** Table an INSERT writes. */
  readonly writes?: string;
  /** Tables a query reads (CTE names excluded), sorted. */
  readonly reads: readonly string[];
}

/** Derives the tables a single statement creates, alters, writes and reads. */
export function tablesOfStatement(sql: string): StatementTables {
  const create = parseCreateTable(sql);
  const tokens = tokenize(sql);
  const shape = analyseShape(tokens);
  const reads = [...new Set(shape.references.map((r) => r.table).filter((t) => !shape.cteNames.has(t)))].sort();
  if (create) return { kind: 'create-table', creates: create.table, reads: create.asSelect ? reads : [] };
  const watermark = parseAlterWatermark(sql);
  if (watermark) return { kind: 'alter-table', alters: watermark.table, reads: [] };
  const alterSet = parseAlterTableSet(sql);
  if (alterSet) return { kind: 'alter-table', alters: alterSet.table, reads: [] };
  if (isWord(tokens[0], 'INSERT')) {
    const target = readTableName(tokens, 2);
    return { kind: 'insert', writes: target?.table, reads };
  }
  return { kind: 'other', reads };
}
