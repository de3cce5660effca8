import { checkAgainst, EventContract, RecordOfContract } from '../../contracts';
import { KafkaRecordError } from './errors';
import { parseJsonValue } from './kafka-event';

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
