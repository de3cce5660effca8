import type { ClientBase, Pool } from 'pg';
import { budgetDayOf } from './budget-day';
import { decodeBase64 } from './kafka-event';
import { DeadLetterReason, KafkaCoordinates, KafkaRecordError } from './errors';

/** A record that will not be applied, on its way to the `dead_letters` table. */
export interface DeadLetter {
  /** Where the record sits in Kafka. */
  readonly coordinates: KafkaCoordinates;
  /** Machine-readable reason. */
  readonly reason: DeadLetterReason;
  /** Human-readable detail (never a secret; record content only as short excerpts). */
  readonly detail: string;
  /** The value exactly as Lambda delivered it (base64), or null for a tombstone. */
  readonly rawValue: string | null;
}

/** The dead letter of a record rejected with `error`. */
export function deadLetterFor(error: KafkaRecordError, coordinates: KafkaCoordinates, rawValue: string | null): DeadLetter {
  return { coordinates, reason: error.reason, detail: error.message, rawValue };
}

/** Raw values beyond this are stored truncated (`raw_value_bytes` keeps the full size). */
const MAX_STORED_BYTES = 256 * 1024;

function rawBytes(rawValue: string | null): Buffer | null {
  if (rawValue === null) return null;
  // Valid base64 is stored decoded (the record's bytes); anything else as the text received.
  return decodeBase64(rawValue) ?? Buffer.from(rawValue, 'utf8');
}

/** Postgres text cannot hold NUL; keep the detail readable instead of failing the batch. */
export function safeText(text: string, maxLength = 2000): string {
  return text.replace(/\u0000/g, '\\0').slice(0, maxLength);
}

/** The dead-letter day of a record without a usable timestamp: fixed, so its key is too. */
export const NO_TIMESTAMP_DAY = '1970-01-01';

/** Latest epoch ms a JavaScript date (and a Postgres date) holds. */
const MAX_DATE_MS = 8.64e15;

/**
 * The day a dead letter is kept under (`dead_letters.record_day`, its partition): the budget day
 * of the Kafka record's timestamp, which every redelivery of the record carries unchanged, or
 * {@link NO_TIMESTAMP_DAY} for a record without a usable one (absent, negative: Kafka's "no
 * timestamp" is -1, or beyond any date). Never the clock: a redelivery must meet its row.
 */
export function deadLetterDayOf(coordinates: KafkaCoordinates, timeZone: string): string {
  const ts = coordinates.timestamp;
  return ts !== undefined && Number.isSafeInteger(ts) && ts >= 0 && ts <= MAX_DATE_MS ? budgetDayOf(ts, timeZone) : NO_TIMESTAMP_DAY;
}

/**
 * Inserts dead letters in one statement, inside the caller's transaction when given a client.
 * A redelivered bad record hits the unique key (coordinates, handler, day) and is not recorded
 * twice; nor is one whose row sits in the day before or after (recorded under another budget
 * zone, or migrated with the day it was recorded on). Returns how many rows were new.
 */
export async function recordDeadLetters(
  db: Pick<ClientBase | Pool, 'query'>,
  handler: string,
  letters: readonly DeadLetter[],
  timeZone: string,
): Promise<number> {
  if (letters.length === 0) return 0;
  const topics: string[] = [];
  const partitions: number[] = [];
  const offsets: string[] = [];
  const reasons: string[] = [];
  const details: string[] = [];
  const values: (string | null)[] = [];
  const sizes: (number | null)[] = [];
  const timestamps: (string | null)[] = [];
  const days: string[] = [];
  for (const letter of letters) {
    const bytes = rawBytes(letter.rawValue);
    const day = deadLetterDayOf(letter.coordinates, timeZone);
    topics.push(safeText(letter.coordinates.topic, 249));
    partitions.push(letter.coordinates.partition);
    offsets.push(String(letter.coordinates.offset));
    reasons.push(letter.reason);
    details.push(safeText(letter.detail));
    values.push(bytes ? bytes.subarray(0, MAX_STORED_BYTES).toString('hex') : null);
    sizes.push(bytes ? bytes.length : null);
    timestamps.push(day === NO_TIMESTAMP_DAY ? null : String(letter.coordinates.timestamp));
    days.push(day);
  }
  const result = await db.query(
    `INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, detail, raw_value, raw_value_bytes, kafka_timestamp, record_day)
     SELECT $1, t.topic, t.kafka_partition, t.kafka_offset, t.reason, t.detail, decode(t.raw_hex, 'hex'), t.raw_bytes, t.kafka_timestamp, t.record_day
       FROM unnest($2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[], $9::bigint[], $10::date[])
         AS t(topic, kafka_partition, kafka_offset, reason, detail, raw_hex, raw_bytes, kafka_timestamp, record_day)
      WHERE NOT EXISTS (SELECT 1 FROM dead_letters d
                         WHERE d.topic = t.topic AND d.kafka_partition = t.kafka_partition AND d.kafka_offset = t.kafka_offset
                           AND d.handler = $1 AND d.record_day IN (t.record_day - 1, t.record_day + 1))
     ON CONFLICT ON CONSTRAINT dead_letters_coordinates_key DO NOTHING`,
    [handler, topics, partitions, offsets, reasons, details, values, sizes, timestamps, days],
  );
  return result.rowCount ?? 0;
}
