import { createHash } from 'node:crypto';
import { KafkaCoordinates, KafkaEventShapeError, KafkaRecordError } from './errors';

/**
 * The Lambda Kafka event, for both triggers: self-managed Kafka (Confluent Cloud,
 * `eventSource: "SelfManagedKafka"`) and MSK (`"aws:kafka"`). Typed loosely on purpose: it is
 * untrusted input and every field is checked when decoding.
 */
export interface LambdaKafkaEvent {
  /** `SelfManagedKafka` or `aws:kafka`. */
  readonly eventSource?: string;
  /** MSK cluster ARN (MSK only). */
  readonly eventSourceArn?: string;
  /** Comma-separated bootstrap servers. */
  readonly bootstrapServers?: string;
  /** Records grouped by `"<topic>-<partition>"`. */
  readonly records: Readonly<Record<string, readonly LambdaKafkaRecord[]>>;
}

/** One record as Lambda delivers it. */
export interface LambdaKafkaRecord {
  /** Topic name. */
  readonly topic: string;
  /** Partition number. */
  readonly partition: number;
  /** Offset within the partition. */
  readonly offset: number;
  /** Record timestamp (epoch ms). */
  readonly timestamp?: number;
  /** `CREATE_TIME` or `LOG_APPEND_TIME`. */
  readonly timestampType?: string;
  /** Base64 key; absent for a null key. */
  readonly key?: string | null;
  /** Base64 value; absent or null for a tombstone. */
  readonly value?: string | null;
  /** Headers as a list of single-entry objects whose values are byte arrays. */
  readonly headers?: ReadonlyArray<Readonly<Record<string, readonly number[]>>>;
}

/** A record whose envelope decoded: coordinates, key and value bytes, headers. */
export interface DecodedKafkaRecord {
  /** Where it came from. */
  readonly coordinates: KafkaCoordinates;
  /** Record timestamp (epoch ms), if Lambda sent one. */
  readonly timestamp?: number;
  /** Key bytes, or null. */
  readonly key: Buffer | null;
  /** Value bytes with any Confluent wire header removed; null for a tombstone. */
  readonly value: Buffer | null;
  /** Schema Registry id from the Confluent wire header, when the value carried one. */
  readonly schemaId?: number;
  /** Header values as bytes, last value wins for a repeated name. */
  readonly headers: ReadonlyMap<string, Buffer>;
  /** The value exactly as received (base64), for the dead-letter table. */
  readonly rawValue: string | null;
}

/** A record the envelope of which could not be decoded. */
export interface UndecodableKafkaRecord {
  /** Where it came from (best effort if Lambda sent odd coordinates). */
  readonly coordinates: KafkaCoordinates;
  /** The value exactly as received, if it was a string. */
  readonly rawValue: string | null;
  /** Why it failed. */
  readonly error: KafkaRecordError;
}

/** Outcome of decoding one record's envelope. */
export type KafkaRecordResult = ({ readonly ok: true } & DecodedKafkaRecord) | ({ readonly ok: false } & UndecodableKafkaRecord);

/** Values bigger than this are dead-lettered unparsed (an event is a few hundred bytes). */
export const MAX_VALUE_BYTES = 64 * 1024;

// Canonical padded base64: a multiple of 4 characters, the alphabet, at most two '=' at the end
// (with the length check, exactly the groups XXXX…, XX== or XXX=). A plain character class scans
// several times faster than a repeated 4-character group on a 400-character value.
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes base64 strictly: Node's decoder silently skips garbage, which would hide corruption. */
export function decodeBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  // A text equal to the canonical encoding of its bytes is canonical padded base64, which the
  // character check accepts too: encoding and comparing costs half the scan (every Lambda value
  // takes this path). Any other text (garbage, non-zero padding bits) gets the exact check.
  if (bytes.toString('base64') === text) return bytes;
  return text.length % 4 === 0 && BASE64_CHARS.test(text) ? bytes : undefined;
}

function syntheticOffset(key: string, record: Partial<LambdaKafkaRecord>, index: number): number {
  const digest = createHash('sha256')
    .update(JSON.stringify([key, index, record.timestamp ?? null, record.key ?? null, typeof record.value === 'string' ? record.value : null]))
    .digest();
  return -1 - digest.readUIntBE(0, 6);
}

function coordinatesOf(key: string, record: Partial<LambdaKafkaRecord>, index: number): KafkaCoordinates {
  const separator = key.lastIndexOf('-');
  const topic = typeof record.topic === 'string' ? record.topic : separator > 0 ? key.slice(0, separator) : key;
  const claimed = Number.isSafeInteger(record.partition) ? (record.partition as number) : Number(key.slice(separator + 1));
  // The dead-letter column is a 32-bit integer: an absurd partition must not fail the batch.
  const partition = Number.isInteger(claimed) && claimed >= 0 && claimed <= 0x7fffffff ? claimed : -1;
  // A record without an offset still needs a stable, unique coordinate for the dead-letter row:
  // a negative number derived from the record itself (a redelivery maps to the same row, a
  // different record of another batch to another one).
  const offset = Number.isSafeInteger(record.offset) ? (record.offset as number) : syntheticOffset(key, record, index);
  return Number.isSafeInteger(record.timestamp) ? { topic, partition, offset, timestamp: record.timestamp as number } : { topic, partition, offset };
}

function decodeHeaders(headers: LambdaKafkaRecord['headers']): Map<string, Buffer> {
  const decoded = new Map<string, Buffer>();
  if (!Array.isArray(headers)) return decoded;
  for (const entry of headers) {
    if (typeof entry !== 'object' || entry === null) continue;
    for (const [name, bytes] of Object.entries(entry)) {
      if (Array.isArray(bytes) && bytes.every((b) => Number.isInteger(b) && b >= -128 && b <= 255)) {
        // Java producers' signed bytes arrive as -128..127; & 0xff maps them back.
        decoded.set(name, Buffer.from(bytes.map((b: number) => b & 0xff)));
      }
    }
  }
  return decoded;
}

// A function, not a closure per record: closures created per record cost more than the rest of the envelope.
function undecodable(coordinates: KafkaCoordinates, rawValue: string | null, error: KafkaRecordError): KafkaRecordResult {
  return { ok: false, coordinates, rawValue, error };
}

function decodeOne(key: string, raw: unknown, index: number): KafkaRecordResult {
  const record = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<LambdaKafkaRecord>;
  const coordinates = coordinatesOf(key, record, index);
  const rawValue = typeof record.value === 'string' ? record.value : null;

  if (record.value !== undefined && record.value !== null && typeof record.value !== 'string') {
    return undecodable(coordinates, rawValue, new KafkaRecordError('INVALID_BASE64', `value must be a base64 string, got ${typeof record.value}`));
  }
  if (rawValue !== null && rawValue.length > Math.ceil((MAX_VALUE_BYTES * 4) / 3) + 4) {
    return undecodable(
      coordinates,
      rawValue,
      new KafkaRecordError('OVERSIZED', `value is ${rawValue.length} base64 characters, more than ${MAX_VALUE_BYTES} bytes`),
    );
  }
  let value: Buffer | null = null;
  let schemaId: number | undefined;
  if (rawValue !== null) {
    const bytes = decodeBase64(rawValue);
    if (!bytes) return undecodable(coordinates, rawValue, new KafkaRecordError('INVALID_BASE64', 'value is not valid base64'));
    // Confluent wire header: magic byte 0, then a big-endian 4-byte schema id. JSON text never
    // starts with a 0 byte, so the check is unambiguous.
    if (bytes.length >= 5 && bytes[0] === 0) {
      schemaId = bytes.readInt32BE(1);
      value = bytes.subarray(5);
    } else {
      value = bytes;
    }
  }
  let keyBytes: Buffer | null = null;
  if (typeof record.key === 'string') {
    keyBytes = decodeBase64(record.key) ?? null;
  }
  return {
    ok: true,
    coordinates,
    timestamp: Number.isSafeInteger(record.timestamp) ? record.timestamp : undefined,
    key: keyBytes,
    value,
    schemaId,
    headers: decodeHeaders(record.headers),
    rawValue,
  };
}

/**
 * Decodes the envelope of every record in a Lambda Kafka event, in partition order then offset
 * order. Throws `KafkaEventShapeError` only when the event as a whole is not a Kafka event; a
 * bad record comes back as `{ ok: false }` so the batch can go on.
 */
export function decodeKafkaEvent(event: unknown): KafkaRecordResult[] {
  const records = (event as { records?: unknown } | null | undefined)?.records;
  if (typeof records !== 'object' || records === null || Array.isArray(records)) {
    throw new KafkaEventShapeError('not a Lambda Kafka event: expected { eventSource, records: { "<topic>-<partition>": [...] } }');
  }
  const results: KafkaRecordResult[] = [];
  let index = 0;
  for (const [key, list] of Object.entries(records as Record<string, unknown>)) {
    if (!Array.isArray(list)) {
      throw new KafkaEventShapeError(`records["${key}"] must be an array of records`);
    }
    for (const raw of list) results.push(decodeOne(key, raw, index++));
  }
  return results;
}

/**
 * Parses a decoded value as JSON text: strict UTF-8, size-bounded. Throws `KafkaRecordError`.
 */
export function parseJsonValue(value: Buffer | null): unknown {
  if (value === null) throw new KafkaRecordError('MISSING_VALUE', 'record has no value (tombstone)');
  if (value.length > MAX_VALUE_BYTES) {
    throw new KafkaRecordError('OVERSIZED', `value is ${value.length} bytes, more than ${MAX_VALUE_BYTES}`);
  }
  let text: string;
  try {
    text = strictUtf8.decode(value);
  } catch (cause) {
    throw new KafkaRecordError('INVALID_UTF8', 'value is not valid UTF-8', { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new KafkaRecordError('INVALID_JSON', `value is not JSON: ${(cause as Error).message.slice(0, 120)}`, { cause });
  }
}
