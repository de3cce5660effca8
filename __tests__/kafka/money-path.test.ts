/**
 * GIVEN the local broker, the dev environment's triggers (groups, batch size, window,
 * concurrency) emulated as Lambda runs them, and the real handlers on their own Postgres
 * database and Redis keyspace
 * WHEN clicks and compensations are produced to Kafka the way the ad server and Flink produce
 * them, with failures and crashes on the way
 * THEN every click is charged once, every duplicate refunded once, bad records dead-lettered,
 * and nothing is charged twice by a redelivery.
 */
import { loadEnvironment } from '../../config';
import type { AdEvent } from '../../contracts';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import type { LambdaKafkaEvent } from '../../lambdas/shared/kafka-event';
import { EventSourceSettings, KafkaEventHandler, LambdaKafkaEventSource, namespacedSettings, waitUntilCaughtUp } from '../../local/event-source';
import { workerKafkaTriggers } from '../../stacks/worker-triggers';
import { clickEvent, compensationEvent } from '../lambdas/support/kafka-fixtures';
import { balanceOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from '../lambdas/support/test-database';
import { BROKER_ENVIRONMENT } from './support/global-setup';
import { eventually, kafkaForTests, produce, TestMessage } from './support/kafka';

const kafka = kafkaForTests();
const stores = isolatedWorkerStores();
const config = loadEnvironment(BROKER_ENVIRONMENT);
const triggers = Object.fromEntries(workerKafkaTriggers(config).map((t) => [t.functionName, t]));

let adEvents: string;
let compensationEvents: string;
let testNumber = 0;

// Each test gets its own copies of the two topics (contract settings), so no test reads another's records.
beforeEach(async () => {
  testNumber++;
  [adEvents, compensationEvents] = await kafka.topics([
    { name: `ad-events-${testNumber}`, config: config.confluent.topics['ad-events'] },
    { name: `compensation-events-${testNumber}`, config: config.confluent.topics['compensation-events'] },
  ]);
});

const sources: LambdaKafkaEventSource[] = [];
afterEach(async () => {
  while (sources.length > 0) await sources.pop()?.stop();
});

/** The trigger of `functionName` as the workers stack configures it, on this test's topic, with a group per test. */
function trigger(functionName: 'clickBalance' | 'compensation', overrides: Partial<EventSourceSettings> = {}): EventSourceSettings {
  const settings = namespacedSettings(triggers[functionName], kafka.prefix);
  const topic = functionName === 'clickBalance' ? adEvents : compensationEvents;
  return { ...settings, topic, consumerGroupId: `${settings.consumerGroupId}-${testNumber}-${replay}`, ...overrides };
}
let replay = 0;

async function mapping(
  settings: EventSourceSettings,
  handler: KafkaEventHandler,
  created?: (source: LambdaKafkaEventSource) => void,
): Promise<LambdaKafkaEventSource> {
  const source = new LambdaKafkaEventSource({ connection: kafka.connection, settings, handler, retryDelayMs: 50 });
  return started(source, created);
}

/** A mapping whose every execution environment builds the handler anew, with its own pool and Redis client, as Lambda does. */
async function lambdaMapping(settings: EventSourceSettings, build: (deps: ReturnType<typeof stores.deps>) => unknown): Promise<LambdaKafkaEventSource> {
  const source = new LambdaKafkaEventSource({
    connection: kafka.connection,
    settings,
    containers: () => build(stores.deps()) as KafkaEventHandler,
    retryDelayMs: 50,
  });
  return started(source);
}

async function started(source: LambdaKafkaEventSource, created?: (source: LambdaKafkaEventSource) => void): Promise<LambdaKafkaEventSource> {
  sources.push(source);
  // Batches may arrive before start() resolves: hand the source out first.
  created?.(source);
  await source.start();
  return source;
}

/** A click as the ad server produces it: JSON value, keyed by campaign id. */
function asProduced(click: AdEvent): TestMessage {
  return { key: String(click.campaign_id), value: click };
}

describe('money path through Kafka', () => {
  test('clicks produced by the ad server are each charged exactly once through the configured click-balance trigger', async () => {
    await seedAdvertiser(stores.pool, 1, '100000');
    await seedAdvertiser(stores.pool, 2, '100000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '12.34', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 12, advertiserId: 1, cpc: '0.05', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 21, advertiserId: 2, cpc: '99.99', dailyBudget: null });
    const clicks = Array.from({ length: 330 }, (_, i) => (i % 3 === 0 ? clickEvent(11, 1) : i % 3 === 1 ? clickEvent(12, 1) : clickEvent(21, 2)));
    await produce(kafka.connection, adEvents, clicks.map(asProduced));
    const settings = trigger('clickBalance');
    expect(settings).toMatchObject({ batchSize: config.workers.batchSize, batchingWindowMs: 500, startingPosition: 'TRIM_HORIZON' });

    const source = await lambdaMapping(settings, createClickBalanceHandler);
    await waitUntilCaughtUp(kafka.connection, settings.consumerGroupId, adEvents);

    // 110 × 12.34 + 110 × 0.05 = 1362.90; 110 × 99.99 = 10998.90.
    expect(await balanceOf(stores.pool, 1)).toBe('98637.10');
    expect(await balanceOf(stores.pool, 2)).toBe('89001.10');
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'DEDUCT' AND advertiser_id IN (1, 2)")).toBe(330);
    expect(source.stats.committedRecords).toBe(330);
    expect(source.stats.maxInFlightPerPartition).toBe(1);
  });

  test('a handler failing mid-stream and a consumer killed between the database commit and the offset commit charge nothing twice', async () => {
    await seedAdvertiser(stores.pool, 3, '50000');
    await seedCampaign(stores.pool, { campaignId: 31, advertiserId: 3, cpc: '1.11', dailyBudget: null });
    const clicks = Array.from({ length: 120 }, () => clickEvent(31, 3));
    await produce(
      kafka.connection,
      adEvents,
      clicks.map((c, i) => ({ ...asProduced(c), partition: i % 3 })),
    );
    const settings = trigger('clickBalance', { batchSize: 10 });
    const charge = createClickBalanceHandler(stores.deps());
    const summaries: Array<{ charged: number; skipped: number }> = [];
    let invocations = 0;
    let first: LambdaKafkaEventSource | undefined;
    let killedAfterCommit: LambdaKafkaEvent | undefined;
    first = await mapping(
      settings,
      async (event) => {
        // Partitions run concurrently: number this invocation before awaiting anything.
        const n = ++invocations;
        if (n === 3 || n === 4) throw new Error('simulated: database unavailable before the charge');
        const summary = await charge(event);
        summaries.push(summary);
        if (n === 6) {
          // The charge is committed in Postgres; the process dies before Lambda commits the offset.
          killedAfterCommit = event;
          void first?.kill();
        }
        return summary;
      },
      (source) => (first = source),
    );
    await eventually(async () => killedAfterCommit !== undefined, 'the sixth invocation');
    await first.kill();
    const chargedBeforeCrash = summaries.reduce((n, s) => n + s.charged, 0);
    expect(chargedBeforeCrash).toBeGreaterThan(0);

    const redelivered: Array<{ event: LambdaKafkaEvent; charged: number }> = [];
    const replacement = await mapping(settings, async (event) => {
      const summary = await charge(event);
      summaries.push(summary);
      redelivered.push({ event, charged: summary.charged });
      return summary;
    });
    await waitUntilCaughtUp(kafka.connection, settings.consumerGroupId, adEvents);

    // The batch charged before the crash came again (same records) and charged nothing.
    const killedKey = Object.keys(killedAfterCommit!.records)[0];
    const again = redelivered.find((r) => JSON.stringify(r.event.records[killedKey]) === JSON.stringify(killedAfterCommit!.records[killedKey]));
    expect(again).toMatchObject({ charged: 0 });
    expect(summaries.reduce((n, s) => n + s.charged, 0)).toBe(120);
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'DEDUCT' AND advertiser_id = 3")).toBe(120);
    expect(await balanceOf(stores.pool, 3)).toBe('49866.80');
    expect(replacement.stats.committedRecords + first.stats.committedRecords).toBeGreaterThanOrEqual(120);
  });

  test('a poison record in the middle of a partition is dead-lettered and the records after it are charged', async () => {
    await seedAdvertiser(stores.pool, 4, '1000');
    await seedCampaign(stores.pool, { campaignId: 41, advertiserId: 4, cpc: '10', dailyBudget: null });
    const before = Array.from({ length: 5 }, () => clickEvent(41, 4));
    const after = Array.from({ length: 5 }, () => clickEvent(41, 4));
    const partition = 1;
    await produce(kafka.connection, adEvents, [
      ...before.map((c) => ({ ...asProduced(c), partition })),
      { key: '41', value: Buffer.from('{"event_id": "truncated'), partition },
      { key: '41', value: { ...clickEvent(41, 4), event_ts: 'yesterday' }, partition },
      ...after.map((c) => ({ ...asProduced(c), partition })),
    ]);
    const settings = trigger('clickBalance');
    const source = await lambdaMapping(settings, createClickBalanceHandler);
    await waitUntilCaughtUp(kafka.connection, settings.consumerGroupId, adEvents);

    expect(source.stats.failures).toBe(0);
    expect(await balanceOf(stores.pool, 4)).toBe('900');
    const dead = await stores.pool.query<{ kafka_partition: number; kafka_offset: string; reason: string; topic: string }>(
      `SELECT topic, kafka_partition, kafka_offset::text, reason FROM dead_letters WHERE handler = 'click-balance' AND topic = $1 ORDER BY kafka_offset`,
      [adEvents],
    );
    expect(dead.rows).toEqual([
      { topic: adEvents, kafka_partition: partition, kafka_offset: '5', reason: 'INVALID_JSON' },
      { topic: adEvents, kafka_partition: partition, kafka_offset: '6', reason: expect.stringMatching(/CONTRACT/) },
    ]);
  });

  test('compensations refund each duplicate once whether they arrive before or after their clicks, and a full replay changes nothing', async () => {
    await seedAdvertiser(stores.pool, 5, '10000');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, cpc: '7.77', dailyBudget: null });
    const clicks = Array.from({ length: 60 }, () => clickEvent(51, 5));
    const duplicates = clicks.filter((_, i) => i % 3 === 0);
    const early = duplicates.slice(0, 10);
    const late = duplicates.slice(10);
    // Half the refunds are on Kafka before their clicks, half after; both consumers run at once.
    await produce(
      kafka.connection,
      compensationEvents,
      early.map((c) => ({ key: String(c.campaign_id), value: compensationEvent(c) })),
    );
    const clickSettings = trigger('clickBalance', { batchSize: 7 });
    const compensationSettings = trigger('compensation', { batchSize: 3 });
    const clickSource = await lambdaMapping(clickSettings, createClickBalanceHandler);
    const compensationSource = await lambdaMapping(compensationSettings, createCompensationHandler);
    await produce(kafka.connection, adEvents, clicks.map(asProduced));
    await produce(
      kafka.connection,
      compensationEvents,
      late.map((c) => ({ key: String(c.campaign_id), value: compensationEvent(c) })),
    );
    await waitUntilCaughtUp(kafka.connection, clickSettings.consumerGroupId, adEvents);
    await waitUntilCaughtUp(kafka.connection, compensationSettings.consumerGroupId, compensationEvents);
    expect(clickSource.stats.failures + compensationSource.stats.failures).toBe(0);

    // 40 clicks kept at 7.77 each.
    expect(await balanceOf(stores.pool, 5)).toBe('9689.20');
    const outcomes = await stores.pool.query<{ n: string }>('SELECT count(*) AS n FROM duplicate_clicks WHERE advertiser_id = 5');
    expect(Number(outcomes.rows[0].n)).toBe(20);

    // A replay: new groups read both topics from the beginning again.
    await Promise.all(sources.splice(0).map((s) => s.stop()));
    replay++;
    const replayClicks = trigger('clickBalance');
    const replayCompensations = trigger('compensation');
    await lambdaMapping(replayClicks, createClickBalanceHandler);
    await lambdaMapping(replayCompensations, createCompensationHandler);
    await waitUntilCaughtUp(kafka.connection, replayClicks.consumerGroupId, adEvents);
    await waitUntilCaughtUp(kafka.connection, replayCompensations.consumerGroupId, compensationEvents);
    expect(await balanceOf(stores.pool, 5)).toBe('9689.20');
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'REFUND' AND advertiser_id = 5")).toBeLessThanOrEqual(20);
    expect(await countRows(stores.pool, 'duplicate_clicks', 'advertiser_id = 5')).toBe(20);
  });
});
