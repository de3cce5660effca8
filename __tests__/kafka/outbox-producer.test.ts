/**
 * GIVEN the local broker and the outbox's real Kafka producer (kafkajs, SASL/PLAIN, idempotent,
 * acks=all), the click-balance trigger emulated as Lambda runs it, and the outbox sweep
 * WHEN a campaign exhausts its budget, with the first publish attempts rejected by the broker
 * THEN `campaign-events` receives exactly one CAMPAIGN_PAUSED per outbox row, keyed by the
 * campaign, with the Schema Registry wire header, valid against the contract; and the
 * producer's settings are visible in what the broker stored and how it refused.
 */
import { createServer, Server, Socket } from 'node:net';
import { loadEnvironment } from '../../config';
import { campaignEventContract, checkAgainst } from '../../contracts';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createOutboxSweepHandler } from '../../lambdas/outbox-sweep/sweep-outbox';
import { decodeKafkaEvent, LambdaKafkaEvent, parseJsonValue } from '../../lambdas/shared/kafka-event';
import { OutboxPublishError } from '../../lambdas/shared/errors';
import { createKafkaPublisher, KafkaOutboxPublisher, OutboxMessage } from '../../lambdas/shared/outbox';
import { KafkaEventHandler, LambdaKafkaEventSource, namespacedSettings, waitUntilCaughtUp } from '../../local/event-source';
import { kafkaClient } from '../../local/kafka-broker';
import { workerKafkaTriggers } from '../../stacks/worker-triggers';
import { leftoverTcpConnections, openTcpConnections } from '../support/connections';
import { clickEvent } from '../lambdas/support/kafka-fixtures';
import { isolatedWorkerStores, seedAdvertiser, seedCampaign } from '../lambdas/support/test-database';
import { BROKER_ENVIRONMENT } from './support/global-setup';
import { awaitBrokerRequests, dumpLog, kafkaForTests, produce, readAll } from './support/kafka';

const kafka = kafkaForTests();
const stores = isolatedWorkerStores();

// Each publisher keeps its producer connected between calls (as in a Lambda container): closed
// after the file, or the connection to the shared broker would keep this worker alive.
const publishers: KafkaOutboxPublisher[] = [];
afterAll(async () => {
  for (const publisher of publishers) await publisher.close();
});
const config = loadEnvironment(BROKER_ENVIRONMENT);
const SCHEMA_ID = 100_042;

function publisherFor(topic: string, brokers = [kafka.connection.bootstrap]): KafkaOutboxPublisher {
  const publisher = createKafkaPublisher({
    brokers,
    topic,
    schemaId: SCHEMA_ID,
    secretArn: 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:unused-locally',
    credentials: async () => ({ username: kafka.connection.username, password: kafka.connection.password }),
    // The local broker speaks SASL/PLAIN without TLS; Confluent Cloud adds TLS (the default).
    ssl: false,
  });
  publishers.push(publisher);
  return publisher;
}

async function setTopicConfig(topic: string, name: string, value: string): Promise<void> {
  const admin = kafkaClient(kafka.connection, 'test-admin').admin();
  await admin.connect();
  try {
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: topic, configEntries: [{ name, value }] }] });
  } finally {
    await admin.disconnect();
  }
}

function pausedMessage(id: string, campaignId: number, kind: OutboxMessage['kind'] = 'CAMPAIGN_PAUSED'): OutboxMessage {
  return {
    id,
    kind,
    idempotencyKey: `${kind}:${campaignId}:2026-12-01`,
    payload: {
      event_id: `${kind === 'CAMPAIGN_PAUSED' ? 'campaign-paused' : 'campaign-resumed'}-${campaignId}-20261201`,
      event_type: kind,
      event_ts: Date.now(),
      campaign_id: campaignId,
      advertiser_id: 1,
      status: kind === 'CAMPAIGN_PAUSED' ? 'PAUSED' : 'ACTIVE',
      reason: kind === 'CAMPAIGN_PAUSED' ? 'BUDGET_EXHAUSTED' : 'BUDGET_RESET',
    },
  };
}

const sources: LambdaKafkaEventSource[] = [];
afterEach(async () => {
  while (sources.length > 0) await sources.pop()?.stop();
});

describe('outbox to campaign-events on the broker', () => {
  test('a budget exhausted through Kafka publishes one CAMPAIGN_PAUSED per outbox row, valid and keyed by campaign, even when the first attempt is refused', async () => {
    const [adEvents, campaignEvents] = await kafka.topics([
      { name: 'ad-events', config: config.confluent.topics['ad-events'] },
      // Records of at most 64 bytes: the broker refuses every campaign event until this is lifted.
      { name: 'campaign-events', config: config.confluent.topics['campaign-events'], extra: { 'max.message.bytes': '64' } },
    ]);
    await seedAdvertiser(stores.pool, 1, '100000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '500', dailyBudget: '1000' });
    await seedCampaign(stores.pool, { campaignId: 12, advertiserId: 1, cpc: '300', dailyBudget: '600' });
    const kafkaPublisher = publisherFor(campaignEvents);
    const deps = stores.deps({ publishers: { kafka: kafkaPublisher } });
    const settings = namespacedSettings(
      workerKafkaTriggers(config).find((t) => t.functionName === 'clickBalance')!,
      kafka.prefix,
    );
    const source = new LambdaKafkaEventSource({
      connection: kafka.connection,
      settings: { ...settings, topic: adEvents },
      handler: createClickBalanceHandler(deps) as KafkaEventHandler,
    });
    sources.push(source);
    await source.start();
    await produce(
      kafka.connection,
      adEvents,
      [11, 11, 11, 12, 12].map((campaign) => ({ key: String(campaign), value: clickEvent(campaign, 1) })),
    );
    await waitUntilCaughtUp(kafka.connection, settings.consumerGroupId, adEvents);

    // The after-commit publish was refused: both rows wait, with the broker's reason.
    const pending = await stores.pool.query(
      'SELECT idempotency_key, attempts, last_error FROM outbox WHERE kind = $1 AND kafka_published_at IS NULL ORDER BY id',
      ['CAMPAIGN_PAUSED'],
    );
    expect(pending.rows).toHaveLength(2);
    expect(pending.rows[0].attempts).toBeGreaterThanOrEqual(1);
    expect(pending.rows[0].last_error).toMatch(/kafka/i);
    expect((await readAll(kafka.connection, campaignEvents, 0)).length).toBe(0);

    await setTopicConfig(campaignEvents, 'max.message.bytes', '1048588');
    const sweep = createOutboxSweepHandler(deps);
    const swept = await sweep({});
    const again = await sweep({});
    expect([swept.publishedToKafka, again.publishedToKafka]).toEqual([2, 0]);
    expect(await stores.pool.query('SELECT count(*)::int AS n FROM outbox WHERE kind = $1 AND kafka_published_at IS NULL', ['CAMPAIGN_PAUSED'])).toMatchObject({
      rows: [{ n: 0 }],
    });

    const read = await readAll(kafka.connection, campaignEvents, 2);
    expect(read).toHaveLength(2);
    // Read back as the workers would get it: through the emulated trigger and the shared decoder.
    const events: LambdaKafkaEvent[] = [];
    const reader = new LambdaKafkaEventSource({
      connection: kafka.connection,
      settings: { ...settings, topic: campaignEvents, consumerGroupId: `${kafka.prefix}campaign-events-reader` },
      handler: async (event) => void events.push(event),
    });
    sources.push(reader);
    await reader.start();
    await waitUntilCaughtUp(kafka.connection, `${kafka.prefix}campaign-events-reader`, campaignEvents);
    const decoded = events
      .flatMap((e) => decodeKafkaEvent(e))
      .map((r) => {
        if (!r.ok) throw r.error;
        return r;
      });
    const byCampaign = new Map(decoded.map((r) => [r.key?.toString(), r]));
    expect([...byCampaign.keys()].sort()).toEqual(['11', '12']);
    for (const [campaign, record] of byCampaign) {
      expect(record.schemaId).toBe(SCHEMA_ID);
      const value = parseJsonValue(record.value) as Record<string, unknown>;
      expect(checkAgainst(campaignEventContract, value)).toMatchObject({ ok: true });
      expect(value).toMatchObject({ event_type: 'CAMPAIGN_PAUSED', status: 'PAUSED', campaign_id: Number(campaign), reason: 'BUDGET_EXHAUSTED' });
      expect(record.headers.get('idempotency-key')?.toString()).toMatch(new RegExp(`^CAMPAIGN_PAUSED:${campaign}:\\d{4}-\\d{2}-\\d{2}:\\d+$`));
      expect(record.headers.get('event-kind')?.toString()).toBe('CAMPAIGN_PAUSED');
    }
  });

  test('the producer is idempotent: the broker stored its batches with a producer id, epoch and sequence numbers', async () => {
    const [topic] = await kafka.topics([{ name: 'campaign-events-idempotence', config: { ...config.confluent.topics['campaign-events'], partitions: 1 } }]);
    const publish = publisherFor(topic);
    expect(await publish([pausedMessage('1', 21), pausedMessage('2', 22)])).toEqual({ publishedIds: ['1', '2'] });
    expect(await publish([pausedMessage('3', 23)])).toEqual({ publishedIds: ['3'] });

    const batches = await dumpLog(kafka.connection, topic, 0);
    expect(batches.map((b) => b.count)).toEqual([2, 1]);
    for (const batch of batches) {
      expect(batch.producerId).toBeGreaterThanOrEqual(0);
      expect(batch.producerEpoch).toBeGreaterThanOrEqual(0);
      expect(batch.isTransactional).toBe(false);
    }
    // One producer session: same id, sequences continuing where the last batch ended.
    expect(new Set(batches.map((b) => b.producerId)).size).toBe(1);
    expect(batches.map((b) => b.baseSequence)).toEqual([0, 2]);
    const read = await readAll(kafka.connection, topic, 3);
    expect(read.map((r) => r.message.batchContext.producerId)).toEqual(batches.flatMap((b) => Array(b.count).fill(String(b.producerId))));
  });

  test('the producer asks the broker for acks from all in-sync replicas, with its request timeout, without a transaction', async () => {
    const [topic] = await kafka.topics([{ name: 'campaign-events-acks', config: { ...config.confluent.topics['campaign-events'], partitions: 1 } }]);
    expect((await publisherFor(topic)([pausedMessage('1', 31)])).publishedIds).toEqual(['1']);

    // What the broker received, from its own request log.
    const produces = await awaitBrokerRequests(kafka.connection, 'PRODUCE', (r) =>
      (r.request.topicData as Array<{ name: string }>).some((t) => t.name === topic),
    );
    expect(produces).toHaveLength(1);
    expect(produces[0].requestHeader.clientId).toBe('adstream-worker');
    expect(produces[0].request).toMatchObject({ acks: -1, transactionalId: null });
    // The broker may hold the produce for acks at most this long: less than the function's timeout.
    expect(produces[0].request.timeoutMs).toBeLessThan(config.workers.functions.clickBalance.timeoutSeconds * 1000);
    const [stored] = await dumpLog(kafka.connection, topic, 0);
    expect(stored.producerId).toBeGreaterThanOrEqual(0);
    // The producer id came from the broker: an InitProducerId request by the worker's client.
    const inits = await awaitBrokerRequests(kafka.connection, 'INIT_PRODUCER_ID', (r) => r.requestHeader.clientId === 'adstream-worker');
    expect(inits.map((r) => r.response.producerId)).toContain(stored.producerId);
  });

  test('a transient broker error is retried inside one publish: a topic that appears meanwhile receives the event once', async () => {
    const topic = `${kafka.prefix}campaign-events-late`;
    const publish = publisherFor(topic);
    // The topic does not exist yet (the broker does not create topics on use, like Confluent
    // Cloud): the first attempts fail with UNKNOWN_TOPIC_OR_PARTITION, a retriable error.
    const publishing = publish([pausedMessage('1', 61)]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await kafka.topics([{ name: 'campaign-events-late', config: { ...config.confluent.topics['campaign-events'], partitions: 1 } }]);
    expect(await publishing).toEqual({ publishedIds: ['1'] });
    const read = await readAll(kafka.connection, topic, 1);
    expect(read.map((r) => r.message.key?.toString())).toEqual(['61']);
    // The broker did answer "unknown topic" to the worker's producer before it succeeded.
    const refusals = await awaitBrokerRequests(
      kafka.connection,
      'METADATA',
      (r) =>
        r.requestHeader.clientId === 'adstream-worker' &&
        (r.response.topics as Array<{ name: string; errorCode: number }>).some((t) => t.name === topic && t.errorCode === 3),
    );
    expect(refusals.length).toBeGreaterThanOrEqual(1);
  });

  test('events of one campaign share its key and partition and keep their order', async () => {
    const [topic] = await kafka.topics([{ name: 'campaign-events-order', config: config.confluent.topics['campaign-events'] }]);
    const publish = publisherFor(topic);
    expect((await publish([pausedMessage('1', 41), pausedMessage('2', 42), pausedMessage('3', 41, 'CAMPAIGN_RESUMED')])).publishedIds).toEqual(['1', '2', '3']);
    const read = await readAll(kafka.connection, topic, 3);
    const of41 = read.filter((r) => r.message.key?.toString() === '41');
    expect(of41).toHaveLength(2);
    expect(new Set(of41.map((r) => r.partition)).size).toBe(1);
    expect(of41.map((r) => r.message.headers?.['event-kind']?.toString())).toEqual(['CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED']);
  });

  test('a closed publisher holds no connection to the broker and sends nothing more: it reports an error, so the drain leaves the rows pending', async () => {
    const [topic] = await kafka.topics([{ name: 'campaign-events-closed', config: { ...config.confluent.topics['campaign-events'], partitions: 1 } }]);
    const brokerPort = Number(kafka.connection.bootstrap.split(':').pop());
    const before = openTcpConnections(brokerPort);
    const publish = publisherFor(topic);
    expect((await publish([pausedMessage('1', 71)])).publishedIds).toEqual(['1']);
    expect(await leftoverTcpConnections(before, brokerPort, 0)).not.toEqual([]);

    await publish.close();
    expect(await leftoverTcpConnections(before, brokerPort)).toEqual([]);
    const after = await publish([pausedMessage('2', 72)]);
    expect(after.publishedIds).toEqual([]);
    expect(after.error).toBeInstanceOf(OutboxPublishError);
    expect(await leftoverTcpConnections(before, brokerPort, 0)).toEqual([]);
    expect((await readAll(kafka.connection, topic, 1)).map((r) => r.message.key?.toString())).toEqual(['71']);
  });

  test('close() returns only when no connection is left, also after a publish given up mid-send and during one in flight', async () => {
    const [topic] = await kafka.topics([{ name: 'campaign-events-close-race', config: { ...config.confluent.topics['campaign-events'], partitions: 1 } }]);
    const brokerPort = Number(kafka.connection.bootstrap.split(':').pop());
    const before = openTcpConnections(brokerPort);

    // Given up mid-send (the drain's deadline): the row stays pending, the producer is dropped.
    const givenUp = publisherFor(topic);
    expect((await givenUp([pausedMessage('1', 81)])).publishedIds).toEqual(['1']);
    const deadline = new AbortController();
    const abandoned = givenUp([pausedMessage('2', 82)], { signal: deadline.signal });
    deadline.abort();
    expect((await abandoned).publishedIds).toEqual([]);
    await givenUp.close();
    expect(await leftoverTcpConnections(before, brokerPort)).toEqual([]);

    // Closed while a publish is in flight: that publish ends either way, and nothing reconnects.
    const inFlight = publisherFor(topic);
    expect((await inFlight([pausedMessage('3', 83)])).publishedIds).toEqual(['3']);
    const sending = inFlight([pausedMessage('4', 84)]);
    await inFlight.close();
    expect(await leftoverTcpConnections(before, brokerPort)).toEqual([]);
    await sending;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await leftoverTcpConnections(before, brokerPort, 0)).toEqual([]);
  });

  test('a broker that accepts connections but never answers fails the publish well within the function timeout', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      const result = await publisherFor('campaign-events', [`127.0.0.1:${port}`])([pausedMessage('1', 51)]);
      const elapsedMs = Date.now() - started;
      expect(result.publishedIds).toEqual([]);
      expect(result.error).toBeInstanceOf(Error);
      // The row stays for the sweep instead of the invocation hanging until Lambda kills it.
      expect(elapsedMs).toBeLessThan(config.workers.functions.clickBalance.timeoutSeconds * 1000 * 0.75);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
