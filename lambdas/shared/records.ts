import { checkAgainst, EventContract, FieldSpec, fieldEntries, RecordOfContract } from '../../contracts';
import { budgetDayOf } from './budget-day';
import { DeadLetter, deadLetterFor } from './dead-letter';
import { KafkaCoordinates, KafkaRecordError } from './errors';
import { checkInformationalAmount } from './money';
import { DecodedKafkaRecord, KafkaRecordResult, parseJsonValue } from './kafka-event';

/** Earliest plausible event time (2020-01-01T00:00:00Z); older values are corrupt. */
export const EARLIEST_EVENT_TS = Date.UTC(2020, 0, 1);
/** How far in the future an event time may be (clock skew), before it is called absurd. */
export const MAX_FUTURE_SKEW_MS = 24 * 60 * 60 * 1000;

/** Options of `parseContractRecord`. */
export interface ParseRecordOptions {
  /**
   * Optional fields that are informational only (no amount, key or routing depends on them). A
   * malformed value of one (empty, too long, NUL, lone surrogate, not a sane amount) is dropped
   * to null instead of rejecting the record: a real click must not be lost over a quoted price
   * or a user id.
   */
  readonly informational?: readonly string[];
}

/** A lone UTF-16 surrogate: Postgres would store it as U+FFFD, so two distinct ids would become one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Any surrogate at all: most values have none, and this scan is much cheaper than the one above. */
const ANY_SURROGATE = /[\ud800-\udfff]/;

/**
 * True when `value` holds a lone UTF-16 surrogate: it has no UTF-8 encoding, so Postgres text and
 * Redis keys (bytes) get U+FFFD in its place and two distinct strings become one.
 */
export function hasLoneSurrogate(value: string): boolean {
  return ANY_SURROGATE.test(value) && LONE_SURROGATE.test(value);
}

/** Why a string value cannot be stored as Postgres text unchanged, or undefined. */
function textProblem(value: string): string | undefined {
  // Postgres text cannot store NUL: accepting one would fail the whole batch, forever.
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (hasLoneSurrogate(value)) return 'must be valid Unicode (it contains a lone UTF-16 surrogate)';
  return undefined;
}

const singleFieldContracts = new WeakMap<EventContract, Map<string, EventContract>>();

function informationalValueIsUsable(contract: EventContract, name: string, value: unknown, conforms: boolean): boolean {
  const spec = contract.fields[name];
  if (!spec) return true;
  if (!conforms && !checkAgainst(singleFieldContract(contract, name, spec), { [name]: value }).ok) return false;
  if (typeof value === 'string' && textProblem(value)) return false;
  if (spec.kind === 'decimal' && typeof value === 'string' && checkInformationalAmount(value)) return false;
  return true;
}

function singleFieldContract(contract: EventContract, name: string, spec: FieldSpec): EventContract {
  let byName = singleFieldContracts.get(contract);
  if (!byName) singleFieldContracts.set(contract, (byName = new Map()));
  let single = byName.get(name);
  if (!single) byName.set(name, (single = { ...contract, fields: { [name]: spec } }));
  return single;
}

/**
 * Parses and validates a record value against its event contract. Throws `KafkaRecordError`
 * with the dead-letter reason; returns the typed record otherwise. Every string must be storable
 * as Postgres text unchanged (no NUL, no lone surrogate).
 */
export function parseContractRecord<C extends EventContract>(contract: C, value: Buffer | null, options: ParseRecordOptions = {}): RecordOfContract<C> {
  const parsed = parseJsonValue(value);
  let check = checkAgainst(contract, parsed);
  if (options.informational && typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    // Checked whole first (the common case: every field fine), field by field only when needed.
    const cleaned = withoutUnusableInformational(contract, parsed as Record<string, unknown>, options.informational, check.ok);
    if (cleaned) check = checkAgainst(contract, cleaned);
  }
  if (!check.ok) {
    const detail = check.violations.map((v) => `${v.field} ${v.reason}`).join('; ');
    throw new KafkaRecordError('CONTRACT_VIOLATION', `${contract.name}: ${detail}`);
  }
  for (const name of stringFieldsOf(contract)) {
    const fieldValue = (check.value as Record<string, unknown>)[name];
    const problem = typeof fieldValue === 'string' ? textProblem(fieldValue) : undefined;
    if (problem) throw new KafkaRecordError('CONTRACT_VIOLATION', `${contract.name}: ${name} ${problem}`);
  }
  return check.value;
}

const stringFields = new WeakMap<EventContract, readonly string[]>();

/** Names of the contract's string fields, in field order, computed once per contract (checked on every record). */
function stringFieldsOf(contract: EventContract): readonly string[] {
  let names = stringFields.get(contract);
  if (!names) stringFields.set(contract, (names = fieldEntries(contract).flatMap(([name, spec]) => (spec.kind === 'string' ? [name] : []))));
  return names;
}

/**
 * A copy of `record` with every unusable informational field set to null, or undefined when
 * none is unusable. `conforms`: the record passed the contract as a whole, so only the text and
 * amount checks can still fail a field.
 */
function withoutUnusableInformational(
  contract: EventContract,
  record: Record<string, unknown>,
  informational: readonly string[],
  conforms: boolean,
): Record<string, unknown> | undefined {
  let copy: Record<string, unknown> | undefined;
  for (const name of informational) {
    const fieldValue = record[name];
    if (fieldValue === undefined || fieldValue === null || informationalValueIsUsable(contract, name, fieldValue, conforms)) continue;
    copy ??= { ...record };
    copy[name] = null;
  }
  return copy;
}

/** Throws `ABSURD_TIMESTAMP` unless `ts` lies between 2020 and one day from `now`. */
export function checkEventTime(field: string, ts: number, now: number): void {
  if (ts < EARLIEST_EVENT_TS || ts > now + MAX_FUTURE_SKEW_MS) {
    throw new KafkaRecordError('ABSURD_TIMESTAMP', `${field} ${ts} is before 2020 or more than a day in the future`);
  }
}

/**
 * Throws `HISTORY_EXPIRED` when the budget day of `ts` is `since` or earlier: the charge, void
 * and log lookups of a click look in its day and the day before and after, which may be gone.
 */
export function checkHistoryKept(field: string, ts: number, since: string | undefined, timeZone: string): void {
  if (since === undefined) return;
  const day = budgetDayOf(ts, timeZone);
  if (day <= since) {
    throw new KafkaRecordError(
      'HISTORY_EXPIRED',
      `${field} is on budget day ${day}; the charges, voids and duplicate log are kept only after ${since} (ledger retention), so applying it could charge or refund twice`,
    );
  }
}

/** A record a handler accepted, with where it came from (for a dead letter later in the batch). */
export interface AcceptedRecord<T> {
  /** What the handler made of the record. */
  readonly event: T;
  /** Where the record sits in Kafka. */
  readonly coordinates: KafkaCoordinates;
  /** The value as Lambda delivered it (base64). */
  readonly rawValue: string | null;
}

/**
 * Sorts a decoded batch into accepted records and dead letters, in delivery order. `accept`
 * returns what the handler makes of a record, `undefined` to skip it (counted, not recorded),
 * or throws `KafkaRecordError` to dead-letter it; any other error propagates so the batch is
 * retried. With `keyOf`, only the first record per key is accepted (a producer retry in the
 * same batch).
 */
export function sortBatch<T>(
  records: readonly KafkaRecordResult[],
  accept: (record: DecodedKafkaRecord) => T | undefined,
  keyOf?: (event: T) => string,
): { accepted: AcceptedRecord<T>[]; deadLetters: DeadLetter[] } {
  const accepted: AcceptedRecord<T>[] = [];
  const deadLetters: DeadLetter[] = [];
  const seen = new Set<string>();
  for (const record of records) {
    if (!record.ok) {
      deadLetters.push(deadLetterFor(record.error, record.coordinates, record.rawValue));
      continue;
    }
    try {
      const event = accept(record);
      if (event === undefined) continue;
      if (keyOf) {
        const key = keyOf(event);
        if (seen.has(key)) continue;
        seen.add(key);
      }
      accepted.push({ event, coordinates: record.coordinates, rawValue: record.rawValue });
    } catch (error) {
      if (!(error instanceof KafkaRecordError)) throw error;
      deadLetters.push(deadLetterFor(error, record.coordinates, record.rawValue));
    }
  }
  return { accepted, deadLetters };
}
