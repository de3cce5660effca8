import { EVENT_CONTRACTS, EventContract, flinkTypeOf } from '../../contracts';
import { isSymbol, isWord, matchingParen, SqlToken, tokenize } from './sql-text';

/** How a table's Kafka records are interpreted. */
export type ChangelogMode = 'append' | 'upsert' | 'retract';

/** One column of a Flink table. */
export interface FlinkColumn {
  /** Column name as declared. */
  readonly name: string;
  /** Flink SQL type as written (upper-cased keywords). */
  readonly type: string;
}

/** What the lint and the pipeline wiring know about a table. */
export interface FlinkTableSchema {
  /** Table (= topic) name. */
  readonly name: string;
  /** Physical columns, in order. */
  readonly columns: readonly FlinkColumn[];
  /** Primary key columns; empty when the table has none. */
  readonly primaryKey: readonly string[];
  /** Changelog mode of the table. */
  readonly changelogMode: ChangelogMode;
  /** Where the table comes from: a registered contract (foundation topic) or our DDL. */
  readonly origin: 'contract' | 'ddl';
}

/** System column every Confluent table has: the Kafka record timestamp. */
export const ROWTIME_COLUMN = '$rowtime';

/**
 * The value columns Confluent infers for a topic from its registered JSON Schema, in contract
 * order: the lint's view of {@link inferredSourceTable} (the local engine's), without the raw key.
 */
export function contractTable(contract: EventContract): FlinkTableSchema {
  const inferred = inferredSourceTable(contract, 'delete');
  return {
    name: contract.topic,
    columns: inferred.columns.map(({ name, type }) => ({ name, type })),
    primaryKey: [],
    changelogMode: inferred.changelogMode,
    origin: 'contract',
  };
}

/** Every foundation topic as the table Confluent infers for it. */
export function contractTables(): FlinkTableSchema[] {
  return EVENT_CONTRACTS.map((contract) => contractTable(contract));
}

/** Kafka cleanup policy of a topic, as the environment config sets it. */
export type TopicCleanupPolicy = 'delete' | 'compact' | 'compact,delete';

/** Name of the column Confluent infers for a record key that has no key schema (raw bytes). */
export const RAW_KEY_COLUMN = 'key';

/**
 * A foundation topic as Confluent Cloud infers its table (docs: "CREATE TABLE … Inferred
 * tables"): the value's JSON Schema fields as columns (a required field is NOT NULL), the key
 * — our topics register no key schema — as a raw `key` BYTES column, the `$rowtime` system
 * column from the record timestamp, and the changelog mode from the cleanup policy: a topic
 * whose policy includes `compact` is an upsert table keyed by the message key, any other an
 * append table. The dialect lint and the local engine both read tables through this model.
 */
export interface InferredSourceTable {
  /** Table (= topic) name. */
  readonly name: string;
  /** Value columns in contract order, with nullability from the JSON Schema's `required`. */
  readonly columns: readonly (FlinkColumn & { readonly nullable: boolean })[];
  /** The raw key column. */
  readonly keyColumn: FlinkColumn;
  /** `upsert` for a compacted topic, `append` otherwise. */
  readonly changelogMode: ChangelogMode;
  /** `[key]` for an upsert table, empty for an append table. */
  readonly primaryKey: readonly string[];
}

/** The table Confluent infers for `contract`'s topic under `cleanupPolicy`. */
export function inferredSourceTable(contract: EventContract, cleanupPolicy: TopicCleanupPolicy): InferredSourceTable {
  const upsert = cleanupPolicy.split(',').includes('compact');
  return {
    name: contract.topic,
    columns: Object.entries(contract.fields).map(([name, spec]) => ({ name, type: flinkTypeOf(spec), nullable: !spec.required })),
    keyColumn: { name: RAW_KEY_COLUMN, type: 'BYTES' },
    changelogMode: upsert ? 'upsert' : 'append',
    primaryKey: upsert ? [RAW_KEY_COLUMN] : [],
  };
}

/** A CREATE TABLE statement, as far as the lint and the wiring need it. */
export interface CreateTableInfo {
  /** Name of the created table. */
  readonly table: string;
  /** Declared physical columns (computed and metadata columns excluded). */
  readonly columns: readonly FlinkColumn[];
  /** PRIMARY KEY columns, empty when none. */
  readonly primaryKey: readonly string[];
  /** Whether the primary key says NOT ENFORCED (Flink requires it). */
  readonly primaryKeyNotEnforced: boolean;
  /** DISTRIBUTED BY columns, empty when the clause is absent. */
  readonly distributedBy: readonly string[];
  /** WITH options, keys as written. */
  readonly options: Readonly<Record<string, string>>;
  /** Changelog mode the options or the primary key imply. */
  readonly changelogMode: ChangelogMode;
  /** Whether it is CREATE TABLE … AS SELECT. */
  readonly asSelect: boolean;
}

function name(token: SqlToken | undefined): string {
  return token ? token.text : '';
}

/** Splits the tokens between `from` and `to` (exclusive) on commas at `depth` outside `<…>`. */
function splitOnCommas(tokens: readonly SqlToken[], from: number, to: number, depth: number): SqlToken[][] {
  const parts: SqlToken[][] = [];
  let current: SqlToken[] = [];
  let angle = 0;
  for (let k = from; k < to; k += 1) {
    const t = tokens[k];
    if (isSymbol(t, '<')) angle += 1;
    if (isSymbol(t, '>')) angle -= 1;
    if (isSymbol(t, ',') && t.depth === depth && angle === 0) {
      parts.push(current);
      current = [];
    } else {
      current.push(t);
    }
  }
  if (current.length > 0) parts.push(current);
  return parts;
}

/** Reads `( a, b, c )` starting at the `(`; returns the names and the index after `)`. */
export function readNameList(tokens: readonly SqlToken[], open: number): { names: string[]; next: number } {
  const close = matchingParen(tokens, open);
  const names = splitOnCommas(tokens, open + 1, close, tokens[open].depth + 1).map((part) => name(part[0]));
  return { names, next: close + 1 };
}

/** Reads `( 'k' = 'v', … )` starting at the `(`. */
export function readOptions(tokens: readonly SqlToken[], open: number): Record<string, string> {
  const close = matchingParen(tokens, open);
  const options: Record<string, string> = {};
  for (const part of splitOnCommas(tokens, open + 1, close, tokens[open].depth + 1)) {
    const key = part[0];
    const value = part[2];
    if (key && value) options[key.text] = value.text;
  }
  return options;
}

/** Parses a CREATE TABLE statement, or returns undefined for any other statement. */
export function parseCreateTable(sql: string): CreateTableInfo | undefined {
  const tokens = tokenize(sql);
  if (!isWord(tokens[0], 'CREATE')) return undefined;
  let k = 1;
  if (isWord(tokens[k], 'TEMPORARY')) k += 1;
  if (!isWord(tokens[k], 'TABLE')) return undefined;
  k += 1;
  if (isWord(tokens[k], 'IF') && isWord(tokens[k + 1], 'NOT') && isWord(tokens[k + 2], 'EXISTS')) k += 3;
  // catalog.database.table: the last part names the table
  let table = name(tokens[k]);
  k += 1;
  while (isSymbol(tokens[k], '.')) {
    table = name(tokens[k + 1]);
    k += 2;
  }
  const columns: FlinkColumn[] = [];
  let primaryKey: string[] = [];
  let primaryKeyNotEnforced = false;
  if (isSymbol(tokens[k], '(')) {
    const close = matchingParen(tokens, k);
    for (const part of splitOnCommas(tokens, k + 1, close, tokens[k].depth + 1)) {
      let p = 0;
      if (isWord(part[0], 'CONSTRAINT')) p = 2;
      if (isWord(part[p], 'PRIMARY') && isWord(part[p + 1], 'KEY')) {
        const open = tokens.indexOf(part[p + 2]);
        primaryKey = readNameList(tokens, open).names;
        primaryKeyNotEnforced = part.some((t, i) => isWord(t, 'NOT') && isWord(part[i + 1], 'ENFORCED'));
        continue;
      }
      if (isWord(part[0], 'WATERMARK')) continue;
      if (isWord(part[1], 'AS')) continue; // computed column
      const typeTokens: string[] = [];
      let isMetadata = false;
      for (let i = 1; i < part.length; i += 1) {
        const t = part[i];
        if (isWord(t, 'METADATA')) isMetadata = true;
        if (isWord(t, 'NOT', 'NULL', 'PRIMARY', 'COMMENT', 'METADATA')) break;
        typeTokens.push(t.kind === 'quoted' ? t.text : t.kind === 'word' ? t.upper : t.text);
      }
      if (part.some((t, i) => isWord(t, 'PRIMARY') && isWord(part[i + 1], 'KEY'))) {
        primaryKey = [name(part[0])];
        primaryKeyNotEnforced = part.some((t, i) => isWord(t, 'NOT') && isWord(part[i + 1], 'ENFORCED'));
      }
      if (!isMetadata) columns.push({ name: name(part[0]), type: joinType(typeTokens) });
    }
    k = close + 1;
  }
  let distributedBy: string[] = [];
  let options: Record<string, string> = {};
  let asSelect = false;
  for (; k < tokens.length; k += 1) {
    const t = tokens[k];
    if (t.depth !== 0) continue;
    if (isWord(t, 'DISTRIBUTED') && isWord(tokens[k + 1], 'BY')) {
      let open = k + 2;
      if (isWord(tokens[open], 'HASH')) open += 1;
      if (isSymbol(tokens[open], '(')) distributedBy = readNameList(tokens, open).names;
    } else if (isWord(t, 'WITH') && isSymbol(tokens[k + 1], '(')) {
      options = readOptions(tokens, k + 1);
      k = matchingParen(tokens, k + 1);
    } else if (isWord(t, 'AS')) {
      asSelect = true;
      break;
    }
  }
  const declared = options['changelog.mode'];
  const changelogMode: ChangelogMode =
    declared === 'upsert' || declared === 'retract' || declared === 'append' ? declared : primaryKey.length > 0 ? 'upsert' : 'append';
  return { table, columns, primaryKey, primaryKeyNotEnforced, distributedBy, options, changelogMode, asSelect };
}

function joinType(parts: readonly string[]): string {
  return parts
    .join(' ')
    .replace(/\s*([(),<>])\s*/g, '$1')
    .replace(/,/g, ', ');
}

/** The tokens of an `ALTER TABLE [catalog.][database.]table …` statement, its table, and where the rest starts. */
function alterTable(sql: string): { tokens: SqlToken[]; table: string; k: number } | undefined {
  const tokens = tokenize(sql);
  if (!isWord(tokens[0], 'ALTER') || !isWord(tokens[1], 'TABLE')) return undefined;
  let k = 2;
  let table = name(tokens[k]);
  k += 1;
  while (isSymbol(tokens[k], '.')) {
    table = name(tokens[k + 1]);
    k += 2;
  }
  return { tokens, table, k };
}

/** An `ALTER TABLE … MODIFY WATERMARK FOR col AS expr` statement. */
export interface AlterWatermarkInfo {
  /** Altered table. */
  readonly table: string;
  /** Column that becomes the event-time attribute. */
  readonly column: string;
}

/** Parses an ALTER TABLE … MODIFY WATERMARK statement, or returns undefined. */
export function parseAlterWatermark(sql: string): AlterWatermarkInfo | undefined {
  const alter = alterTable(sql);
  if (alter === undefined) return undefined;
  const { tokens, table, k } = alter;
  if (!isWord(tokens[k], 'MODIFY') || !isWord(tokens[k + 1], 'WATERMARK') || !isWord(tokens[k + 2], 'FOR')) {
    return undefined;
  }
  return { table, column: name(tokens[k + 3]) };
}

/** An `ALTER TABLE … SET ('option' = 'value', …)` statement. */
export interface AlterTableSetInfo {
  /** Altered table. */
  readonly table: string;
  /** The options set, keys as written. */
  readonly options: Readonly<Record<string, string>>;
}

/** Parses an ALTER TABLE … SET (…) statement, or returns undefined. */
export function parseAlterTableSet(sql: string): AlterTableSetInfo | undefined {
  const alter = alterTable(sql);
  if (alter === undefined) return undefined;
  const { tokens, table, k } = alter;
  if (!isWord(tokens[k], 'SET') || !isSymbol(tokens[k + 1], '(')) return undefined;
  if (matchingParen(tokens, k + 1) !== tokens.length - 1) return undefined;
  return { table, options: readOptions(tokens, k + 1) };
}

/** The table schema a CREATE TABLE statement defines. */
export function tableOfCreate(info: CreateTableInfo): FlinkTableSchema {
  return {
    name: info.table,
    columns: info.columns,
    primaryKey: info.primaryKey,
    changelogMode: info.changelogMode,
    origin: 'ddl',
  };
}
