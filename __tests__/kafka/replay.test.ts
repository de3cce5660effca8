/**
 * GIVEN the local broker, a copy of ad-events / compensation-events, and the real handlers on
 * their own Postgres database
 * WHEN `npm run replay` reads an offset range (or the range of an on-failure queue message)
 * THEN it charges and refunds only what is missing, a second replay moves nothing, a dry run
 * prints the money that would move and moves none, and a range Kafka no longer holds is refused.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironment } from '../../config';
import type { AdEvent } from '../../contracts';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { rankingCacheKey } from '../../contracts';
import { kafkaClient, RTB_RANKINGS_TOPIC_CONFIG } from '../../local/kafka-broker';
import { replayCommand } from '../../scripts/replay';
import { adEventsBatch, clickEvent, compensationEvent, jsonBytes, withWireHeader } from '../lambdas/support/kafka-fixtures';
import { balanceOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign, TEST_REDIS_URL, testRedis } from '../lambdas/support/test-database';
import { BROKER_ENVIRONMENT } from './support/global-setup';
import { kafkaForTests, produce } from './support/kafka';

const kafka = kafkaForTests();
const stores = isolatedWorkerStores();
const config = loadEnvironment(BROKER_ENVIRONMENT);

let adEvents: string;
let compensationEvents: string;

beforeAll(async () => {
  [adEvents, compensationEvents] = await kafka.topics([
    { name: 'replay-ad-events', config: config.confluent.topics['ad-events'] },
    { name: 'replay-compensation-events', config: config.confluent.topics['compensation-events'] },
  ]);
});

/** The command's environment: the test database and the broker's SASL credentials. */
function commandEnv(): NodeJS.ProcessEnv {
  return { DATABASE_URL: stores.db.url, KAFKA_API_KEY: kafka.connection.username, KAFKA_API_SECRET: kafka.connection.password };
}

/** `npm run replay -- …` against the local broker (plaintext, the test's topics need --handler). */
function runReplay(args: string[]) {
  return replayCommand(['--env', BROKER_ENVIRONMENT, '--brokers', kafka.connection.bootstrap, '--plaintext', ...args], commandEnv());
}

/** Replays offsets `from..to` of partition 0 of the test's ad-events through click-balance. */
const replayClicks = (from: number, to: number, ...extra: string[]) =>
  runReplay(['--topic', adEvents, '--partition', '0', '--from-offset', String(from), '--to-offset', String(to), '--handler', 'click-balance', ...extra]);

const ledgerRows = () => countRows(stores.pool, 'ad_balance_histories', "type IN ('DEDUCT', 'REFUND')");

describe('npm run replay', () => {
  // Offsets 0..9 of partition 0: even offsets click campaign 11 (2.50), odd ones campaign 12 (0.10).
  const clicks: AdEvent[] = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? clickEvent(11, 1) : clickEvent(12, 1)));

  beforeAll(async () => {
    await seedAdvertiser(stores.pool, 1, '1000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '2.50', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 12, advertiserId: 1, cpc: '0.10', dailyBudget: null });
    await produce(
      kafka.connection,
      adEvents,
      clicks.map((c) => ({ key: String(c.campaign_id), value: c, partition: 0 })),
    );
    // What the trigger applied before the outage: offsets 0..3 (2 × 2.50 + 2 × 0.10).
    await createClickBalanceHandler(stores.deps())(adEventsBatch(clicks.slice(0, 4)));
    expect(await balanceOf(stores.pool, 1)).toBe('994.80');
  });

  test('--dry-run prints the charges a range would newly apply, per advertiser and campaign, and moves nothing', async () => {
    const rowsBefore = await ledgerRows();
    const { code, output, result } = await replayClicks(2, 8, '--dry-run');

    expect(code).toBe(0);
    // Offsets 2 and 3 are charged already; 4, 6, 8 (3 × 2.50) and 5, 7 (2 × 0.10) would be.
    expect(result?.totals).toMatchObject({ records: 7, charged: 5, skipped: 2, deadLettered: 0 });
    expect(result?.money.campaigns).toEqual([
      { advertiserId: '1', campaignId: '11', charges: 3, charged: '7.50', refunds: 0, refunded: '0' },
      { advertiserId: '1', campaignId: '12', charges: 2, charged: '0.20', refunds: 0, refunded: '0' },
    ]);
    expect(output).toContain('dry run (rolled back, nothing moved)');
    expect(output).toContain('advertiser 1 campaign 11: 3 charged = 7.50, 0 refunded = 0');
    expect(output).toContain('advertiser 1: balance -7.70');
    expect(await balanceOf(stores.pool, 1)).toBe('994.80');
    expect(await ledgerRows()).toBe(rowsBefore);
    expect(await countRows(stores.pool, 'campaign_daily_spend', 'campaign_id IN (11, 12) AND clicks > 2')).toBe(0);
  });

  test('a replay of a range charges only what is missing, and replaying it again moves no money', async () => {
    const first = await replayClicks(2, 8, '--batch-size', '3');
    expect(first.result?.totals).toMatchObject({ records: 7, invocations: 3, charged: 5, skipped: 2 });
    expect(first.output).toContain('advertiser 1: balance -7.70');
    expect(await balanceOf(stores.pool, 1)).toBe('987.10');
    // Offsets 0..8 charged once each; offset 9 is outside the range.
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'DEDUCT' AND event_id = ANY($1)", [clicks.slice(0, 9).map((c) => c.event_id)])).toBe(9);
    expect(await countRows(stores.pool, 'ad_balance_histories', 'event_id = $1', [clicks[9].event_id])).toBe(0);

    const again = await replayClicks(0, 8, '--json');
    const parsed = JSON.parse(again.output);
    expect(parsed.totals).toMatchObject({ records: 9, charged: 0, skipped: 9 });
    expect(parsed.money).toEqual({ campaigns: [], advertisers: [] });
    expect(await balanceOf(stores.pool, 1)).toBe('987.10');
    expect(await countRows(stores.pool, 'campaign_daily_spend', 'campaign_id = 11')).toBe(1);
    const spend = await stores.pool.query<{ spend: string; clicks: string }>(
      'SELECT spend::text, clicks::text FROM campaign_daily_spend WHERE campaign_id = 11',
    );
    expect(spend.rows[0]).toEqual({ spend: '12.50', clicks: '5' });
  });

  test('the range of an on-failure queue message (aws sqs receive-message output) is replayed, compensations refunded once', async () => {
    // Two charged clicks of campaign 11 whose duplicates Flink reported: offsets 0 and 1 of compensation-events.
    const compensations = [compensationEvent(clicks[4]), compensationEvent(clicks[6])];
    await produce(
      kafka.connection,
      compensationEvents,
      compensations.map((c) => ({ key: c.compensation_id, value: c, partition: 0 })),
    );
    const body = {
      requestContext: {
        requestId: '316aa6d0-8154-4f3e-9af7-85d5f4a6bc81',
        functionArn: 'arn:aws:lambda:ap-northeast-2:123456789012:function:adstream-dev-compensation',
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: 3,
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      timestamp: '2026-12-01T00:38:06.021Z',
      KafkaBatchInfo: {
        batchSize: 2,
        bootstrapServers: kafka.connection.bootstrap,
        payloadSize: 2039,
        recordsInfo: {
          [`${compensationEvents}-0`]: {
            firstRecordOffset: '0',
            lastRecordOffset: '1',
            firstRecordTimestamp: '2026-12-01T00:38:04.835Z',
            lastRecordTimestamp: '2026-12-01T00:38:05.580Z',
          },
        },
      },
    };
    const file = join(mkdtempSync(join(tmpdir(), 'adstream-replay-')), 'message.json');
    writeFileSync(file, JSON.stringify({ Messages: [{ MessageId: 'm-1', ReceiptHandle: 'r-1', Body: JSON.stringify(body) }] }));

    const dry = await runReplay(['--on-failure-message', file, '--handler', 'compensation', '--dry-run']);
    expect(dry.output).toContain('advertiser 1 campaign 11: 0 charged = 0, 2 refunded = 5.00');
    expect(dry.output).toContain('advertiser 1: balance +5.00');
    expect(await balanceOf(stores.pool, 1)).toBe('987.10');

    const applied = await runReplay(['--on-failure-message', file, '--handler', 'compensation']);
    expect(applied.result?.ranges).toEqual([{ topic: compensationEvents, partition: 0, fromOffset: 0, toOffset: 1 }]);
    expect(applied.result?.totals).toMatchObject({ records: 2, refunded: 2 });
    expect(await balanceOf(stores.pool, 1)).toBe('992.10');

    const twice = await runReplay(['--on-failure-message', file, '--handler', 'compensation']);
    expect(twice.result?.totals).toMatchObject({ records: 2, refunded: 0 });
    expect(twice.result?.money.campaigns).toEqual([]);
    expect(await balanceOf(stores.pool, 1)).toBe('992.10');
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'REFUND'")).toBe(2);
  });

  test('a range past the end of the partition, or one retention already deleted, is refused and nothing moves', async () => {
    await expect(replayClicks(8, 10)).rejects.toThrow(/offset 10 is past the end of .*-0 \(its last offset is 9\); nothing replayed/);
    // Retention moving the log start: offsets below 5 are gone.
    const admin = kafkaClient(kafka.connection, 'test-retention').admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [adEvents] });
    await admin.deleteTopicRecords({ topic: adEvents, partitions: [{ partition: 0, offset: '5' }] });
    await admin.disconnect();
    await expect(replayClicks(3, 9)).rejects.toMatchObject({
      name: 'RecoveryRequestError',
      message: expect.stringMatching(
        /offsets 3\.\.4 of .*-0 are gone .*starts at 5\); nothing replayed\. To replay what is left: --topic .*-replay-ad-events --partition 0 --from-offset 5 --to-offset 9\./,
      ),
    });
    expect(await countRows(stores.pool, 'ad_balance_histories', 'event_id = $1', [clicks[9].event_id])).toBe(0);
    expect(await balanceOf(stores.pool, 1)).toBe('992.10');
  });

  test('without --handler, a topic no trigger consumes is refused with the choices', async () => {
    await expect(runReplay(['--topic', adEvents, '--partition', '0', '--from-offset', '5', '--to-offset', '6'])).rejects.toThrow(
      /give --handler \(click-balance, compensation or ranking-cache\)/,
    );
  });

  test('a range of rtb-rankings goes through ranking-cache into Redis (which it needs); it moves no money, so it has no dry run', async () => {
    const [rankings] = await kafka.topics([{ name: 'replay-rtb-rankings', config: RTB_RANKINGS_TOPIC_CONFIG }]);
    const key = { placement: 'home_top', category: 'shoes' };
    const ranking = [{ rank_no: 1, campaign_id: 11, advertiser_id: 1, product_id: 9011, bid_price: '350.50', score: 3.5 }];
    await produce(kafka.connection, rankings, [
      { key: withWireHeader(jsonBytes(key), 100_011), value: withWireHeader(jsonBytes({ ...key, ranking }), 100_012), partition: 0 },
    ]);
    const args = ['--topic', rankings, '--partition', '0', '--from-offset', '0', '--to-offset', '0', '--handler', 'ranking-cache'];
    await expect(runReplay([...args, '--dry-run'])).rejects.toThrow(/ranking-cache moves no money and writes only Redis: there is nothing to dry-run/);
    await expect(runReplay(args)).rejects.toThrow(/ranking-cache writes Redis: set REDIS_URL/);

    const env = { ...commandEnv(), REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: stores.prefix };
    const { result } = await replayCommand(['--env', BROKER_ENVIRONMENT, '--brokers', kafka.connection.bootstrap, '--plaintext', ...args], env);
    expect(result?.totals).toMatchObject({ records: 1, invocations: 1, deadLettered: 0 });
    const redis = testRedis(stores.prefix);
    try {
      expect(JSON.parse((await redis.get(rankingCacheKey(key))) ?? 'null')).toEqual({ ...key, ranking });
    } finally {
      redis.disconnect();
    }
  });
});
