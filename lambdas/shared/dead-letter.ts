import type { ClientBase, Pool } from 'pg';
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

/**
 * Inserts dead letters in one statement, inside the caller's transaction when given a client.
 * A redelivered bad record hits the unique coordinates key and is not recorded twice.
 * Returns how many rows were new.
 */
export async function recordDeadLetters(db: Pick<ClientBase | Pool, 'query'>, handler: string, letters: readonly DeadLetter[]): Promise<number> {
  if (letters.length === 0) return 0;
  const topics: string[] = [];
  const partitions: number[] = [];
  const offsets: string[] = [];
  const reasons: string[] = [];
  const details: string[] = [];
  const values: (string | null)[] = [];
  const sizes: (number | null)[] = [];
  for (const letter of letters) {
    const bytes = rawBytes(letter.rawValue);
    topics.push(safeText(letter.coordinates.topic, 249));
    partitions.push(letter.coordinates.partition);
    offsets.push(String(letter.coordinates.offset));
    reasons.push(letter.reason);
    details.push(safeText(letter.detail));
    values.push(bytes ? bytes.subarray(0, MAX_STORED_BYTES).toString('hex') : null);
    sizes.push(bytes ? bytes.length : null);
  }
  const result = await db.query(
    `INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, detail, raw_value, raw_value_bytes)
     SELECT $1, t.topic, t.kafka_partition, t.kafka_offset, t.reason, t.detail, decode(t.raw_hex, 'hex'), t.raw_bytes
       FROM unnest($2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[])
         AS t(topic, kafka_partition, kafka_offset, reason, detail, raw_hex, raw_bytes)
     ON CONFLICT ON CONSTRAINT dead_letters_coordinates_key DO NOTHING`,
    [handler, topics, partitions, offsets, reasons, details, values, sizes],
  );
  return result.rowCount ?? 0;
}
