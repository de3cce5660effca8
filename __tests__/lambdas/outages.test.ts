import { execFile } from 'node:child_process';
import { AddressInfo, createServer } from 'node:net';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import { createClickBalanceHandler, dailySpendKey } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { DatabaseUnavailableError } from '../../lambdas/shared/errors';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import {
  balanceOf,
  budgetDayOf,
  countRows,
  isolatedWorkerStores,
  seedAdvertiser,
  seedCampaign,
} from './support/test-database';

const run = promisify(execFile);

const stores = isolatedWorkerStores();
const { prefix } = stores;
/** A port nothing listens on. */
const CLOSED_REDIS = 'redis://127.0.0.1:6390';
/** A throwaway Redis this file starts and stops, on a free port so concurrent runs cannot collide. */
let THROWAWAY_PORT = 6391;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function deps(options: { redisUrl?: string | null; databaseUrl?: string } = {}) {
  return stores.deps({ databaseUrl: options.databaseUrl, redisUrl: options.redisUrl });
}

async function startThrowawayRedis(): Promise<void> {
  THROWAWAY_PORT = await freePort();
  await run('redis-server', ['--port', String(THROWAWAY_PORT), '--save', '', '--appendonly', 'no', '--daemonize', 'yes']);
  // --daemonize returns before the server listens: wait until it answers.
  for (let attempt = 0; ; attempt++) {
    const probe = new Redis(THROWAWAY_PORT, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch (error) {
      if (attempt >= 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      probe.disconnect();
    }
  }
}

async function stopThrowawayRedis(): Promise<void> {
  await run('redis-cli', ['-p', String(THROWAWAY_PORT), 'shutdown', 'nosave']).catch(() => undefined);
}

afterAll(async () => {
  await stopThrowawayRedis();
});

describe('Redis unavailable', () => {
  test('with nothing listening, clicks are priced from the database, charged correctly, and fast', async () => {
    await seedAdvertiser(stores.pool, 1, '1000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '25', dailyBudget: '100' });
    const handler = createClickBalanceHandler(deps({ redisUrl: CLOSED_REDIS }));
    const first = await handler(adEventsBatch(Array.from({ length: 3 }, () => clickEvent(11, 1))));
    const second = await handler(adEventsBatch(Array.from({ length: 2 }, () => clickEvent(11, 1)), 1));
    expect([first.charged, second.charged]).toEqual([3, 2]);
    expect(first.cacheFailures).toBeGreaterThan(0);
    // Fail fast: the first call waits at most the connect timeout, later calls skip Redis.
    expect(first.elapsedMs).toBeLessThan(2000);
    expect(second.elapsedMs).toBeLessThan(1000);
    expect(await balanceOf(stores.pool, 1)).toBe('875');
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_PAUSED'")).toBe(1);
  });

  test('when the Redis server stops between batches, charging continues through the database', async () => {
    await seedAdvertiser(stores.pool, 2, '1000');
    await seedCampaign(stores.pool, { campaignId: 21, advertiserId: 2, cpc: '40', dailyBudget: null });
    await startThrowawayRedis();
    const handler = createClickBalanceHandler(deps({ redisUrl: `redis://127.0.0.1:${THROWAWAY_PORT}` }));
    const direct = new Redis(THROWAWAY_PORT, '127.0.0.1', { keyPrefix: prefix });
    direct.on('error', () => undefined);
    const warm = await handler(adEventsBatch([clickEvent(21, 2)]));
    expect(warm.cacheFailures).toBe(0);
    expect(await direct.get(dailySpendKey(21, budgetDayOf(Date.now())))).toBe('40'); // mirrored after commit
    direct.disconnect();
    await handler(adEventsBatch([clickEvent(21, 2)], 1));
    expect(await balanceOf(stores.pool, 2)).toBe('920');

    await stopThrowawayRedis();
    const down = await handler(adEventsBatch(Array.from({ length: 4 }, () => clickEvent(21, 2)), 2));
    const stillDown = await handler(adEventsBatch(Array.from({ length: 4 }, () => clickEvent(21, 2)), 3));

    expect([down.charged, stillDown.charged]).toEqual([4, 4]);
    expect(down.cacheFailures).toBeGreaterThan(0);
    expect(down.elapsedMs).toBeLessThan(2000);
    expect(await balanceOf(stores.pool, 2)).toBe('600'); // 920 - 8 * 40
  });

  test('compensations work without Redis', async () => {
    await seedAdvertiser(stores.pool, 3, '100');
    await seedCampaign(stores.pool, { campaignId: 31, advertiserId: 3, cpc: '10', dailyBudget: null });
    const click = clickEvent(31, 3);
    await createClickBalanceHandler(deps({ redisUrl: CLOSED_REDIS }))(adEventsBatch([click]));
    const summary = await createCompensationHandler(deps({ redisUrl: CLOSED_REDIS }))(compensationBatch([compensationEvent(click)]));
    expect(summary.refunded).toBe(1);
    expect(await balanceOf(stores.pool, 3)).toBe('100');
  });
});

describe('Postgres unavailable', () => {
  test('an unreachable database makes the handler throw, so Lambda retries the batch', async () => {
    const handler = createClickBalanceHandler(deps({ databaseUrl: 'postgres://postgres@127.0.0.1:5499/nowhere' }));
    await expect(handler(adEventsBatch([clickEvent(41, 4)]))).rejects.toBeInstanceOf(DatabaseUnavailableError);
  });

  test('a connection lost mid-batch applies nothing, and the redelivered batch charges exactly once', async () => {
    await seedAdvertiser(stores.pool, 5, '1000');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, cpc: '100', dailyBudget: '300' });
    // The database goes away in the middle of the charge statement: after the DEDUCT rows and
    // the balance update, while day spend is written.
    await stores.pool.query(`
      CREATE FUNCTION drop_connection() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;
      CREATE TRIGGER drop_connection BEFORE INSERT ON campaign_daily_spend FOR EACH ROW EXECUTE FUNCTION drop_connection();`);
    const handler = createClickBalanceHandler(deps());
    const batch = adEventsBatch([clickEvent(51, 5), clickEvent(51, 5), clickEvent(51, 5), { base64: '!!' }], 0, 500);

    await expect(handler(batch)).rejects.toBeInstanceOf(DatabaseUnavailableError);
    expect(await balanceOf(stores.pool, 5)).toBe('1000');
    expect(await countRows(stores.pool, 'ad_balance_histories', 'advertiser_id = 5')).toBe(0);
    expect(await countRows(stores.pool, 'campaign_daily_spend', 'campaign_id = 51')).toBe(0);
    expect(await countRows(stores.pool, 'dead_letters', 'kafka_offset = 503')).toBe(0);
    expect(await countRows(stores.pool, 'outbox', "payload->>'campaign_id' = '51'")).toBe(0);

    await stores.pool.query('DROP TRIGGER drop_connection ON campaign_daily_spend; DROP FUNCTION drop_connection();');
    const retried = await handler(batch);
    await handler(batch);
    expect(retried).toMatchObject({ charged: 3, deadLettered: 1 });
    expect(await balanceOf(stores.pool, 5)).toBe('700');
    expect(await countRows(stores.pool, 'dead_letters', 'kafka_offset = 503')).toBe(1);
    expect(await countRows(stores.pool, 'outbox', "kind = 'CAMPAIGN_PAUSED' AND payload->>'campaign_id' = '51'")).toBe(1);
  });
});
