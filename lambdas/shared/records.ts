import { checkAgainst, EventContract, RecordOfContract } from '../../contracts';
import { DeadLetter, deadLetterFor } from './dead-letter';
import { KafkaCoordinates, KafkaRecordError } from './errors';
import { DecodedKafkaRecord, KafkaRecordResult, parseJsonValue } from './kafka-event';

/** Earliest plausible event time (2020-01-01T00:00:00Z); older values are corrupt. */
export const EARLIEST_EVENT_TS = Date.UTC(2020, 0, 1);
/** How far in the future an event time may be (clock skew), before it is called absurd. */
export const MAX_FUTURE_SKEW_MS = 24 * 60 * 60 * 1000;

/**
 * Parses and validates a record value against its event contract. Throws `KafkaRecordError`
 * with the dead-letter reason; returns the typed record otherwise.
 */
export function parseContractRecord<C extends EventContract>(contract: C, value: Buffer | null): RecordOfContract<C> {
  const parsed = parseJsonValue(value);
  const check = checkAgainst(contract, parsed);
  if (!check.ok) {
    const detail = check.violations.map((v) => `${v.field} ${v.reason}`).join('; ');
    throw new KafkaRecordError('CONTRACT_VIOLATION', `${contract.name}: ${detail}`);
  }
  for (const [name, spec] of Object.entries(contract.fields)) {
    const fieldValue = (check.value as Record<string, unknown>)[name];
    // Postgres text cannot store NUL: accepting one would fail the whole batch, forever.
    if (spec.kind === 'string' && typeof fieldValue === 'string' && fieldValue.includes('\u0000')) {
      throw new KafkaRecordError('CONTRACT_VIOLATION', `${contract.name}: ${name} must not contain NUL characters`);
    }
  }
  return check.value;
}

/** Throws `ABSURD_TIMESTAMP` unless `ts` lies between 2020 and one day from `now`. */
export function checkEventTime(field: string, ts: number, now: number): void {
  if (ts < EARLIEST_EVENT_TS || ts > now + MAX_FUTURE_SKEW_MS) {
    throw new KafkaRecordError('ABSURD_TIMESTAMP', `${field} ${ts} is before 2020 or more than a day in the future`);
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
