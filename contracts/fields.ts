/**
 * Field descriptors for the event contracts.
 *
 * One descriptor drives three views of the same field: the JSON Schema registered in
 * Schema Registry, the TypeScript type the Lambda handlers use, and the Flink SQL column
 * type the dialect lint checks statements against.
 */

/** Closed set of wire types a contract field can have. */
export type FieldKind = 'string' | 'enum' | 'int64' | 'decimal' | 'timestamp-millis' | 'double';

interface FieldBase<K extends FieldKind, R extends boolean> {
  /** Wire type of the field. */
  readonly kind: K;
  /** What the field means, for the README table and the JSON Schema `description`. */
  readonly description: string;
  /** Whether producers must always send the field (non-null). */
  readonly required: R;
}

/** A UTF-8 string with an upper bound on its length. */
export interface StringField<R extends boolean = boolean> extends FieldBase<'string', R> {
  /** Longest accepted value, in characters. */
  readonly maxLength: number;
}

/** A string from a closed set of values. */
export interface EnumField<V extends string = string, R extends boolean = boolean> extends FieldBase<'enum', R> {
  /** The accepted values. */
  readonly values: readonly V[];
}

/** A signed 64-bit integer identifier, sent as a JSON integer within the safe-integer range. */
export type Int64Field<R extends boolean = boolean> = FieldBase<'int64', R>;

/**
 * An exact decimal amount sent as a JSON string (`"1200.50"`), never a JSON number, so no
 * producer or consumer can round it through a binary float.
 */
export interface DecimalField<R extends boolean = boolean> extends FieldBase<'decimal', R> {
  /** Total significant digits allowed. */
  readonly precision: number;
  /** Digits after the decimal point allowed. */
  readonly scale: number;
}

/** Epoch milliseconds (UTC), sent as a JSON integer; Flink sees it as `TIMESTAMP_LTZ(3)`. */
export type TimestampMillisField<R extends boolean = boolean> = FieldBase<'timestamp-millis', R>;

/** A ratio (CTR, CVR, ROAS) that is informational, never money. */
export type DoubleField<R extends boolean = boolean> = FieldBase<'double', R>;

/** Any field descriptor. */
export type FieldSpec = StringField | EnumField | Int64Field | DecimalField | TimestampMillisField | DoubleField;

/** The TypeScript value type a single field carries after validation. */
export type FieldValue<F extends FieldSpec> = F extends EnumField<infer V> ? V : F extends StringField | DecimalField ? string : number;

type RequiredKeys<S> = { [K in keyof S]: S[K] extends { required: true } ? K : never }[keyof S];
type OptionalKeys<S> = Exclude<keyof S, RequiredKeys<S>>;

/** The record type described by a map of field descriptors. */
export type RecordOf<S extends Record<string, FieldSpec>> = {
  readonly [K in RequiredKeys<S>]: FieldValue<S[K]>;
} & {
  readonly [K in OptionalKeys<S>]?: FieldValue<S[K]> | null;
};

/** Builders that keep literal types (`required: true`) so `RecordOf` can tell fields apart. */
export const field = {
  string<R extends boolean>(description: string, required: R, maxLength = 128): StringField<R> {
    return { kind: 'string', description, required, maxLength };
  },
  enum<const V extends string, R extends boolean>(description: string, required: R, values: readonly V[]): EnumField<V, R> {
    return { kind: 'enum', description, required, values };
  },
  int64<R extends boolean>(description: string, required: R): Int64Field<R> {
    return { kind: 'int64', description, required };
  },
  decimal<R extends boolean>(description: string, required: R, precision = 18, scale = 2): DecimalField<R> {
    return { kind: 'decimal', description, required, precision, scale };
  },
  timestampMillis<R extends boolean>(description: string, required: R): TimestampMillisField<R> {
    return { kind: 'timestamp-millis', description, required };
  },
  double<R extends boolean>(description: string, required: R): DoubleField<R> {
    return { kind: 'double', description, required };
  },
};

/** The Flink SQL type a field has once Confluent maps the registered JSON Schema to a table. */
export function flinkTypeOf(spec: FieldSpec): string {
  switch (spec.kind) {
    case 'int64':
      return 'BIGINT';
    case 'timestamp-millis':
      return 'TIMESTAMP_LTZ(3)';
    case 'double':
      return 'DOUBLE';
    default:
      return 'STRING';
  }
}

/** A regular expression a decimal string must match for the given precision and scale. */
export function decimalPattern(precision: number, scale: number): string {
  const integerDigits = precision - scale;
  return scale > 0 ? `^-?(0|[1-9][0-9]{0,${integerDigits - 1}})(\\.[0-9]{1,${scale}})?$` : `^-?(0|[1-9][0-9]{0,${integerDigits - 1}})$`;
}
