/**
 * A fresh Postgres database per test file, migrated with the project's own migration command,
 * and a Redis key prefix per test file. Nothing is mocked: handlers run against both servers.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Pool } from 'pg';
import Redis from 'ioredis';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createPoolProvider } from '../../../lambdas/shared/db';
import { RedisCache, createRedisClientProvider } from '../../../lambdas/shared/redis';
import type { OutboxPublishers } from '../../../lambdas/shared/outbox';
import type { WorkerDeps } from '../../../lambdas/shared/runtime';
import { deleteKeysUnder } from '../../../local/redis-keys';

const run = promisify(execFile);

/** Repository root. */
export const REPO_ROOT = path.resolve(__dirname, '../../..');

/** The server tests create their databases on. */
export const ADMIN_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** The Redis tests use. */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A migrated, throwaway database. */
export interface TestDatabase {
  /** Database name (`adstream_t_<random>`). */
  readonly name: string;
  /** Connection string. */
  readonly url: string;
  /** A pool for assertions and seeding (not the handlers' pool). */
  readonly pool: Pool;
  /** Drops the database. */
  drop(): Promise<void>;
}

function urlFor(database: string): string {
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs `npm run db:migrate`'s command against `databaseUrl`. */
export async function migrate(databaseUrl: string): Promise<string> {
  const bin = path.join(REPO_ROOT, 'node_modules/node-pg-migrate/bin/node-pg-migrate.js');
  const { stdout } = await run(process.execPath, [bin, 'up', '--migrations-dir', 'db/migrations', '--use-glob=false', '--migration-file-language', 'sql'], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl },
  });
  return stdout;
}

/** Creates `adstream_t_<random>` on the admin server and migrates it. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `adstream_t_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name);
  if (options.migrate !== false) await migrate(url);
  const pool = new Pool({ connectionString: url, max: 4 });
  // DROP DATABASE ... WITH (FORCE) terminates stragglers; their 'error' must not crash a test.
  pool.on('error', () => undefined);
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const dropper = new Client({ connectionString: ADMIN_DATABASE_URL });
      await dropper.connect();
      try {
        await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    },
  };
}

/** A Redis key prefix unique to one test file. */
export function testKeyPrefix(): string {
  return `adstream_t_${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key under `prefix`. */
export async function cleanKeyspace(prefix: string): Promise<void> {
  await deleteKeysUnder(TEST_REDIS_URL, prefix);
}

/** A plain Redis client on the test keyspace, for assertions. */
export function testRedis(prefix: string): Redis {
  return new Redis(TEST_REDIS_URL, { keyPrefix: prefix, maxRetriesPerRequest: 1 });
}

/** Options of `workerDeps`. */
export interface WorkerDepsOptions {
  /** Database the handler uses. */
  readonly databaseUrl: string;
  /** Redis URL; `null` disables the cache. @default TEST_REDIS_URL */
  readonly redisUrl?: string | null;
  /** Key prefix. */
  readonly keyPrefix: string;
  /** Fake publishers. @default none */
  readonly publishers?: OutboxPublishers;
  /** Budget zone. @default Asia/Seoul */
  readonly budgetTimeZone?: string;
  /** Clock. */
  readonly now?: () => number;
}

/** Handler dependencies with their own pool (max 1, as in Lambda) and cache; `close` ends both. */
export function workerDeps(options: WorkerDepsOptions): WorkerDeps & { close(): Promise<void>; pool: () => Promise<Pool> } {
  // The workers' own pool settings (one connection, timeouts, clients listened to from birth).
  const pool = createPoolProvider({ kind: 'url', url: options.databaseUrl });
  const redisUrl = options.redisUrl === undefined ? TEST_REDIS_URL : options.redisUrl;
  const cache = redisUrl ? new RedisCache(createRedisClientProvider({ kind: 'url', url: redisUrl }, options.keyPrefix)) : RedisCache.disabled();
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  return {
    pool,
    cache,
    publishers: options.publishers ?? {},
    observability: {
      logger: new Logger({ serviceName: 'test', logLevel: 'SILENT' }),
      metrics: new Metrics({ namespace: 'adstream-test', serviceName: 'test' }),
    },
    budgetTimeZone: options.budgetTimeZone ?? 'Asia/Seoul',
    now: options.now,
    async close() {
      await cache.close();
      await (await pool()).end().catch(() => undefined);
    },
  };
}

/** Inserts an advertiser. */
export async function seedAdvertiser(pool: Pool, advertiserId: number, balance: string): Promise<void> {
  await pool.query('INSERT INTO advertisers (advertiser_id, balance) VALUES ($1, $2)', [advertiserId, balance]);
}

/** A campaign row to seed. */
export interface CampaignSeed {
  readonly campaignId: number;
  readonly advertiserId: number;
  readonly cpc?: string | null;
  readonly dailyBudget?: string | null;
  readonly status?: 'ACTIVE' | 'PAUSED' | 'DELETED';
  readonly pausedReason?: string | null;
}

/** Inserts a campaign with a definition (product, placement, category, bid). */
export async function seedCampaign(pool: Pool, seed: CampaignSeed): Promise<void> {
  await pool.query(
    `INSERT INTO campaigns (campaign_id, advertiser_id, status, daily_budget, cpc, paused_reason, product_id, placement, category, bid_price)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'home_top', 'shoes', $8)`,
    [
      seed.campaignId,
      seed.advertiserId,
      seed.status ?? 'ACTIVE',
      seed.dailyBudget === undefined ? '100000' : seed.dailyBudget,
      seed.cpc === undefined ? '100' : seed.cpc,
      seed.pausedReason ?? null,
      9000 + seed.campaignId,
      seed.cpc ?? '100',
    ],
  );
}

/** Current balance of an advertiser, as the exact NUMERIC string. */
export async function balanceOf(pool: Pool, advertiserId: number): Promise<string> {
  const result = await pool.query<{ balance: string }>('SELECT balance::text FROM advertisers WHERE advertiser_id = $1', [advertiserId]);
  return result.rows[0].balance;
}

/** Count of rows in a table, optionally filtered. */
export async function countRows(pool: Pool, table: string, where = 'true', params: unknown[] = []): Promise<number> {
  const result = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, params);
  return Number(result.rows[0].n);
}

/** Epoch ms of `minutes` after the start of the next calendar day in `timeZone`. */
export function startOfNextDay(timeZone = 'Asia/Seoul', minutes = 1, from = Date.now()): number {
  const format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  const day = format.format(from);
  // Walk forward a minute at a time until the calendar day changes (zone offsets are whole minutes).
  let t = from;
  while (format.format(t) === day) t += 60_000;
  return t - (t % 60_000) + minutes * 60_000;
}

/** The calendar day (YYYY-MM-DD) of `ts` in `timeZone`. */
export function budgetDayOf(ts: number, timeZone = 'Asia/Seoul'): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(ts);
}

/** A test file's own stores: a migrated database and a Redis key prefix, removed after the file. */
export interface IsolatedWorkerStores {
  /** The file's Redis key prefix. */
  readonly prefix: string;
  /** The file's database (set once the file's `beforeAll` has run). */
  readonly db: TestDatabase;
  /** A pool on the file's database, for seeding and assertions. */
  readonly pool: Pool;
  /**
   * Handler dependencies bound to the file's database and prefix: closed after the test that
   * asked for them (each holds a connection, and a file's tests together can ask for more than
   * the server allows), or after the file when asked for in a `beforeAll`.
   */
  deps(options?: Omit<WorkerDepsOptions, 'databaseUrl' | 'keyPrefix'> & { readonly databaseUrl?: string }): ReturnType<typeof workerDeps>;
}

/**
 * Registers the `beforeAll` / `afterAll` that give the calling test file its own database and
 * key prefix, and closes every dependency set it handed out before dropping them.
 */
export function isolatedWorkerStores(): IsolatedWorkerStores {
  const prefix = testKeyPrefix();
  const closers: Array<() => Promise<void>> = [];
  const testClosers: Array<() => Promise<void>> = [];
  let db: TestDatabase | undefined;
  const current = (): TestDatabase => {
    if (!db) throw new Error('the test database is created in beforeAll; use it inside hooks and tests');
    return db;
  };
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    for (const close of testClosers.splice(0)) await close();
  });
  afterAll(async () => {
    for (const close of closers) await close();
    await cleanKeyspace(prefix);
    await db?.drop();
  });
  return {
    prefix,
    get db() {
      return current();
    },
    get pool() {
      return current().pool;
    },
    deps(options = {}) {
      const deps = workerDeps({ ...options, databaseUrl: options.databaseUrl ?? current().url, keyPrefix: prefix });
      (expect.getState().currentTestName === undefined ? closers : testClosers).push(() => deps.close());
      return deps;
    },
  };
}
