/**
 * Real-shaped Lambda Kafka events for tests and the benchmark: records keyed
 * `"<topic>-<partition>"`, base64 keys and values, headers as byte arrays, in the self-managed
 * (Confluent) or MSK shape.
 */
import { randomUUID } from 'node:crypto';
import type { AdEvent, CompensationEvent } from '../../../contracts';
import type { LambdaKafkaEvent, LambdaKafkaRecord } from '../../../lambdas/shared/kafka-event';

/** A record value as a test wants to write it. */
export type FixtureValue =
  | Buffer // exact bytes
  | null // tombstone
  | { readonly base64: string } // the base64 text exactly as Lambda would deliver it (may be invalid)
  | object; // JSON-encoded

/** Where and how one partition's records are built. */
export interface PartitionFixture {
  /** Partition number. @default 0 */
  readonly partition?: number;
  /** Offset of the first record; the rest follow. @default 0 */
  readonly firstOffset?: number;
  /** Values, in offset order. */
  readonly values: readonly FixtureValue[];
  /** Key of every record (e.g. the campaign id). @default none */
  readonly keyOf?: (value: FixtureValue, index: number) => string | null;
  /** Headers of every record. @default none */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The JSON bytes of a value. */
export function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** Prefixes the Confluent wire header (magic byte 0 + 4-byte schema id). */
export function withWireHeader(value: Buffer, schemaId: number): Buffer {
  const header = Buffer.alloc(5);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, value]);
}

function base64Of(value: FixtureValue): string | null {
  if (value === null) return null;
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if ('base64' in value && typeof (value as { base64: unknown }).base64 === 'string') {
    return (value as { base64: string }).base64;
  }
  return jsonBytes(value).toString('base64');
}

/** Builds a Lambda Kafka event for `topic` from one or more partitions. */
export function kafkaEvent(
  topic: string,
  partitions: readonly PartitionFixture[],
  eventSource: 'SelfManagedKafka' | 'aws:kafka' = 'SelfManagedKafka',
): LambdaKafkaEvent {
  const records: Record<string, LambdaKafkaRecord[]> = {};
  for (const fixture of partitions) {
    const partition = fixture.partition ?? 0;
    const first = fixture.firstOffset ?? 0;
    records[`${topic}-${partition}`] = fixture.values.map((value, i) => {
      const key = fixture.keyOf?.(value, i) ?? null;
      return {
        topic,
        partition,
        offset: first + i,
        timestamp: 1_763_700_000_000 + i,
        timestampType: 'CREATE_TIME',
        key: key === null ? undefined : Buffer.from(key).toString('base64'),
        value: base64Of(value),
        headers: Object.entries(fixture.headers ?? {}).map(([name, text]) => ({ [name]: [...Buffer.from(text)] })),
      };
    });
  }
  return eventSource === 'aws:kafka'
    ? {
        eventSource,
        eventSourceArn: 'arn:aws:kafka:ap-northeast-2:123456789012:cluster/adstream/abcd',
        bootstrapServers: 'b-1.adstream.kafka.ap-northeast-2.amazonaws.com:9098',
        records,
      }
    : { eventSource, bootstrapServers: 'pkc-test.ap-northeast-2.aws.confluent.cloud:9092', records };
}

/** Shorthand: one partition of `ad-events`. */
export function adEventsBatch(values: readonly FixtureValue[], partition = 0, firstOffset = 0): LambdaKafkaEvent {
  return kafkaEvent('ad-events', [{ partition, firstOffset, values }]);
}

/** Shorthand: one partition of `compensation-events`. */
export function compensationBatch(values: readonly FixtureValue[], partition = 0, firstOffset = 0): LambdaKafkaEvent {
  return kafkaEvent('compensation-events', [{ partition, firstOffset, values }]);
}

/** A valid CLICK on `campaignId` of `advertiserId` at `eventTs` (default: now). */
export function clickEvent(campaignId: number, advertiserId: number, overrides: Partial<Record<keyof AdEvent, unknown>> = {}): AdEvent {
  return {
    event_id: `click-${randomUUID()}`,
    event_type: 'CLICK',
    event_ts: Date.now(),
    campaign_id: campaignId,
    advertiser_id: advertiserId,
    product_id: 9000 + campaignId,
    ad_id: `ad-${campaignId}`,
    placement: 'home_top',
    category: 'shoes',
    device_id: `device-${randomUUID()}`,
    session_id: `session-${randomUUID()}`,
    user_id: null,
    actual_price: '120.00',
    revenue_amount: null,
    ...overrides,
  } as AdEvent;
}

/** A valid compensation event refunding `duplicate` (a click event). */
export function compensationEvent(
  duplicate: Pick<AdEvent, 'event_id' | 'event_ts' | 'advertiser_id' | 'campaign_id' | 'ad_id' | 'device_id'>,
  overrides: Partial<Record<keyof CompensationEvent, unknown>> = {},
): CompensationEvent {
  return {
    compensation_id: `comp-${duplicate.event_id}`.slice(0, 64),
    duplicate_event_id: duplicate.event_id,
    original_event_id: `orig-${duplicate.event_id}`.slice(0, 64),
    advertiser_id: duplicate.advertiser_id,
    campaign_id: duplicate.campaign_id,
    ad_id: duplicate.ad_id,
    device_id: duplicate.device_id,
    duplicate_event_ts: duplicate.event_ts,
    original_event_ts: duplicate.event_ts - 30_000,
    refund_amount: '999.00',
    reason: 'DUPLICATE_CLICK_DETECTED',
    compensation_type: 'BALANCE_REFUND',
    ...overrides,
  } as CompensationEvent;
}
