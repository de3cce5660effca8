import { execFile } from 'node:child_process';
import { AddressInfo, connect as connectTcp, createServer, Server, Socket } from 'node:net';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import { createClickBalanceHandler, dailySpendKey } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { createPoolProvider } from '../../lambdas/shared/db';
import { DatabaseUnavailableError } from '../../lambdas/shared/errors';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { balanceOf, budgetDayOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign, TEST_REDIS_URL } from './support/test-database';

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
    const second = await handler(
      adEventsBatch(
        Array.from({ length: 2 }, () => clickEvent(11, 1)),
        1,
      ),
    );
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
    const down = await handler(
      adEventsBatch(
        Array.from({ length: 4 }, () => clickEvent(21, 2)),
        2,
      ),
    );
    const stillDown = await handler(
      adEventsBatch(
        Array.from({ length: 4 }, () => clickEvent(21, 2)),
        3,
      ),
    );

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

/**
 * A relay to the test Redis that can be told to hang: from then on it keeps every connection
 * open and accepts what the client sends, but forwards nothing and answers nothing (a Redis
 * stopped mid-flight, or a black-holed network). Counts the bytes clients send while hung.
 */
async function hangableRedis(): Promise<{ url: string; hang: () => void; bytesWhileHung: () => number; close: () => Promise<void> }> {
  const target = new URL(TEST_REDIS_URL);
  const sockets = new Set<Socket>();
  let hung = false;
  let bytes = 0;
  const server = createServer((client) => {
    const upstream = connectTcp(Number(target.port || 6379), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.on('data', (chunk: Buffer) => {
      if (hung) bytes += chunk.length;
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!hung) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hang: () => {
      hung = true;
    },
    bytesWhileHung: () => bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('Redis hung (connected, never answering)', () => {
  test('after one timeout the cache is treated as down for a while: later batches send it nothing and do not wait', async () => {
    await seedAdvertiser(stores.pool, 8, '1000');
    await seedCampaign(stores.pool, { campaignId: 81, advertiserId: 8, cpc: '10', dailyBudget: '100000' });
    const relay = await hangableRedis();
    try {
      const handler = createClickBalanceHandler(deps({ redisUrl: relay.url }));
      const warm = await handler(adEventsBatch([clickEvent(81, 8)], 0, 0));
      expect(warm.cacheFailures).toBe(0);
      relay.hang();
      const first = await handler(adEventsBatch([clickEvent(81, 8)], 0, 1));
      expect(first.charged).toBe(1);
      expect(first.cacheFailures).toBeGreaterThan(0);
      const sentByFirst = relay.bytesWhileHung();
      expect(sentByFirst).toBeGreaterThan(0);
      const later = [];
      for (let i = 2; i <= 5; i++) later.push(await handler(adEventsBatch([clickEvent(81, 8)], 0, i)));
      expect(later.map((s) => s.charged)).toEqual([1, 1, 1, 1]);
      // Nothing more was sent to the hung Redis: each later batch skipped it at once.
      expect(relay.bytesWhileHung()).toBe(sentByFirst);
      expect(later.every((s) => s.cacheFailures > 0)).toBe(true);
      expect(await balanceOf(stores.pool, 8)).toBe('940');
    } finally {
      await relay.close();
    }
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

/** ErrorResponse FATAL 57P01 (admin shutdown), as the server sends it when a backend is terminated. */
function adminShutdownError(): Buffer {
  const fields = Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0', 'latin1');
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([header, fields]);
}

/**
 * A TCP proxy to Postgres that, on every connection, appends a FATAL 57P01 to the server's first
 * ReadyForQuery, in the same write: the client learns it is connected and, in the same tick,
 * that its backend is gone.
 */
async function fatalAfterStartupProxy(target: URL): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((client) => {
    connections++;
    sockets.add(client);
    const upstream = connectTcp(Number(target.port || 5432), target.hostname);
    sockets.add(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const total = 1 + pending.readInt32BE(1);
        if (pending.length < total) break;
        const message = pending.subarray(0, total);
        pending = pending.subarray(total);
        if (message[0] === 0x5a /* Z */) {
          client.end(Buffer.concat([message, adminShutdownError()]));
          upstream.destroy();
          return;
        }
        client.write(message);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target.toString());
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('Postgres FATAL right after connecting', () => {
  test('a 57P01 arriving with the startup ReadyForQuery fails the batch for a retry and does not crash the process', async () => {
    await seedAdvertiser(stores.pool, 6, '1000');
    await seedCampaign(stores.pool, { campaignId: 61, advertiserId: 6, cpc: '100', dailyBudget: null });
    const proxy = await fatalAfterStartupProxy(new URL(stores.db.url));
    const pool = createPoolProvider({ kind: 'url', url: proxy.url });
    const base = deps();
    const handler = createClickBalanceHandler({ ...base, pool });
    const batch = adEventsBatch([clickEvent(61, 6), clickEvent(61, 6)], 0, 900);
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        await expect(handler(batch)).rejects.toBeInstanceOf(DatabaseUnavailableError);
      }
      expect(proxy.connections()).toBeGreaterThanOrEqual(3);
      // Give any late 'error' event a chance to surface as an uncaught exception.
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await proxy.close();
      await (await pool()).end().catch(() => undefined);
    }
    expect(await balanceOf(stores.pool, 6)).toBe('1000');
    const retried = await createClickBalanceHandler(base)(batch);
    expect(retried.charged).toBe(2);
    expect(await balanceOf(stores.pool, 6)).toBe('800');
  });
});
