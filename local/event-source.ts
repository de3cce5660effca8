// A local stand-in for Lambda's Kafka event source mapping (self-managed Apache Kafka, which is
// what Confluent Cloud is to Lambda): it consumes one topic with the trigger's consumer group and
// invokes a handler function with batches in the event shape Lambda delivers, with Lambda's
// delivery rules. Used by the end-to-end tests and by local runs of the pipeline.
//
// What it follows, from AWS's documentation:
// - "Using Lambda with self-managed Apache Kafka"
//   https://docs.aws.amazon.com/lambda/latest/dg/with-kafka.html and
//   "Processing self-managed Apache Kafka messages with Lambda"
//   https://docs.aws.amazon.com/lambda/latest/dg/with-kafka-process.html — the event payload:
//   `eventSource: "SelfManagedKafka"`, `bootstrapServers` (comma-separated), `records` keyed
//   `"<topic>-<partition>"`, each record with `topic`, `partition`, `offset`, `timestamp`,
//   `timestampType`, base64 `key` and `value`, and `headers` as a list of single-entry objects
//   whose values are arrays of byte values; the customizable consumer group id; starting
//   position TRIM_HORIZON or LATEST for a group without committed offsets.
// - "Lambda event source mappings", batching behaviour
//   https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventsourcemapping.html#invocation-eventsourcemapping-batching
//   — a batch is sent when it reaches the batch size, when the batching window has passed
//   (500 ms by default for Kafka) or when the payload would exceed 6 MB.
// - "Configuring error handling controls for Kafka event sources"
//   https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html — by default
//   (maximum retry attempts and record age -1) a batch whose invocation fails is retried without
//   limit; the partition waits, since offsets are committed only after the function returns.
//   Together with the pages above: batches of one partition are processed in order, one at a
//   time, so concurrency is at most one invocation per partition.
//
// Deliberate simplifications: one invocation carries one partition's records (Lambda may mix
// partitions in one event; the handlers are tested with such events by fixture); retries go on
// until the mapping is stopped (no record expiry, no on-failure destination).
import { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { LambdaKafkaEvent, LambdaKafkaRecord } from '../lambdas/shared/kafka-event';
import type { WorkerKafkaTrigger } from '../stacks/worker-triggers';
import { KafkaConnection, kafkaClient } from './kafka-broker';

/** Lambda's invocation payload limit for event source mappings. */
export const LAMBDA_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** What the emulated mapping invokes: a Lambda handler taking the Kafka event. */
export type KafkaEventHandler = (event: LambdaKafkaEvent) => Promise<unknown>;

/** The trigger settings the emulator honours (a `WorkerKafkaTrigger`, or a test's own). */
export type EventSourceSettings = Pick<
  WorkerKafkaTrigger,
  'topic' | 'consumerGroupId' | 'batchSize' | 'batchingWindowMs' | 'startingPosition' | 'maxConcurrency'
>;

/** Props of {@link LambdaKafkaEventSource}. */
export interface LambdaKafkaEventSourceProps {
  /** The broker. */
  readonly connection: KafkaConnection;
  /** Topic, group, batch size, window, starting position, concurrency. */
  readonly settings: EventSourceSettings;
  /**
   * The function, one instance shared by every invocation. Give `containers` instead to model
   * Lambda's execution environments.
   */
  readonly handler?: KafkaEventHandler;
  /**
   * Builds the function in a fresh execution environment (its module scope: pool, Redis client).
   * Like Lambda, each environment runs one invocation at a time and is reused afterwards; a new
   * one is made only when every existing one is busy (at most `maxConcurrency`).
   */
  readonly containers?: () => KafkaEventHandler;
  /** First wait after a failed invocation; doubles up to `maxRetryDelayMs`. @default 100 */
  readonly retryDelayMs?: number;
  /** Longest wait between retries of a failing batch. @default 2000 */
  readonly maxRetryDelayMs?: number;
  /** Called after each invocation (for logs and tests). @default none */
  readonly onInvocation?: (outcome: InvocationOutcome) => void;
}

/** One invocation of the handler and how it ended. */
export interface InvocationOutcome {
  /** The event it got. */
  readonly event: LambdaKafkaEvent;
  /** Topic-partition of the batch. */
  readonly topicPartition: string;
  /** First and last offset of the batch. */
  readonly firstOffset: number;
  /** Last offset of the batch. */
  readonly lastOffset: number;
  /** Which attempt at this batch it was (1 = first delivery). */
  readonly attempt: number;
  /** The error it threw, if it threw. */
  readonly error?: unknown;
  /** Whether the offset after the batch was committed. */
  readonly committed: boolean;
}

/** Counters of a running mapping. */
export interface EventSourceStats {
  /** Handler invocations, retries included. */
  invocations: number;
  /** Invocations that threw. */
  failures: number;
  /** Batches whose offsets were committed. */
  committedBatches: number;
  /** Records in committed batches. */
  committedRecords: number;
  /** Most invocations running at once, per partition (must never exceed 1) and overall. */
  maxInFlightPerPartition: number;
  /** Most invocations running at once over all partitions. */
  maxInFlight: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The Lambda record of one Kafka message. */
export function lambdaRecordOf(topic: string, partition: number, message: KafkaMessage, timestampType: string): LambdaKafkaRecord {
  const headers: Array<Record<string, number[]>> = [];
  for (const [name, raw] of Object.entries(message.headers ?? {})) {
    for (const value of Array.isArray(raw) ? raw : [raw]) {
      if (value === undefined) continue;
      headers.push({ [name]: [...(Buffer.isBuffer(value) ? value : Buffer.from(String(value)))] });
    }
  }
  return {
    topic,
    partition,
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    timestampType,
    ...(message.key === null || message.key === undefined ? {} : { key: message.key.toString('base64') }),
    value: message.value === null || message.value === undefined ? null : message.value.toString('base64'),
    headers,
  };
}

/** `CREATE_TIME` or `LOG_APPEND_TIME`, from the record batch a message came in. */
export function timestampTypeOf(message: KafkaMessage): string {
  const context = (message as KafkaMessage & { batchContext?: { timestampType?: number } }).batchContext;
  return context?.timestampType === 1 ? 'LOG_APPEND_TIME' : 'CREATE_TIME';
}

function approximateSize(record: LambdaKafkaRecord): number {
  return JSON.stringify(record).length;
}

/**
 * One emulated Kafka event source mapping: a kafkajs consumer in the trigger's group that
 * invokes `handler` as Lambda does. `start()` returns once the group has its partitions.
 */
export class LambdaKafkaEventSource {
  /** Counters, live. */
  public readonly stats: EventSourceStats = {
    invocations: 0,
    failures: 0,
    committedBatches: 0,
    committedRecords: 0,
    maxInFlightPerPartition: 0,
    maxInFlight: 0,
  };

  private readonly consumer: Consumer;
  private readonly props: LambdaKafkaEventSourceProps;
  private readonly inFlight = new Map<string, number>();
  private readonly idle: KafkaEventHandler[] = [];
  /** Execution environments created so far (with `containers`). */
  public environments = 0;
  private readonly windowStart = new Map<string, number>();
  private running = 0;
  private killed = false;
  private stopping = false;

  constructor(props: LambdaKafkaEventSourceProps) {
    const { settings } = props;
    if (!Number.isInteger(settings.batchSize) || settings.batchSize < 1 || settings.batchSize > 10_000) {
      throw new RangeError(`batchSize ${settings.batchSize} is out of range; Lambda takes 1 to 10000 records per batch for Kafka`);
    }
    if ((props.handler === undefined) === (props.containers === undefined)) {
      throw new TypeError('give exactly one of handler (shared) or containers (one function per execution environment)');
    }
    this.props = props;
    this.consumer = kafkaClient(props.connection, `lambda-esm-${settings.consumerGroupId}`).consumer({
      groupId: settings.consumerGroupId,
      sessionTimeout: 30_000,
      rebalanceTimeout: 60_000,
      heartbeatInterval: 3_000,
      // The broker holds an empty fetch up to the window; records already there come at once.
      maxWaitTimeInMs: Math.max(10, Math.min(settings.batchingWindowMs, 1_000)),
      allowAutoTopicCreation: false,
      retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
  }

  /** Joins the group, subscribes from the starting position, and waits for partition assignment. */
  async start(): Promise<void> {
    const { settings } = this.props;
    const assigned = new Promise<void>((resolve) => {
      const off = this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [settings.topic], fromBeginning: settings.startingPosition === 'TRIM_HORIZON' });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.max(1, settings.maxConcurrency),
      eachBatch: (payload) => this.onFetch(payload),
    });
    await assigned;
  }

  /** Stops after the batches in flight finish (committing the ones that succeed), and leaves the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.consumer.disconnect();
  }

  /**
   * Ends the mapping as a crash would between the handler's return and the offset commit: from
   * this call on nothing is committed, not even for the invocation running now, and the consumer
   * goes away. The next mapping in the group gets those records again. Safe to call from inside
   * the handler (do not await it there).
   */
  kill(): Promise<void> {
    this.killed = true;
    this.stopping = true;
    return this.consumer.disconnect();
  }

  private async onFetch({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { settings } = this.props;
    const topicPartition = `${batch.topic}-${batch.partition}`;
    if (batch.messages.length === 0) return;

    // Gather up to the batch size within the window: unresolved records are fetched again with
    // whatever arrived since, until the batch is full or the window has passed.
    const now = Date.now();
    const started = this.windowStart.get(topicPartition) ?? now;
    this.windowStart.set(topicPartition, started);
    if (batch.messages.length < settings.batchSize && now - started < settings.batchingWindowMs && !this.stopping) {
      await sleep(Math.min(50, settings.batchingWindowMs - (now - started)));
      return;
    }
    this.windowStart.delete(topicPartition);

    let offset = 0;
    while (offset < batch.messages.length) {
      if (this.stopping || !isRunning() || isStale()) return;
      if (offset > 0 && batch.messages.length - offset < settings.batchSize) {
        // A partial batch after full ones gets its own window: leave it unresolved, so it is
        // fetched again with whatever arrives meanwhile.
        this.windowStart.set(topicPartition, Date.now());
        return;
      }
      const records: LambdaKafkaRecord[] = [];
      let bytes = 0;
      while (offset < batch.messages.length && records.length < settings.batchSize) {
        const message = batch.messages[offset];
        const record = lambdaRecordOf(batch.topic, batch.partition, message, timestampTypeOf(message));
        const size = approximateSize(record);
        if (records.length > 0 && bytes + size > LAMBDA_MAX_PAYLOAD_BYTES) break;
        records.push(record);
        bytes += size;
        offset++;
      }
      const event: LambdaKafkaEvent = {
        eventSource: 'SelfManagedKafka',
        bootstrapServers: this.props.connection.bootstrap,
        records: { [topicPartition]: records },
      };
      const delivered = await this.deliver(event, topicPartition, heartbeat);
      if (!delivered) return;
      resolveOffset(String(records[records.length - 1].offset));
    }
  }

  /** Invokes until the handler succeeds, then commits; false when stopped before committing. */
  private async deliver(event: LambdaKafkaEvent, topicPartition: string, heartbeat: () => Promise<void>): Promise<boolean> {
    const records = event.records[topicPartition];
    const firstOffset = records[0].offset;
    const lastOffset = records[records.length - 1].offset;
    let delay = this.props.retryDelayMs ?? 100;
    for (let attempt = 1; ; attempt++) {
      if (this.killed || (this.stopping && attempt > 1)) return false;
      let error: unknown;
      let threw = false;
      const beat = setInterval(() => void heartbeat().catch(() => undefined), 3_000);
      this.enter(topicPartition);
      const handler = this.acquire();
      try {
        this.stats.invocations++;
        await handler(event);
      } catch (caught) {
        threw = true;
        error = caught;
        this.stats.failures++;
      } finally {
        this.release(handler);
        this.leave(topicPartition);
        clearInterval(beat);
      }
      let committed = false;
      if (!threw && !this.killed) {
        const [topic, partition] = [records[0].topic, records[0].partition];
        try {
          await this.consumer.commitOffsets([{ topic, partition, offset: String(lastOffset + 1) }]);
          committed = true;
          this.stats.committedBatches++;
          this.stats.committedRecords += records.length;
        } catch (commitError) {
          // Lost the partition in a rebalance: its next owner redelivers (at least once).
          error = commitError;
        }
      }
      this.props.onInvocation?.({ event, topicPartition, firstOffset, lastOffset, attempt, error, committed });
      if (!threw) return committed;
      await sleep(delay);
      delay = Math.min(delay * 2, this.props.maxRetryDelayMs ?? 2_000);
      await heartbeat().catch(() => undefined);
    }
  }

  private acquire(): KafkaEventHandler {
    if (this.props.handler) return this.props.handler;
    const reused = this.idle.pop();
    if (reused) return reused;
    this.environments++;
    return (this.props.containers as () => KafkaEventHandler)();
  }

  private release(handler: KafkaEventHandler): void {
    if (!this.props.handler) this.idle.push(handler);
  }

  private enter(topicPartition: string): void {
    const count = (this.inFlight.get(topicPartition) ?? 0) + 1;
    this.inFlight.set(topicPartition, count);
    this.running++;
    this.stats.maxInFlightPerPartition = Math.max(this.stats.maxInFlightPerPartition, count);
    this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.running);
  }

  private leave(topicPartition: string): void {
    this.inFlight.set(topicPartition, (this.inFlight.get(topicPartition) ?? 1) - 1);
    this.running--;
  }
}

/** A trigger with its topic and group renamed under `prefix` (tests sharing one broker). */
export function namespacedSettings(trigger: EventSourceSettings, prefix: string): EventSourceSettings {
  return { ...trigger, topic: `${prefix}${trigger.topic}`, consumerGroupId: `${prefix}${trigger.consumerGroupId}` };
}

/**
 * Committed offsets of `groupId` on `topic` and the topic's end offsets, per partition; a
 * partition is caught up when the committed offset equals the end offset.
 */
export async function groupLag(connection: KafkaConnection, groupId: string, topic: string): Promise<{ partition: number; committed: number; end: number }[]> {
  const admin = kafkaClient(connection, 'adstream-local-lag').admin();
  await admin.connect();
  try {
    const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
    const byPartition = new Map(committed[0]?.partitions.map((p) => [p.partition, Number(p.offset)]) ?? []);
    return ends
      .map((end) => ({ partition: end.partition, committed: Math.max(0, byPartition.get(end.partition) ?? 0), end: Number(end.high) }))
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}

/** Waits until `groupId` has committed every record of `topic` produced so far. */
export async function waitUntilCaughtUp(connection: KafkaConnection, groupId: string, topic: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: { partition: number; committed: number; end: number }[] = [];
  while (Date.now() < deadline) {
    last = await groupLag(connection, groupId, topic);
    if (last.every((p) => p.committed >= p.end)) return;
    await sleep(200);
  }
  throw new Error(`group ${groupId} did not catch up on ${topic} within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}
