import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { Kafka, logLevel, Producer } from 'kafkajs';
import type { Pool } from 'pg';
import { describeCause, OutboxPublishError } from './errors';
import { guardCheckedOutClient } from './db';
import { safeText } from './dead-letter';
import { Credentials, readCredentials } from './secrets';

/** What an outbox row announces. */
export type OutboxKind = 'BUDGET_WARNING' | 'CAMPAIGN_PAUSED' | 'CAMPAIGN_RESUMED';

/** Where outbox rows go. */
export type OutboxDestination = 'sns' | 'kafka';

const CAMPAIGN_STATUS_CHANGES = {
  CAMPAIGN_PAUSED: { status: 'PAUSED', reason: 'BUDGET_EXHAUSTED', eventIdPrefix: 'campaign-paused' },
  CAMPAIGN_RESUMED: { status: 'ACTIVE', reason: 'BUDGET_RESET', eventIdPrefix: 'campaign-resumed' },
} as const;

/**
 * The SQL select list (kind, idempotency_key, payload) of one campaign status outbox row, for
 * a row `alias` carrying the campaign's columns (including `status_seq`, the campaign's count
 * of worker status changes, bumped by the change being announced) and a budget-day SQL
 * expression `day`. Key and event id derive from the campaign, the day and `status_seq`: a
 * retried transaction writes the same event (the unique key keeps it once), and a second pause
 * on the same day (after a manual resume) is a new event, announced too. `event_ts` is the
 * clock when the row is written, after the writer's locks: a change that undoes another one saw
 * it committed, so it is stamped later (consumers keep a campaign's latest event_ts), which a
 * transaction's start time (now()) does not ensure.
 */
export function campaignStatusOutboxColumns(kind: keyof typeof CAMPAIGN_STATUS_CHANGES, alias: string, day: string): string {
  const change = CAMPAIGN_STATUS_CHANGES[kind];
  return `'${kind}',
         '${kind}:' || ${alias}.campaign_id || ':' || ${day} || ':' || ${alias}.status_seq,
         jsonb_build_object(
           'event_id', '${change.eventIdPrefix}-' || ${alias}.campaign_id || '-' || to_char(${day}, 'YYYYMMDD') || '-' || ${alias}.status_seq,
           'event_type', '${kind}',
           'event_ts', floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint,
           'campaign_id', ${alias}.campaign_id, 'advertiser_id', ${alias}.advertiser_id, 'status', '${change.status}',
           'product_id', ${alias}.product_id, 'placement', ${alias}.placement, 'category', ${alias}.category,
           'bid_price', round(${alias}.bid_price, 2)::text, 'reason', '${change.reason}')`;
}

/** Destinations of each kind: warnings are alerts only; status changes also feed the ranking. */
export const DESTINATIONS_OF: Readonly<Record<OutboxKind, readonly OutboxDestination[]>> = {
  BUDGET_WARNING: ['sns'],
  CAMPAIGN_PAUSED: ['sns', 'kafka'],
  CAMPAIGN_RESUMED: ['sns', 'kafka'],
};

/** One outbox row on its way out. */
export interface OutboxMessage {
  /** `outbox.id` (bigint as a string). */
  readonly id: string;
  /** Kind of the row. */
  readonly kind: OutboxKind;
  /** Unique key consumers deduplicate on (SNS message attribute, Kafka header). */
  readonly idempotencyKey: string;
  /** The JSON payload; for campaign events a `campaignEventContract` record. */
  readonly payload: Record<string, unknown>;
}

/** What a publisher managed: the ids it delivered, in order, and the error that stopped it. */
export interface PublishResult {
  /** Ids delivered; the drain marks exactly these. */
  readonly publishedIds: readonly string[];
  /** Why it stopped before the end, if it did. */
  readonly error?: unknown;
}

/**
 * Sends messages in order and stops at the first failure (so a later status change can never
 * overtake an earlier one). Injectable: tests pass a local fake.
 */
export type OutboxPublisher = (messages: readonly OutboxMessage[], options?: PublishOptions) => Promise<PublishResult>;

/** Options of one publish call. */
export interface PublishOptions {
  /** Aborted when the caller stops waiting: stop sending, report what was delivered. */
  readonly signal?: AbortSignal;
}

/** The configured publishers; a missing one leaves its rows unpublished. */
export interface OutboxPublishers {
  /** Alerts topic (e-mail / Slack). */
  readonly sns?: OutboxPublisher;
  /** `campaign-events` producer. */
  readonly kafka?: OutboxPublisher;
}

/** Outcome of one drain. */
export interface DrainResult {
  /** Rows newly marked published, per destination. */
  readonly published: Record<OutboxDestination, number>;
  /** Destinations that failed in this drain (rows stay for the next one). */
  readonly failures: ReadonlyArray<{ readonly destination: OutboxDestination; readonly error: string }>;
}

/** Options of a drain. */
export interface DrainOptions {
  /** Rows per publish call. @default 100 */
  readonly batchSize?: number;
  /** Upper bound of publish calls per destination, to bound the invocation time. @default 10 */
  readonly maxBatches?: number;
  /**
   * Stops the drain when aborted: no new batch starts, the publisher is told to stop, and rows
   * not confirmed stay pending for the next drain (a send cut short may still have arrived:
   * delivery is at least once, consumers deduplicate on the idempotency key).
   */
  readonly signal?: AbortSignal;
}

const PENDING: Record<OutboxDestination, string> = {
  sns: 'sns_published_at IS NULL',
  kafka: `kafka_published_at IS NULL AND kind IN ('CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED')`,
};

const MARK: Record<OutboxDestination, string> = {
  sns: `sns_published_at = now(),
        published_at = CASE WHEN kind = 'BUDGET_WARNING' OR kafka_published_at IS NOT NULL THEN now() END`,
  kafka: `kafka_published_at = now(),
          published_at = CASE WHEN sns_published_at IS NOT NULL THEN now() END`,
};

/**
 * Publishes unpublished outbox rows to every configured destination and marks them, per
 * destination. The destination's `outbox_publishers` row and the rows being sent are locked
 * `FOR UPDATE SKIP LOCKED` while they are sent and marked in the same transaction, so concurrent drains never send a row twice; a failed send leaves the row
 * unpublished (with `attempts` and `last_error`) for the next drain. Never throws for a
 * publisher failure; throws only if Postgres fails.
 */
export async function drainOutbox(pool: Pool, publishers: OutboxPublishers, options: DrainOptions = {}): Promise<DrainResult> {
  const batchSize = options.batchSize ?? 100;
  const maxBatches = options.maxBatches ?? 10;
  const published: Record<OutboxDestination, number> = { sns: 0, kafka: 0 };
  const failures: { destination: OutboxDestination; error: string }[] = [];
  for (const destination of ['sns', 'kafka'] as const) {
    const publish = publishers[destination];
    if (!publish) continue;
    for (let batch = 0; batch < maxBatches; batch++) {
      if (options.signal?.aborted) break;
      const step = await drainBatch(pool, destination, publish, batchSize, options.signal);
      published[destination] += step.published;
      if (step.error !== undefined) failures.push({ destination, error: step.error });
      if (step.error !== undefined || step.published < batchSize) break;
    }
  }
  return { published, failures };
}

async function drainBatch(
  pool: Pool,
  destination: OutboxDestination,
  publish: OutboxPublisher,
  batchSize: number,
  signal: AbortSignal | undefined,
): Promise<{ published: number; error?: string }> {
  const client = await pool.connect();
  const release = guardCheckedOutClient(client);
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    // One drain at a time per destination (the others skip), so rows go out in id order.
    const lock = await client.query('SELECT destination FROM outbox_publishers WHERE destination = $1 FOR UPDATE SKIP LOCKED', [destination]);
    if (lock.rows.length === 0) {
      await client.query('COMMIT');
      return { published: 0 };
    }
    const rows = await client.query<{ id: string; kind: OutboxKind; idempotency_key: string; payload: Record<string, unknown>; spend_date: string }>(
      `SELECT id, kind, idempotency_key, payload, spend_date::text FROM outbox
        WHERE ${PENDING[destination]}
        ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [batchSize],
    );
    if (rows.rows.length === 0) {
      await client.query('COMMIT');
      return { published: 0 };
    }
    const messages = rows.rows.map((row) => ({
      id: row.id,
      kind: row.kind,
      idempotencyKey: row.idempotency_key,
      payload: row.payload,
    }));
    let result: PublishResult;
    try {
      result = await publish(messages, { signal });
    } catch (error) {
      result = { publishedIds: [], error };
    }
    const delivered = new Set(result.publishedIds);
    const ids = messages.filter((m) => delivered.has(m.id)).map((m) => m.id);
    // The outbox is partitioned by the day of its key: the marks name the rows' days, so the
    // update touches their partitions only (ids are unique across days: one sequence).
    const dayOf = new Map(rows.rows.map((row) => [row.id, row.spend_date]));
    if (ids.length > 0) {
      const days = [...new Set(ids.map((id) => dayOf.get(id) as string))];
      await client.query(`UPDATE outbox SET ${MARK[destination]} WHERE id = ANY($1::bigint[]) AND spend_date = ANY($2::date[])`, [ids, days]);
    }
    let error: string | undefined;
    if (result.error !== undefined || ids.length < messages.length) {
      error = safeText(`${destination}: ${describeCause(result.error ?? 'publisher skipped rows')}`, 500);
      const failed = messages.find((m) => !delivered.has(m.id));
      if (failed) {
        await client.query('UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1 AND spend_date = $3::date', [
          failed.id,
          error,
          dayOf.get(failed.id),
        ]);
      }
    }
    await client.query('COMMIT');
    return { published: ids.length, error };
  } catch (error) {
    await client.query('ROLLBACK').catch((rollbackError: Error) => {
      broken = rollbackError;
    });
    throw error;
  } finally {
    release(broken);
  }
}

/** Time one SNS publish may take before the drain gives up on it (the row stays pending). */
const SNS_TIMEOUT_MS = 3000;

function subjectOf(message: OutboxMessage): string {
  const campaign = String(message.payload.campaign_id ?? '?');
  switch (message.kind) {
    case 'BUDGET_WARNING':
      return `Campaign ${campaign}: 90% of daily budget spent`;
    case 'CAMPAIGN_PAUSED':
      return `Campaign ${campaign} paused: daily budget exhausted`;
    case 'CAMPAIGN_RESUMED':
      return `Campaign ${campaign} resumed: new budget day`;
  }
}

/** Publishes to the alerts SNS topic, one message per row, idempotency key as a message attribute. */
export function createSnsPublisher(topicArn: string, client: SNSClient = new SNSClient({ maxAttempts: 2 })): OutboxPublisher {
  return async (messages, options = {}) => {
    const publishedIds: string[] = [];
    for (const message of messages) {
      if (options.signal?.aborted) {
        return { publishedIds, error: new OutboxPublishError('sns', `stopped before outbox row ${message.id}: out of time`) };
      }
      const timeout = AbortSignal.timeout(SNS_TIMEOUT_MS);
      try {
        await client.send(
          new PublishCommand({
            TopicArn: topicArn,
            Subject: subjectOf(message),
            Message: JSON.stringify({ kind: message.kind, idempotency_key: message.idempotencyKey, ...message.payload }),
            MessageAttributes: {
              idempotency_key: { DataType: 'String', StringValue: message.idempotencyKey },
              kind: { DataType: 'String', StringValue: message.kind },
            },
          }),
          { abortSignal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout },
        );
      } catch (cause) {
        return { publishedIds, error: new OutboxPublishError('sns', `publish of outbox row ${message.id} failed`, { cause }) };
      }
      publishedIds.push(message.id);
    }
    return { publishedIds };
  };
}

/** Settings of the `campaign-events` producer. */
export interface KafkaPublisherProps {
  /** Bootstrap servers (`host:port`). */
  readonly brokers: readonly string[];
  /** Secret with the Confluent API key and secret as `{"username","password"}`. */
  readonly secretArn: string;
  /** Topic, normally `campaign-events`. */
  readonly topic: string;
  /** Schema Registry id; when set, values get the Confluent wire header. */
  readonly schemaId?: number;
  /** Where the credentials come from. @default the secret `secretArn` */
  readonly credentials?: () => Promise<Credentials>;
  /** TLS to the brokers (Confluent Cloud requires it). @default true */
  readonly ssl?: boolean;
}

/** Encodes a campaign event value, with the Confluent wire header when a schema id is known. */
export function encodeCampaignEventValue(payload: Record<string, unknown>, schemaId?: number): Buffer {
  const json = Buffer.from(JSON.stringify(payload), 'utf8');
  if (schemaId === undefined) return json;
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, json]);
}

/** An {@link OutboxPublisher} that holds a broker connection between calls. */
export interface KafkaOutboxPublisher extends OutboxPublisher {
  /**
   * Disconnects the producer; later calls publish nothing and report an error (their rows stay
   * pending). A Lambda container never calls it; a process that must exit does (the local
   * pipeline, tests): the connection would keep it alive for as long as the broker runs.
   */
  close(): Promise<void>;
}

/**
 * Publishes campaign status events to Kafka with an idempotent producer (acks=all). Key = the
 * campaign id (so events of one campaign stay ordered), header `idempotency-key`. A batch is
 * all-or-nothing; on failure the producer is dropped and rebuilt on the next drain.
 */
export function createKafkaPublisher(props: KafkaPublisherProps): KafkaOutboxPublisher {
  let producer: Promise<Producer> | undefined;
  let closed = false;
  /** Calls and kafkajs sends not settled yet, and producers being disconnected (what close() waits for). */
  const inFlight = new Set<Promise<unknown>>();
  const retiring = new Set<Promise<void>>();
  const settle = <T>(set: Set<Promise<T>>, work: Promise<T>): void => {
    set.add(work);
    const forget = () => set.delete(work);
    work.then(forget, forget);
  };
  // Disconnected once the calls and sends under way have settled: a send still retrying, or a
  // call about to send, would connect a producer again that was disconnected under it.
  const retire = (retired: Promise<Producer>): void => {
    const sends = [...inFlight];
    settle(
      retiring,
      Promise.allSettled(sends)
        .then(() => retired)
        .then((p) => p.disconnect())
        .catch(() => undefined),
    );
  };
  const connect = async (): Promise<Producer> => {
    const credentials = await (props.credentials ?? (() => readCredentials(props.secretArn)))();
    const kafka = new Kafka({
      clientId: 'adstream-worker',
      brokers: [...props.brokers],
      ssl: props.ssl ?? true,
      sasl: { mechanism: 'plain', username: credentials.username, password: credentials.password },
      connectionTimeout: 3000,
      requestTimeout: 5000,
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1000 },
      logLevel: logLevel.NOTHING,
    });
    const created = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } });
    await created.connect();
    return created;
  };
  const send: OutboxPublisher = async (messages, options = {}) => {
    try {
      producer ??= connect();
      const active = await producer;
      const sending = active.send({
        topic: props.topic,
        acks: -1,
        messages: messages.map((message) => ({
          key: String(message.payload.campaign_id),
          value: encodeCampaignEventValue(message.payload, props.schemaId),
          headers: { 'idempotency-key': message.idempotencyKey, 'event-kind': message.kind },
        })),
      });
      settle(inFlight, sending);
      await untilAborted(sending, options.signal);
      return { publishedIds: messages.map((m) => m.id) };
    } catch (cause) {
      const broken = producer;
      producer = undefined;
      if (broken) retire(broken);
      return { publishedIds: [], error: new OutboxPublishError('kafka', `send of ${messages.length} campaign events failed`, { cause }) };
    }
  };
  const publish: OutboxPublisher = (messages, options) => {
    if (closed)
      return Promise.resolve({ publishedIds: [], error: new OutboxPublishError('kafka', `publisher closed: ${messages.length} campaign events not sent`) });
    // Tracked from the start: a call still waiting for its producer would send (and connect) on it after a close.
    const call = send(messages, options);
    settle(inFlight, call);
    return call;
  };
  const close = async (): Promise<void> => {
    closed = true;
    const open = producer;
    producer = undefined;
    // A connect still under way is awaited too, so its socket is closed as well.
    if (open) retire(open);
    await Promise.all([...retiring]);
  };
  return Object.assign(publish, { close });
}

/**
 * Waits for `work`, or rejects as soon as `signal` aborts (kafkajs sends cannot be cancelled: the
 * send goes on in the background, and its rows stay pending, so they are sent again later).
 */
async function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    throw new Error('out of time');
  }
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Error('out of time'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    work.catch(() => undefined);
  }
}
