/**
 * The broker for a Kafka test file: the run's broker (started by jest globalSetup, named by the
 * environment), or — when the file runs without it, e.g. `npx jest --globalSetup=` — a broker of
 * its own. Every file works in its own namespace (topic and group prefix) so files running at
 * the same time on one broker never see each other's records, and deletes its topics afterwards.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { TopicConfig } from '../../../config/schema';
import {
  createTopics,
  KafkaConnection,
  kafkaClient,
  kafkaConnectionFromEnv,
  LocalKafkaBroker,
  startLocalKafkaBroker,
  TopicSpec,
} from '../../../local/kafka-broker';
import { javaClasspath } from '../../../scripts/java';

const run = promisify(execFile);

/** A test file's view of the broker. */
export interface KafkaTestContext {
  /** The connection (valid inside hooks and tests). */
  readonly connection: KafkaConnection;
  /** This file's topic and group prefix, `t-<random>-`. */
  readonly prefix: string;
  /** Creates topics named `<prefix><name>`; returns the full names. */
  topics(specs: ReadonlyArray<{ name: string; config: TopicConfig; extra?: Record<string, string> }>): Promise<string[]>;
}

/** Registers the hooks that give a test file a broker connection and a namespace. */
export function kafkaForTests(): KafkaTestContext {
  const prefix = `t-${randomBytes(4).toString('hex')}-`;
  const created: string[] = [];
  let connection: KafkaConnection | undefined;
  let own: LocalKafkaBroker | undefined;
  beforeAll(async () => {
    connection = kafkaConnectionFromEnv();
    if (!connection) {
      own = await startLocalKafkaBroker();
      connection = own;
    }
  }, 300_000);
  afterAll(async () => {
    if (connection && created.length > 0 && !own) {
      const admin = kafkaClient(connection, 'test-cleanup').admin();
      await admin.connect();
      await admin.deleteTopics({ topics: created, timeout: 30_000 }).catch(() => undefined);
      await admin.disconnect();
    }
    await own?.stop();
  }, 120_000);
  return {
    prefix,
    get connection() {
      if (!connection) throw new Error('the broker connection is set in beforeAll; use it inside hooks and tests');
      return connection;
    },
    async topics(specs) {
      const names: string[] = [];
      for (const spec of specs) {
        const topic: TopicSpec = { topic: `${prefix}${spec.name}`, config: spec.config };
        await createTopics(this.connection, [topic], spec.extra ?? {});
        created.push(topic.topic);
        names.push(topic.topic);
      }
      return names;
    },
  };
}

/** A message to produce: value as JSON (object), exact bytes (Buffer) or a tombstone (null). */
export interface TestMessage {
  readonly key?: string | Buffer | null;
  readonly value: object | Buffer | null;
  readonly partition?: number;
  readonly headers?: IHeaders;
}

/** Produces messages the way the services do (idempotent producer, acks=all), in order. */
export async function produce(connection: KafkaConnection, topic: string, messages: readonly TestMessage[]): Promise<void> {
  const producer = kafkaClient(connection, 'test-producer').producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 500) {
      await producer.send({
        topic,
        acks: -1,
        messages: messages.slice(i, i + 500).map((m) => ({
          key: m.key ?? null,
          value: m.value === null ? null : Buffer.isBuffer(m.value) ? m.value : JSON.stringify(m.value),
          partition: m.partition,
          headers: m.headers,
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** A message read back, with its coordinates and the record batch it came in. */
export interface ReadMessage {
  readonly partition: number;
  readonly message: KafkaMessage & {
    readonly batchContext: { producerId: string; producerEpoch: number; firstSequence: number; inTransaction: boolean; timestampType: number };
  };
}

/** Reads every record of `topic` from the beginning until `count` have arrived (fresh group). */
export async function readAll(connection: KafkaConnection, topic: string, count: number, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const consumer = kafkaClient(connection, 'test-reader').consumer({ groupId: `reader-${randomBytes(6).toString('hex')}`, maxWaitTimeInMs: 200 });
  const seen: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let done: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen.push({ partition, message: message as ReadMessage['message'] });
        if (seen.length >= count) done();
      },
    });
    if (count > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    // Anything beyond `count` would be a duplicate: give it a moment to show up.
    await new Promise((resolve) => setTimeout(resolve, 500));
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

/** Record batches of one partition's log on disk, as Kafka's own log dump tool prints them. */
export interface DumpedBatch {
  readonly baseOffset: number;
  readonly count: number;
  readonly producerId: number;
  readonly producerEpoch: number;
  readonly baseSequence: number;
  readonly isTransactional: boolean;
}

/**
 * Reads the broker's log segments of `topic`-`partition` with `kafka.tools.DumpLogSegments`
 * (shipped in the broker's own jars): what the producer actually wrote, batch by batch.
 */
export async function dumpLog(connection: KafkaConnection, topic: string, partition: number): Promise<DumpedBatch[]> {
  const dir = join(connection.logDir, `${topic}-${partition}`);
  const segments = readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => join(dir, f));
  const { stdout } = await run('java', ['-cp', javaClasspath('kafka-broker'), 'kafka.tools.DumpLogSegments', '--files', segments.join(',')], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const batches: DumpedBatch[] = [];
  for (const line of stdout.split('\n')) {
    const field = (name: string) => new RegExp(`\\b${name}: (-?\\w+)`).exec(line)?.[1];
    if (!line.startsWith('baseOffset:')) continue;
    batches.push({
      baseOffset: Number(field('baseOffset')),
      count: Number(field('count')),
      producerId: Number(field('producerId')),
      producerEpoch: Number(field('producerEpoch')),
      baseSequence: Number(field('baseSequence')),
      isTransactional: field('isTransactional') === 'true',
    });
  }
  return batches;
}

/** Polls `check` until it returns true or the time is up. */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** One completed request from the broker's request log. */
export interface LoggedRequest {
  readonly requestHeader: { readonly requestApiKeyName: string; readonly clientId: string; readonly requestApiVersion: number };
  readonly request: Record<string, unknown>;
  readonly response: Record<string, unknown>;
}

/** The requests the broker completed so far, as it logged them (header, body, response). */
export function brokerRequests(connection: KafkaConnection, apiKeyName?: string): LoggedRequest[] {
  if (!connection.requestLog) throw new Error('this broker has no request log (not started by local/kafka-broker.ts)');
  const marker = 'Completed request:';
  return readFileSync(connection.requestLog, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith(marker))
    .map((line) => JSON.parse(line.slice(marker.length)) as LoggedRequest)
    .filter((entry) => apiKeyName === undefined || entry.requestHeader.requestApiKeyName === apiKeyName);
}

/**
 * The requests matching `accept`, once at least `atLeast` of them are in the broker's request log.
 * The broker logs a request after it has sent the response, so a client can hold its answer
 * before the line is written: poll (bounded), then look once more for late extras.
 */
export async function awaitBrokerRequests(
  connection: KafkaConnection,
  apiKeyName: string,
  accept: (entry: LoggedRequest) => boolean,
  atLeast = 1,
  timeoutMs = 15_000,
): Promise<LoggedRequest[]> {
  const deadline = Date.now() + timeoutMs;
  const matching = () => brokerRequests(connection, apiKeyName).filter(accept);
  while (matching().length < atLeast && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  await new Promise((resolve) => setTimeout(resolve, 250));
  return matching();
}
