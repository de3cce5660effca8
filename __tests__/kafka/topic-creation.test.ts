/**
 * GIVEN the topic creation every Kafka test, the local pipeline and the broker launcher share
 * (`createTopics` in local/kafka-broker.ts)
 * WHEN several callers create topics on one broker at the same time (jest runs the Kafka test
 * files in parallel against the run's broker)
 * THEN every call returns only once each partition of its topics has a leader, none fails on the
 * broker's "does not host this topic-partition" answer for a topic it has just created, and a
 * topic two callers create at once is created once.
 */
import { randomBytes } from 'node:crypto';
import { createTopics, kafkaClient, TopicSpec } from '../../local/kafka-broker';
import { kafkaForTests } from './support/kafka';

const kafka = kafkaForTests();
const prefix = `${kafka.prefix}create-${randomBytes(2).toString('hex')}-`;
const created = new Set<string>();

afterAll(async () => {
  if (created.size === 0) return;
  const admin = kafkaClient(kafka.connection, 'test-cleanup').admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [...created], timeout: 30_000 }).catch(() => undefined);
  await admin.disconnect();
}, 120_000);

function specsFor(name: string): TopicSpec[] {
  return [
    { topic: `${prefix}${name}`, config: { partitions: 3, retentionMs: 3_600_000, cleanupPolicy: 'delete' } },
    { topic: `${prefix}${name}-latest`, config: { partitions: 1, retentionMs: -1, cleanupPolicy: 'compact' } },
  ];
}

async function partitionsWithoutLeader(topics: readonly string[]): Promise<string[]> {
  const admin = kafkaClient(kafka.connection, 'test-metadata').admin();
  await admin.connect();
  try {
    const { topics: metadata } = await admin.fetchTopicMetadata({ topics: [...topics] });
    return metadata.flatMap((t) => t.partitions.filter((p) => p.leader < 0).map((p) => `${t.name}/${p.partitionId}`));
  } finally {
    await admin.disconnect();
  }
}

test('callers creating topics at the same time each get their topics with a leader on every partition', async () => {
  const callers = 4;
  const rounds = 8;
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      for (let round = 0; round < rounds; round += 1) {
        const specs = specsFor(`c${caller}-r${round}`);
        specs.forEach((s) => created.add(s.topic));
        try {
          await createTopics(kafka.connection, specs);
        } catch (error) {
          failures.push(`caller ${caller} round ${round}: ${(error as Error).message}`);
        }
      }
    }),
  );
  expect(failures).toEqual([]);
  expect(await partitionsWithoutLeader([...created])).toEqual([]);
}, 180_000);

test('a topic two callers create at once is created once, with the requested partitions', async () => {
  const specs = specsFor('both');
  specs.forEach((s) => created.add(s.topic));
  await Promise.all([createTopics(kafka.connection, specs), createTopics(kafka.connection, specs)]);
  const admin = kafkaClient(kafka.connection, 'test-metadata').admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) });
    expect(topics.map((t) => [t.name, t.partitions.length]).sort()).toEqual(specs.map((s) => [s.topic, s.config.partitions]).sort());
  } finally {
    await admin.disconnect();
  }
}, 120_000);
