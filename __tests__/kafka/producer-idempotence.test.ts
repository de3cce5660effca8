/**
 * GIVEN a broker reached through a proxy that can lose a produce acknowledgement after the
 * broker has appended the records, and the outbox's real Kafka producer
 * WHEN the acknowledgement of a campaign event is lost and the producer retries the send
 * THEN the topic holds the event once: the broker recognised the retry by producer id and
 * sequence number (idempotence), and the publish reports success, so its outbox row is marked
 * once.
 */
import { Kafka, Producer } from 'kafkajs';
import { loadEnvironment } from '../../config';
import { createKafkaPublisher, OutboxMessage } from '../../lambdas/shared/outbox';
import { createTopics, LocalKafkaBroker, startLocalKafkaBroker } from '../../local/kafka-broker';
import { CuttingProxy } from './support/cutting-proxy';
import { BROKER_ENVIRONMENT } from './support/global-setup';
import { awaitBrokerRequests, dumpLog, readAll } from './support/kafka';

const config = loadEnvironment(BROKER_ENVIRONMENT);
let proxy: CuttingProxy;
let broker: LocalKafkaBroker;

// The publisher keeps its producer (as in Lambda) and has no close: observe the producers
// kafkajs creates to disconnect them after the file.
const producers = jest.spyOn(Kafka.prototype, 'producer');

beforeAll(async () => {
  // This file needs its own broker: the proxy's port must be known when the broker starts.
  proxy = await CuttingProxy.listen();
  broker = await startLocalKafkaBroker({ advertiseProxyPort: proxy.port });
  proxy.forwardTo(broker.proxiedListener as string);
}, 300_000);

afterAll(async () => {
  for (const result of producers.mock.results) {
    if (result.type === 'return') await (result.value as Producer).disconnect().catch(() => undefined);
  }
  producers.mockRestore();
  await proxy?.close();
  await broker?.stop();
}, 120_000);

function message(id: string, campaignId: number): OutboxMessage {
  return {
    id,
    kind: 'CAMPAIGN_PAUSED',
    idempotencyKey: `CAMPAIGN_PAUSED:${campaignId}:2026-12-01`,
    payload: { event_id: `campaign-paused-${campaignId}-20261201`, event_type: 'CAMPAIGN_PAUSED', campaign_id: campaignId, status: 'PAUSED' },
  };
}

describe('outbox producer idempotence', () => {
  test('a lost produce acknowledgement is retried by the producer and the broker keeps the event once', async () => {
    const topic = 'campaign-events';
    await createTopics(broker, [{ topic, config: { ...config.confluent.topics['campaign-events'], partitions: 1 } }]);
    const publish = createKafkaPublisher({
      brokers: [`127.0.0.1:${proxy.port}`],
      topic,
      secretArn: 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:unused-locally',
      credentials: async () => ({ username: broker.username, password: broker.password }),
      ssl: false,
    });
    expect(await publish([message('1', 71)])).toEqual({ publishedIds: ['1'] });

    proxy.loseNextProduceAcks(1);
    const result = await publish([message('2', 72)]);

    expect(proxy.cuts).toBe(1);
    expect(result).toEqual({ publishedIds: ['2'] });
    const read = await readAll(broker, topic, 2);
    expect(read.map((r) => r.message.key?.toString())).toEqual(['71', '72']);
    const batches = await dumpLog(broker, topic, 0);
    expect(batches.map((b) => b.count)).toEqual([1, 1]);
    expect(new Set(batches.map((b) => b.producerId)).size).toBe(1);
    // The broker did receive the second event twice (the send and its retry) and kept one.
    const produces = await awaitBrokerRequests(broker, 'PRODUCE', (r) => (r.request.topicData as Array<{ name: string }>).some((t) => t.name === topic), 3);
    expect(produces).toHaveLength(3);
  });

  test('when every retry loses its acknowledgement the publish fails, and the later resend (a new producer session) adds one copy under the same idempotency key', async () => {
    const topic = 'campaign-events-unlucky';
    await createTopics(broker, [{ topic, config: { ...config.confluent.topics['campaign-events'], partitions: 1 } }]);
    const publish = createKafkaPublisher({
      brokers: [`127.0.0.1:${proxy.port}`],
      topic,
      secretArn: 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:unused-locally',
      credentials: async () => ({ username: broker.username, password: broker.password }),
      ssl: false,
    });
    proxy.loseNextProduceAcks(100);
    const failed = await publish([message('1', 81)]);
    expect(failed.publishedIds).toEqual([]);
    expect(failed.error).toBeInstanceOf(Error);

    // The outbox keeps the row and the next drain sends it again, with a new producer session.
    proxy.stopLosingAcks();
    expect(await publish([message('1', 81)])).toEqual({ publishedIds: ['1'] });
    const read = await readAll(broker, topic, 2);
    // The first session's four attempts were kept once; the new session's send cannot be tied
    // to them: at least once, which consumers absorb by deduplicating on the idempotency key.
    expect(read).toHaveLength(2);
    expect(new Set(read.map((r) => r.message.headers?.['idempotency-key']?.toString()))).toEqual(new Set(['CAMPAIGN_PAUSED:81:2026-12-01']));
    const producerIds = new Set((await dumpLog(broker, topic, 0)).map((b) => b.producerId));
    expect(producerIds.size).toBe(2);
  });
});
