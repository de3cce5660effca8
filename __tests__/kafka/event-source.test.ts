/**
 * GIVEN the run's local Kafka broker and the Lambda event-source emulator
 * WHEN records are produced and consumed through it
 * THEN the broker carries the environment's contract topics as configured, and the emulator
 * delivers Lambda's self-managed Kafka event shape with Lambda's delivery rules.
 */
import { RTB_RANKINGS_TOPIC } from '../../contracts';
import { loadEnvironment } from '../../config';
import { decodeKafkaEvent, LambdaKafkaEvent } from '../../lambdas/shared/kafka-event';
import { contractTopicSpecs, kafkaClient } from '../../local/kafka-broker';
import { EventSourceSettings, groupLag, InvocationOutcome, LambdaKafkaEventSource, waitUntilCaughtUp } from '../../local/event-source';
import { BROKER_ENVIRONMENT } from './support/global-setup';
import { eventually, kafkaForTests, produce } from './support/kafka';

const kafka = kafkaForTests();
const stream = { partitions: 3, retentionMs: 3_600_000, cleanupPolicy: 'delete' } as const;

function settings(topic: string, overrides: Partial<EventSourceSettings> = {}): EventSourceSettings {
  return {
    topic,
    consumerGroupId: `${topic}-group`,
    batchSize: 100,
    batchingWindowMs: 200,
    startingPosition: 'TRIM_HORIZON',
    maxConcurrency: 3,
    ...overrides,
  };
}

const sources: LambdaKafkaEventSource[] = [];
async function startSource(...args: ConstructorParameters<typeof LambdaKafkaEventSource>): Promise<LambdaKafkaEventSource> {
  const source = new LambdaKafkaEventSource(...args);
  sources.push(source);
  await source.start();
  return source;
}

afterEach(async () => {
  while (sources.length > 0) await sources.pop()?.stop();
});

describe('local Kafka broker', () => {
  test('carries every contract topic of the environment with its partitions, cleanup policy and retention', async () => {
    const config = loadEnvironment(BROKER_ENVIRONMENT);
    const admin = kafkaClient(kafka.connection, 'test-admin').admin();
    await admin.connect();
    try {
      const specs = contractTopicSpecs(config);
      const metadata = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) });
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: specs.map((s) => ({ type: 2, name: s.topic, configNames: ['cleanup.policy', 'retention.ms'] })),
      });
      for (const spec of specs) {
        const topic = metadata.topics.find((t) => t.name === spec.topic);
        expect({ topic: spec.topic, partitions: topic?.partitions.length }).toEqual({ topic: spec.topic, partitions: spec.config.partitions });
        const entries = described.resources.find((r) => r.resourceName === spec.topic)?.configEntries ?? [];
        const value = (name: string) => entries.find((e) => e.configName === name)?.configValue;
        expect({ topic: spec.topic, cleanup: value('cleanup.policy'), retention: value('retention.ms') }).toEqual({
          topic: spec.topic,
          cleanup: spec.config.cleanupPolicy,
          retention: String(spec.config.retentionMs),
        });
      }
      expect(specs.map((s) => s.topic)).toEqual(expect.arrayContaining(['ad-events', 'compensation-events', 'campaign-events', RTB_RANKINGS_TOPIC]));
    } finally {
      await admin.disconnect();
    }
  });
});

describe('Lambda Kafka event-source emulator', () => {
  test('delivers the self-managed Kafka event shape, which the handlers decode to the produced bytes', async () => {
    const [topic] = await kafka.topics([{ name: 'shape', config: stream }]);
    const binary = Buffer.from([0, 0, 0, 0, 42, 0x7b, 0x7d]); // wire header (schema 42) + "{}"
    await produce(kafka.connection, topic, [
      { key: 'k-1', value: { n: 1 }, partition: 0, headers: { 'idempotency-key': 'abc', raw: Buffer.from([0xff, 0x00, 0x80]) } },
      { key: null, value: binary, partition: 0 },
      { key: 'gone', value: null, partition: 0 },
      { key: 'k-2', value: { n: 2 }, partition: 2 },
    ]);
    const events: LambdaKafkaEvent[] = [];
    const source = await startSource({ connection: kafka.connection, settings: settings(topic), handler: async (event) => void events.push(event) });
    await waitUntilCaughtUp(kafka.connection, `${topic}-group`, topic);
    expect(source.stats.committedRecords).toBe(4);

    const p0 = events.find((e) => `${topic}-0` in e.records) as LambdaKafkaEvent;
    expect(p0.eventSource).toBe('SelfManagedKafka');
    expect(p0.bootstrapServers).toBe(kafka.connection.bootstrap);
    expect(Object.keys(p0.records)).toEqual([`${topic}-0`]);
    const [first, second, third] = p0.records[`${topic}-0`];
    expect(first).toEqual({
      topic,
      partition: 0,
      offset: 0,
      timestamp: expect.any(Number),
      timestampType: 'CREATE_TIME',
      key: Buffer.from('k-1').toString('base64'),
      value: Buffer.from('{"n":1}').toString('base64'),
      headers: [{ 'idempotency-key': [...Buffer.from('abc')] }, { raw: [0xff, 0x00, 0x80] }],
    });
    expect(Math.abs(first.timestamp! - Date.now())).toBeLessThan(10 * 60_000);
    expect(second).not.toHaveProperty('key');
    expect(second.value).toBe(binary.toString('base64'));
    expect(third.value).toBeNull();

    const decoded = events.flatMap((e) => decodeKafkaEvent(e));
    expect(decoded.every((r) => r.ok)).toBe(true);
    const byOffset = (partition: number, offset: number) =>
      decoded.find((r) => r.ok && r.coordinates.partition === partition && r.coordinates.offset === offset) as Extract<(typeof decoded)[number], { ok: true }>;
    expect(byOffset(0, 0).key?.toString()).toBe('k-1');
    expect(byOffset(0, 0).value?.toString()).toBe('{"n":1}');
    expect(byOffset(0, 0).headers.get('raw')).toEqual(Buffer.from([0xff, 0x00, 0x80]));
    expect(byOffset(0, 1)).toMatchObject({ key: null, schemaId: 42 });
    expect(byOffset(0, 1).value?.toString()).toBe('{}');
    expect(byOffset(0, 2).value).toBeNull();
    expect(byOffset(2, 0).coordinates).toEqual({ topic, partition: 2, offset: 0, timestamp: byOffset(2, 0).timestamp });
  });

  test('starts a new group at TRIM_HORIZON and cuts batches at the batch size, in offset order, each record once', async () => {
    const [topic] = await kafka.topics([{ name: 'batches', config: { ...stream, partitions: 1 } }]);
    await produce(
      kafka.connection,
      topic,
      Array.from({ length: 25 }, (_, i) => ({ key: `k${i}`, value: { i }, partition: 0 })),
    );
    const sizes: number[] = [];
    const offsets: number[] = [];
    await startSource({
      connection: kafka.connection,
      settings: settings(topic, { batchSize: 10 }),
      handler: async (event) => {
        const records = Object.values(event.records).flat();
        sizes.push(records.length);
        offsets.push(...records.map((r) => r.offset));
      },
    });
    await waitUntilCaughtUp(kafka.connection, `${topic}-group`, topic);
    expect(offsets).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(Math.max(...sizes)).toBe(10);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(25);
  });

  test('waits up to the batching window to fill a batch: records produced moments apart arrive in one invocation', async () => {
    const [topic] = await kafka.topics([{ name: 'window', config: { ...stream, partitions: 1 } }]);
    const sizes: number[] = [];
    await startSource({
      connection: kafka.connection,
      settings: settings(topic, { batchSize: 10, batchingWindowMs: 5_000 }),
      handler: async (event) => void sizes.push(Object.values(event.records).flat().length),
    });
    await produce(
      kafka.connection,
      topic,
      Array.from({ length: 3 }, (_, i) => ({ key: `a${i}`, value: { i }, partition: 0 })),
    );
    await produce(
      kafka.connection,
      topic,
      Array.from({ length: 4 }, (_, i) => ({ key: `b${i}`, value: { i }, partition: 0 })),
    );
    await waitUntilCaughtUp(kafka.connection, `${topic}-group`, topic);
    expect(sizes).toEqual([7]);
  });

  test('redelivers the same batch while the handler throws, commits nothing meanwhile, and blocks only that partition', async () => {
    const [topic] = await kafka.topics([{ name: 'retry', config: { ...stream, partitions: 2 } }]);
    await produce(kafka.connection, topic, [
      ...Array.from({ length: 5 }, (_, i) => ({ key: `a${i}`, value: { i }, partition: 0 })),
      ...Array.from({ length: 5 }, (_, i) => ({ key: `b${i}`, value: { i }, partition: 1 })),
    ]);
    let failuresLeft = 3;
    const outcomes: InvocationOutcome[] = [];
    const seenOnP1: number[] = [];
    await startSource({
      connection: kafka.connection,
      settings: settings(topic, { batchSize: 5 }),
      retryDelayMs: 100,
      onInvocation: (o) => outcomes.push(o),
      handler: async (event) => {
        if (`${topic}-1` in event.records) {
          seenOnP1.push(...event.records[`${topic}-1`].map((r) => r.offset));
          return;
        }
        if (failuresLeft > 0) {
          failuresLeft--;
          // While partition 0 fails, its committed offset must not move.
          const lag = await groupLag(kafka.connection, `${topic}-group`, topic);
          expect(lag.find((p) => p.partition === 0)?.committed).toBe(0);
          throw new Error('database unavailable');
        }
      },
    });
    await waitUntilCaughtUp(kafka.connection, `${topic}-group`, topic);
    const p0 = outcomes.filter((o) => o.topicPartition === `${topic}-0`);
    expect(p0.map((o) => [o.attempt, o.firstOffset, o.lastOffset, o.error === undefined, o.committed])).toEqual([
      [1, 0, 4, false, false],
      [2, 0, 4, false, false],
      [3, 0, 4, false, false],
      [4, 0, 4, true, true],
    ]);
    // The redelivered event is the same batch: same records, same bytes.
    expect(p0[3].event).toEqual(p0[0].event);
    expect(seenOnP1).toEqual([0, 1, 2, 3, 4]);
  });

  test('runs at most one batch per partition at a time, partitions in parallel up to the concurrency', async () => {
    const [topic] = await kafka.topics([{ name: 'inflight', config: stream }]);
    await produce(
      kafka.connection,
      topic,
      Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, value: { i }, partition: i % 3 })),
    );
    const source = await startSource({
      connection: kafka.connection,
      settings: settings(topic, { batchSize: 4, maxConcurrency: 3 }),
      handler: async () => {
        await new Promise((resolve) => setTimeout(resolve, 30));
      },
    });
    await waitUntilCaughtUp(kafka.connection, `${topic}-group`, topic);
    expect(source.stats.committedRecords).toBe(60);
    expect(source.stats.maxInFlightPerPartition).toBe(1);
    expect(source.stats.maxInFlight).toBeLessThanOrEqual(3);
  });

  test('a mapping killed after the handler returned commits nothing, and the next one in the group redelivers that batch', async () => {
    const [topic] = await kafka.topics([{ name: 'kill', config: { ...stream, partitions: 1 } }]);
    await produce(
      kafka.connection,
      topic,
      Array.from({ length: 6 }, (_, i) => ({ key: `k${i}`, value: { i }, partition: 0 })),
    );
    const delivered: number[][] = [];
    const first: LambdaKafkaEventSource = new LambdaKafkaEventSource({
      connection: kafka.connection,
      settings: settings(topic, { batchSize: 3 }),
      handler: async (event) => {
        delivered.push(
          Object.values(event.records)
            .flat()
            .map((r) => r.offset),
        );
        if (delivered.length === 2) void first.kill();
      },
    });
    await first.start();
    await eventually(async () => delivered.length >= 2, 'two deliveries');
    await first.kill();
    expect(await groupLag(kafka.connection, `${topic}-group`, topic)).toEqual([{ partition: 0, committed: 3, end: 6 }]);

    await startSource({
      connection: kafka.connection,
      settings: settings(topic, { batchSize: 3 }),
      handler: async (event) =>
        void delivered.push(
          Object.values(event.records)
            .flat()
            .map((r) => r.offset),
        ),
    });
    await waitUntilCaughtUp(kafka.connection, `${topic}-group`, topic);
    expect(delivered).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [3, 4, 5],
    ]);
  });
});
