import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'pg';
import { SNSClient } from '@aws-sdk/client-sns';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createOutboxSweepHandler } from '../../lambdas/outbox-sweep/sweep-outbox';
import { createKafkaPublisher, createSnsPublisher, drainOutbox, encodeCampaignEventValue, OutboxMessage, OutboxPublisher } from '../../lambdas/shared/outbox';
import { decodeKafkaEvent, parseJsonValue } from '../../lambdas/shared/kafka-event';
import { campaignEventContract, checkAgainst } from '../../contracts';
import { adEventsBatch, clickEvent, kafkaEvent } from './support/kafka-fixtures';
import { countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

const stores = isolatedWorkerStores();

/** A local stand-in for SNS or Kafka that records what it was sent and can be told to fail. */
class FakeDestination {
  readonly delivered: OutboxMessage[] = [];
  failuresLeft = 0;
  deliverBeforeFailing = 0;
  delayMs = 0;

  readonly publish: OutboxPublisher = async (messages) => {
    if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const ids: string[] = [];
    for (const message of messages) {
      if (this.failuresLeft > 0 && ids.length >= this.deliverBeforeFailing) {
        this.failuresLeft--;
        return { publishedIds: ids, error: new Error('destination unavailable') };
      }
      this.delivered.push(message);
      ids.push(message.id);
    }
    return { publishedIds: ids };
  };

  countOf(idempotencyKey: string): number {
    return this.delivered.filter((m) => m.idempotencyKey === idempotencyKey).length;
  }
}

function deps(publishers: { sns?: OutboxPublisher; kafka?: OutboxPublisher } = {}) {
  return stores.deps({ publishers });
}

async function insertOutboxRows(count: number, tag: string): Promise<void> {
  await stores.pool.query(
    // Spread over three days (three partitions): a drain marks each row in its own day.
    `INSERT INTO outbox (kind, idempotency_key, payload, spend_date)
     SELECT 'BUDGET_WARNING', $1 || ':' || g, jsonb_build_object('campaign_id', g), current_date - g % 3 FROM generate_series(1, $2) g`,
    [tag, count],
  );
}

beforeEach(async () => {
  await stores.pool.query('DELETE FROM outbox');
});

describe('outbox', () => {
  test('after commit, a pause goes to SNS and to campaign-events once, as a valid campaign event', async () => {
    await seedAdvertiser(stores.pool, 1, '10000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '500', dailyBudget: '1000' });
    const sns = new FakeDestination();
    const kafka = new FakeDestination();
    const handler = createClickBalanceHandler(deps({ sns: sns.publish, kafka: kafka.publish }));

    const summary = await handler(adEventsBatch([clickEvent(11, 1), clickEvent(11, 1)]));
    await handler(adEventsBatch([clickEvent(11, 1)]));

    // One object, so a failure shows the whole picture.
    const outbox = await stores.pool.query(
      'SELECT kind, sns_published_at IS NOT NULL AS sns, kafka_published_at IS NOT NULL AS kafka, last_error FROM outbox ORDER BY id',
    );
    expect({ summary, sns: sns.delivered.map((m) => m.kind).sort(), kafka: kafka.delivered.map((m) => m.kind), rows: outbox.rows }).toMatchObject({
      summary: { outboxWritten: 2, outboxPublished: 3 },
      sns: ['BUDGET_WARNING', 'CAMPAIGN_PAUSED'],
      kafka: ['CAMPAIGN_PAUSED'],
    });
    const event = kafka.delivered[0];
    expect(checkAgainst(campaignEventContract, event.payload)).toMatchObject({ ok: true });
    expect(event.idempotencyKey).toMatch(/^CAMPAIGN_PAUSED:11:\d{4}-\d{2}-\d{2}:1$/);
    expect(await countRows(stores.pool, 'outbox', 'published_at IS NULL')).toBe(0);
  });

  test('with no SNS topic or Kafka producer configured, rows stay unpublished', async () => {
    await insertOutboxRows(3, 'unconfigured');
    const sweep = await createOutboxSweepHandler(deps())({});
    expect(sweep.outboxPublished).toBe(0);
    expect(await countRows(stores.pool, 'outbox', 'published_at IS NULL AND sns_published_at IS NULL')).toBe(3);
  });

  test('SNS down delays, never loses: failed rows are retried by the sweep and published exactly once', async () => {
    await insertOutboxRows(5, 'retry');
    const sns = new FakeDestination();
    sns.failuresLeft = 2;
    sns.deliverBeforeFailing = 2; // the first call delivers two rows, then fails
    const sweep = createOutboxSweepHandler(deps({ sns: sns.publish }));

    const first = await sweep({});
    expect(first.publishedToSns).toBe(2);
    expect(first.failures).toHaveLength(1);
    const failed = await stores.pool.query("SELECT attempts, last_error FROM outbox WHERE idempotency_key = 'retry:3'");
    expect(failed.rows[0].attempts).toBe(1);
    expect(failed.rows[0].last_error).toMatch(/destination unavailable/);

    sns.deliverBeforeFailing = 0;
    const second = await sweep({});
    expect(second.publishedToSns).toBe(0);
    const third = await sweep({});
    expect(third.publishedToSns).toBe(3);
    await sweep({});

    for (let i = 1; i <= 5; i++) expect(sns.countOf(`retry:${i}`)).toBe(1);
    expect(await countRows(stores.pool, 'outbox', 'published_at IS NULL')).toBe(0);
  });

  test('a publisher that throws leaves every row pending', async () => {
    await insertOutboxRows(2, 'throws');
    const result = await drainOutbox(stores.pool, {
      sns: async () => {
        throw new Error('boom');
      },
    });
    expect(result.failures[0]).toMatchObject({ destination: 'sns' });
    expect(await countRows(stores.pool, 'outbox', 'sns_published_at IS NULL')).toBe(2);
  });

  test('concurrent drains never send a row twice', async () => {
    await insertOutboxRows(250, 'concurrent');
    const sns = new FakeDestination();
    sns.delayMs = 20;
    const pools = Array.from({ length: 4 }, () => new Pool({ connectionString: stores.db.url, max: 1 }));
    try {
      for (let round = 0; round < 3; round++) {
        await Promise.all(pools.map((p) => drainOutbox(p, { sns: sns.publish }, { batchSize: 40 })));
      }
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    expect(sns.delivered).toHaveLength(250);
    expect(new Set(sns.delivered.map((m) => m.idempotencyKey)).size).toBe(250);
    // One drain at a time per destination: rows go out in id order.
    const ids = sns.delivered.map((m) => Number(m.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  test('Kafka and SNS are tracked separately: Kafka down does not resend SNS', async () => {
    await stores.pool.query(
      `INSERT INTO outbox (kind, idempotency_key, payload, spend_date) VALUES ('CAMPAIGN_PAUSED', 'k1', '{"campaign_id": 5}', current_date)`,
    );
    const sns = new FakeDestination();
    const kafka = new FakeDestination();
    kafka.failuresLeft = 1;
    await drainOutbox(stores.pool, { sns: sns.publish, kafka: kafka.publish });
    expect(await countRows(stores.pool, 'outbox', 'sns_published_at IS NOT NULL AND kafka_published_at IS NULL AND published_at IS NULL')).toBe(1);
    await drainOutbox(stores.pool, { sns: sns.publish, kafka: kafka.publish });
    expect([sns.countOf('k1'), kafka.countOf('k1')]).toEqual([1, 1]);
    expect(await countRows(stores.pool, 'outbox', 'published_at IS NOT NULL')).toBe(1);
  });

  test('the SNS publisher reports an unreachable endpoint as a failure instead of throwing', async () => {
    const client = new SNSClient({
      region: 'ap-northeast-2',
      endpoint: 'http://127.0.0.1:6399',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    });
    const publish = createSnsPublisher('arn:aws:sns:ap-northeast-2:123456789012:alerts', client);
    const result = await publish([{ id: '1', kind: 'BUDGET_WARNING', idempotencyKey: 'x', payload: { campaign_id: 1 } }]);
    expect(result.publishedIds).toEqual([]);
    expect(result.error).toBeInstanceOf(Error);
    client.destroy();
  });

  test('the Kafka publisher reports unreachable brokers as a failure instead of throwing', async () => {
    const publish = createKafkaPublisher({
      brokers: ['127.0.0.1:19092'],
      secretArn: 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:kafka',
      topic: 'campaign-events',
      credentials: async () => ({ username: 'key', password: 'secret' }),
      ssl: false,
    });
    const started = Date.now();
    const result = await publish([{ id: '1', kind: 'CAMPAIGN_PAUSED', idempotencyKey: 'k', payload: { campaign_id: 1 } }]);
    expect(result.publishedIds).toEqual([]);
    expect(result.error).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  test('campaign event values with a schema id carry the Confluent wire header', () => {
    const payload = { event_id: 'e', campaign_id: 7 };
    const value = encodeCampaignEventValue(payload, 100007);
    expect([...value.subarray(0, 5)]).toEqual([0, 0, 1, 0x86, 0xa7]);
    const [record] = decodeKafkaEvent(kafkaEvent('campaign-events', [{ values: [value] }]));
    expect(record).toMatchObject({ ok: true, schemaId: 100007 });
    expect(parseJsonValue(record.ok ? record.value : null)).toEqual(payload);
    expect(encodeCampaignEventValue(payload).toString()).toBe(JSON.stringify(payload));
  });

  test('a slow SNS does not hold up the click batch: after commit it waits a bounded time and leaves the rest to the sweep', async () => {
    await seedAdvertiser(stores.pool, 9, '100000');
    await seedCampaign(stores.pool, { campaignId: 91, advertiserId: 9, cpc: '500', dailyBudget: '1000' });
    await insertOutboxRows(300, 'backlog'); // a backlog the sweep has not sent yet
    const sns = await slowSnsEndpoint(1500);
    const client = new SNSClient({
      region: 'ap-northeast-2',
      endpoint: sns.url,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    });
    try {
      const publish = createSnsPublisher('arn:aws:sns:ap-northeast-2:123456789012:alerts', client);
      const handler = createClickBalanceHandler(deps({ sns: publish }));
      const summary = await handler(adEventsBatch([clickEvent(91, 9), clickEvent(91, 9)]));
      // The batch came back while SNS was still sitting on the first request.
      expect(sns.requests()).toBeGreaterThan(0);
      expect(sns.answered()).toBe(0);
      expect(summary).toMatchObject({ charged: 2, outboxWritten: 2, outboxPublished: 0 });
      expect(await countRows(stores.pool, 'outbox', "idempotency_key LIKE '%:91:%' AND sns_published_at IS NULL")).toBe(2);

      // The sweep, which has the time, publishes them later.
      const fast = new FakeDestination();
      await createOutboxSweepHandler(deps({ sns: fast.publish }))({});
      expect(await countRows(stores.pool, 'outbox', 'sns_published_at IS NULL')).toBe(0);
      expect(fast.delivered.filter((m) => m.idempotencyKey.includes(':91:')).map((m) => m.idempotencyKey)).toHaveLength(2);
    } finally {
      client.destroy();
      await sns.close();
    }
  });
});

/** A local SNS endpoint that answers every Publish after `delayMs`; counts requests and answers. */
async function slowSnsEndpoint(delayMs: number): Promise<{ url: string; requests: () => number; answered: () => number; close: () => Promise<void> }> {
  let requests = 0;
  let answered = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = createHttpServer((request, response) => {
    requests++;
    request.resume();
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (response.destroyed) return;
      answered++;
      const json = String(request.headers['content-type'] ?? '').includes('json');
      response.setHeader('content-type', json ? 'application/x-amz-json-1.0' : 'text/xml');
      response.end(
        json
          ? JSON.stringify({ MessageId: `m-${requests}` })
          : `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-${requests}</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>`,
      );
    }, delayMs);
    timers.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    answered: () => answered,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
