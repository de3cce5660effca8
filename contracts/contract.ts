import { decimalPattern, FieldSpec, RecordOf } from './fields';

/** An event contract: the topic it travels on and the fields of its JSON value. */
export interface EventContract<S extends Record<string, FieldSpec> = Record<string, FieldSpec>> {
  /** PascalCase name of the record type, also the JSON Schema `title`. */
  readonly name: string;
  /** Kafka topic the records are written to. */
  readonly topic: string;
  /** One sentence on what a record means. */
  readonly description: string;
  /** Fields of the JSON value, in the order they are documented. */
  readonly fields: S;
}

/** Declares a contract while keeping the literal field types for `RecordOf`. */
export function defineContract<const S extends Record<string, FieldSpec>>(contract: EventContract<S>): EventContract<S> {
  return contract;
}

/** The record type a contract describes. */
export type RecordOfContract<C> = C extends EventContract<infer S> ? RecordOf<S> : never;

/** Schema Registry subject of a contract's value (TopicNameStrategy). */
export function valueSubjectOf(contract: EventContract): string {
  return `${contract.topic}-value`;
}

function jsonSchemaOfField(spec: FieldSpec): Record<string, unknown> {
  const base: Record<string, unknown> = { description: spec.description };
  let typed: Record<string, unknown>;
  switch (spec.kind) {
    case 'string':
      typed = { type: 'string', maxLength: spec.maxLength };
      break;
    case 'enum':
      typed = { type: 'string', enum: [...spec.values] };
      break;
    case 'int64':
      typed = { type: 'integer', 'connect.type': 'int64' };
      break;
    case 'decimal':
      typed = { type: 'string', pattern: decimalPattern(spec.precision, spec.scale) };
      break;
    case 'timestamp-millis':
      typed = {
        type: 'integer',
        title: 'org.apache.kafka.connect.data.Timestamp',
        'connect.type': 'int64',
      };
      break;
    case 'double':
      typed = { type: 'number', 'connect.type': 'float64' };
      break;
  }
  const schema = { ...typed, ...base };
  return spec.required ? schema : { oneOf: [{ type: 'null' }, schema] };
}

/**
 * The JSON Schema (draft-07) registered for a contract's topic value. Deterministic: the same
 * contract always produces the same text, so Schema Registry sees no spurious new version.
 */
export function jsonSchemaOf(contract: EventContract): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, spec] of Object.entries(contract.fields)) {
    properties[name] = jsonSchemaOfField(spec);
    if (spec.required) required.push(name);
  }
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: contract.name,
    description: contract.description,
    type: 'object',
    properties,
    required,
    additionalProperties: false,
  };
}

/** Why a value did not match its contract: one entry per offending field. */
export interface ContractViolation {
  /** The field name, or `$` for the value as a whole. */
  readonly field: string;
  /** Human-readable reason, including the received value where that is safe to print. */
  readonly reason: string;
}

/** The outcome of checking an untrusted value against a contract. */
export type ContractCheck<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly violations: readonly ContractViolation[] };

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : String(value);
}

const decimalRegExps = new Map<string, RegExp>();

/** The compiled decimal pattern, built once per (precision, scale): validation runs per record. */
function decimalRegExp(precision: number, scale: number): RegExp {
  const key = `${precision},${scale}`;
  let compiled = decimalRegExps.get(key);
  if (!compiled) {
    compiled = new RegExp(decimalPattern(precision, scale));
    decimalRegExps.set(key, compiled);
  }
  return compiled;
}

function checkField(name: string, spec: FieldSpec, value: unknown): string | undefined {
  if (value === undefined || value === null) {
    return spec.required ? 'is required' : undefined;
  }
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string') return `must be a string, got ${describe(value)}`;
      if (value.length === 0) return 'must not be empty';
      if (value.length > spec.maxLength) return `must be at most ${spec.maxLength} characters, got ${value.length}`;
      return undefined;
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) {
        return `must be one of ${spec.values.join(' | ')}, got ${describe(value)}`;
      }
      return undefined;
    case 'int64':
    case 'timestamp-millis':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
        return `must be an integer within ±2^53, got ${describe(value)}`;
      }
      if (value < 0) return `must not be negative, got ${value}`;
      return undefined;
    case 'decimal':
      if (typeof value !== 'string') return `must be a decimal string such as "12.50", got ${describe(value)}`;
      if (!decimalRegExp(spec.precision, spec.scale).test(value)) {
        return `must be a decimal string with at most ${spec.precision - spec.scale} integer and ${spec.scale} fraction digits, got ${describe(value)}`;
      }
      return undefined;
    case 'double':
      if (typeof value !== 'number' || !Number.isFinite(value)) return `must be a finite number, got ${describe(value)}`;
      return undefined;
  }
  return `has unknown kind for field ${name}`;
}

const entriesOf = new WeakMap<EventContract, ReadonlyArray<readonly [string, FieldSpec]>>();

/** The contract's fields as [name, spec] pairs, computed once per contract (checked on every record). */
export function fieldEntries(contract: EventContract): ReadonlyArray<readonly [string, FieldSpec]> {
  let entries = entriesOf.get(contract);
  if (!entries) entriesOf.set(contract, (entries = Object.entries(contract.fields)));
  return entries;
}

/**
 * Checks an untrusted, already JSON-parsed value against a contract. Unknown properties are
 * ignored (forward compatibility); every known field is checked and all violations reported.
 */
export function checkAgainst<C extends EventContract>(contract: C, value: unknown): ContractCheck<RecordOfContract<C>> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, violations: [{ field: '$', reason: `must be a JSON object, got ${describe(value)}` }] };
  }
  const record = value as Record<string, unknown>;
  const violations: ContractViolation[] = [];
  for (const [name, spec] of fieldEntries(contract)) {
    const reason = checkField(name, spec, record[name]);
    if (reason) violations.push({ field: name, reason });
  }
  return violations.length > 0 ? { ok: false, violations } : { ok: true, value: record as RecordOfContract<C> };
}
