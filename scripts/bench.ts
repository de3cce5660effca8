/**
 * Click-balance benchmark: the REAL click-balance handler (lambdas/click-balance/handler.ts,
 * loaded as Lambda loads it, env parsed at module load) against local Postgres and Redis, next
 * to a naive per-record baseline shaped like the seed's Java sketch (per click: Redis GET cpc,
 * UPDATE advertisers, INSERT history, autocommit).
 *
 *   npm run bench                              100 000 clicks, batches of 100 and 500
 *   npm run bench -- --clicks 20000            a quicker run
 *   npm run bench -- --baseline-clicks 5000    baseline sample (default min(10 000, clicks))
 *   npm run bench -- --json                    same, plus one JSON object on the last line
 *   npm run bench -- --partitions 1,3          partitions processed concurrently (default 1,3)
 *   npm run bench -- --profile                 where a batch of 100 spends its time
 *   npm run bench -- --history                 also with 20 million ledger rows of past days
 *
 * The floor: one transaction on the same driver that inserts a batch's ledger rows with
 * INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING and updates one balance; it runs
 * interleaved with the handler's batches of 100 (same run, same load), and the handler's p50 is
 * reported as a ratio of the floor's p50. So is the charge statement alone (the handler's one
 * round trip, `SELECT adstream_charge_clicks(…)`, sent from its own client without decoding or
 * Redis), and, with a local server, the Postgres backend CPU per batch of all three.
 *
 * Every run creates its own database (migrated with the project's migration command) and Redis
 * key prefix, and removes both at the end, with the test suite's helpers. Admin connection:
 * DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres; Redis: REDIS_URL, else
 * redis://127.0.0.1:6379.
 */
import { parseArgs } from 'node:util';
import { ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import Redis from 'ioredis';
import pg from 'pg';
import type { AdEvent } from '../contracts';
import { kafkaEvent } from '../__tests__/lambdas/support/kafka-fixtures';
import { cleanKeyspace, createTestDatabase, TEST_REDIS_URL } from '../__tests__/lambdas/support/test-database';
import type { LambdaKafkaEvent } from '../lambdas/shared/kafka-event';
import { RedisCache } from '../lambdas/shared/redis';
import { budgetDayOf } from '../lambdas/shared/budget-day';

/** The handler's budget zone in the bench (its default); the floor and the history use its days. */
const BUDGET_TIME_ZONE = 'Asia/Seoul';

const REDIS_URL = TEST_REDIS_URL;
const CPC = '120.50';
/** Balances and budgets no run can exhaust, so no campaign pauses mid-run (checked at the end). */
const BALANCE = '1000000000000';
const DAILY_BUDGET = '1000000000000';

/** Options from the command line. */
interface BenchOptions {
  readonly clicks: number;
  readonly baselineClicks: number;
  readonly campaigns: number;
  readonly advertisers: number;
  readonly batchSizes: readonly number[];
  readonly partitions: readonly number[];
  readonly warmupBatches: number;
  readonly json: boolean;
  readonly profile: boolean;
  /** Ledger rows of past days loaded before the history run; 0 without --history. */
  readonly historyRows: number;
  readonly historyDays: number;
}

/** One measured run. */
interface RunResult {
  readonly name: string;
  readonly batchSize: number;
  /** Partitions processed at the same time, each by its own process (a Lambda instance each). */
  readonly partitions: number;
  readonly clicks: number;
  readonly batches: number;
  readonly seconds: number;
  readonly clicksPerSecond: number;
  readonly p50BatchMs: number;
  readonly p99BatchMs: number;
  readonly maxBatchMs: number;
  readonly dbRoundTripsPerBatch: number;
  readonly maxDbRoundTripsPerBatch: number;
}

class BenchError extends Error {
  override readonly name = 'BenchError';
}

/** `npm run bench -- --help`. */
export const BENCH_USAGE = `usage: npm run bench [-- <options>]

Measures the click-balance handler against real Postgres and Redis and prints a table.
  --clicks <n>            clicks per measured run (default 100000)
  --baseline-clicks <n>   clicks of the per-record baseline run (default min(10000, clicks))
  --campaigns <n>         campaigns (default 50)
  --advertisers <n>       advertisers (default 10)
  --batch-sizes <list>    comma-separated, must include 100 (default 100,500)
  --partitions <list>     comma-separated, 1 to 16, must include 1 (default 1,3)
  --warmup-batches <n>    batches before measuring (default 20)
  --json                  one JSON object on the last line
  --profile               time per kind of statement
  --history               also run batches of 100 after loading past days of ledger history
  --history-rows <n>      ledger rows loaded by --history (default 20000000)
  --history-days <n>      past days they are spread over, one partition each (default 30)
  --help                  this text`;

function parseOptions(argv: readonly string[]): BenchOptions | 'help' {
  const names = [
    'clicks',
    'baseline-clicks',
    'campaigns',
    'advertisers',
    'batch-sizes',
    'partitions',
    'warmup-batches',
    'history-rows',
    'history-days',
  ] as const;
  let parsed: ReturnType<typeof parseArgs<{ options: Record<string, { type: 'string' | 'boolean' }>; strict: true; allowPositionals: false }>>['values'];
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        ...Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])),
        json: { type: 'boolean' },
        profile: { type: 'boolean' },
        history: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new BenchError(`${(error as Error).message}\n\n${BENCH_USAGE}`);
  }
  if (parsed.help === true) return 'help';
  const value = (flag: string): string | undefined => {
    const raw = parsed[flag.replace(/^--/, '')];
    return typeof raw === 'string' ? raw : undefined;
  };
  const positive = (flag: string, fallback: number): number => {
    const raw = value(flag);
    if (raw === undefined) return fallback;
    const n = Number(raw.replace(/_/g, ''));
    if (!Number.isSafeInteger(n) || n < 1) throw new BenchError(`${flag} must be a positive integer, got ${JSON.stringify(raw)}`);
    return n;
  };
  const clicks = positive('--clicks', 100_000);
  const batchSizes = (value('--batch-sizes') ?? '100,500').split(',').map((s) => Number(s));
  if (batchSizes.some((n) => !Number.isSafeInteger(n) || n < 1) || !batchSizes.includes(100)) {
    throw new BenchError('--batch-sizes must be positive integers and include 100 (the reported p99 is for batches of 100)');
  }
  const partitions = (value('--partitions') ?? '1,3').split(',').map((s) => Number(s));
  if (partitions.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 16) || !partitions.includes(1)) {
    throw new BenchError('--partitions must be integers from 1 to 16 and include 1 (the headline numbers are for one partition)');
  }
  return {
    clicks,
    partitions,
    baselineClicks: positive('--baseline-clicks', Math.min(10_000, clicks)),
    campaigns: positive('--campaigns', 50),
    advertisers: positive('--advertisers', 10),
    batchSizes,
    warmupBatches: positive('--warmup-batches', 20),
    json: parsed.json === true,
    profile: parsed.profile === true,
    historyRows: parsed.history === true ? positive('--history-rows', 20_000_000) : 0,
    historyDays: positive('--history-days', 30),
  };
}

// ---------------------------------------------------------------------------------------------
// Database round trips: every query of every pg client in this process (the handler's pool
// included) goes through Client.prototype.query, so counting there sees all of them exactly once.
let queryCount = 0;
/** With --profile: wall time spent waiting for each kind of statement (first words of its SQL). */
const queryTime = new Map<string, { count: number; ms: number }>();
let profiling = false;
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function countedQuery(this: pg.Client, ...args: unknown[]) {
  queryCount += 1;
  const result = (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
  if (profiling && result instanceof Promise) {
    const text = typeof args[0] === 'string' ? args[0] : String((args[0] as { text?: string })?.text ?? '?');
    const label = text.replace(/\s+/g, ' ').trim().slice(0, 48);
    const started = performance.now();
    const settle = () => {
      const entry = queryTime.get(label) ?? { count: 0, ms: 0 };
      entry.count += 1;
      entry.ms += performance.now() - started;
      queryTime.set(label, entry);
    };
    result.then(settle, settle);
  }
  return result;
} as typeof pg.Client.prototype.query;

// With --profile: wall time the handler waits for its Redis cache (reads and mirror writes).
for (const method of ['getMany', 'setMany'] as const) {
  const original = RedisCache.prototype[method] as (...a: unknown[]) => Promise<unknown>;
  (RedisCache.prototype as unknown as Record<string, unknown>)[method] = async function timed(this: RedisCache, ...args: unknown[]) {
    if (!profiling) return original.apply(this, args);
    const started = performance.now();
    try {
      return await original.apply(this, args);
    } finally {
      const label = `Redis ${method === 'getMany' ? 'MGET' : 'SET mirrors (one script)'}`;
      const entry = queryTime.get(label) ?? { count: 0, ms: 0 };
      entry.count += 1;
      entry.ms += performance.now() - started;
      queryTime.set(label, entry);
    }
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

function summarise(
  name: string,
  batchSize: number,
  partitions: number,
  clicks: number,
  batchMs: readonly number[],
  roundTrips: readonly number[],
  seconds: number,
): RunResult {
  const sorted = [...batchMs].sort((a, b) => a - b);
  const round = (n: number, digits = 2) => Number(n.toFixed(digits));
  return {
    name,
    batchSize,
    partitions,
    clicks,
    batches: batchMs.length,
    seconds: round(seconds, 3),
    clicksPerSecond: Math.round(clicks / seconds),
    p50BatchMs: round(percentile(sorted, 50)),
    p99BatchMs: round(percentile(sorted, 99)),
    maxBatchMs: round(sorted[sorted.length - 1] ?? 0),
    dbRoundTripsPerBatch: round(roundTrips.reduce((a, b) => a + b, 0) / Math.max(1, roundTrips.length)),
    maxDbRoundTripsPerBatch: Math.max(0, ...roundTrips),
  };
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

function advertiserOf(campaignId: number, options: BenchOptions): number {
  return 1 + ((campaignId - 1) % options.advertisers);
}

async function seed(pool: pg.Pool, redis: Redis, options: BenchOptions): Promise<void> {
  const advertisers = Array.from({ length: options.advertisers }, (_, i) => i + 1);
  const campaigns = Array.from({ length: options.campaigns }, (_, i) => i + 1);
  await pool.query(`INSERT INTO advertisers (advertiser_id, balance) SELECT id, $2::numeric FROM unnest($1::bigint[]) AS id`, [advertisers, BALANCE]);
  await pool.query(
    `INSERT INTO campaigns (campaign_id, advertiser_id, status, daily_budget, cpc, product_id, placement, category, bid_price)
     SELECT c, a, 'ACTIVE', $3::numeric, $4::numeric, 9000 + c, 'home_top', 'shoes', $4::numeric
       FROM unnest($1::bigint[], $2::bigint[]) AS t(c, a)`,
    [campaigns, campaigns.map((c) => advertiserOf(c, options)), DAILY_BUDGET, CPC],
  );
  // The prices the naive baseline reads per click (cpc:{campaign_id}); the handler charges the
  // database price and never reads them.
  const pipeline = redis.pipeline();
  for (const c of campaigns) pipeline.set(`cpc:${c}`, CPC);
  await pipeline.exec();
}

async function resetLedger(pool: pg.Pool): Promise<void> {
  await pool.query('TRUNCATE ad_balance_histories, campaign_daily_spend, outbox, dead_letters');
  await pool.query('UPDATE advertisers SET balance = $1::numeric', [BALANCE]);
  await pool.query('VACUUM ANALYZE');
}

let clickSequence = 0;

function click(runId: string, campaignId: number, options: BenchOptions, now: number): AdEvent {
  clickSequence += 1;
  return {
    event_id: `bench-${runId}-${clickSequence}`,
    event_type: 'CLICK',
    event_ts: now,
    campaign_id: campaignId,
    advertiser_id: advertiserOf(campaignId, options),
    product_id: 9000 + campaignId,
    ad_id: `ad-${campaignId}`,
    placement: 'home_top',
    category: 'shoes',
    device_id: `device-${clickSequence % 5000}`,
    session_id: `session-${clickSequence % 20000}`,
    user_id: null,
    actual_price: CPC,
    revenue_amount: null,
  };
}

/** Lambda-shaped batches of `batchSize` clicks from one partition, campaigns drawn at random. */
function* batchesOf(runId: string, total: number, batchSize: number, options: BenchOptions, partition = 0): Generator<LambdaKafkaEvent> {
  let offset = 0;
  for (let start = 0; start < total; start += batchSize) {
    const now = Date.now();
    const size = Math.min(batchSize, total - start);
    const values = Array.from({ length: size }, () => click(runId, 1 + Math.floor(Math.random() * options.campaigns), options, now));
    yield kafkaEvent('ad-events', [{ partition, firstOffset: offset, values }]);
    offset += size;
  }
}

// ---------------------------------------------------------------------------------------------
// The floor: what any charge of a batch costs at the least on this driver and database.

/** Advertiser the floor's batches are charged to (its balance goes down by exactly their sum). */
const FLOOR_ADVERTISER = 1;

/**
 * A contender interleaved with the handler's batches: its own pg client (and backend), one timed
 * batch at a time. Subclasses say what a batch sends (`send`).
 */
abstract class Interleaved {
  protected sequence = 0;
  readonly batchMs: number[] = [];
  clicks = 0;
  /** Backend CPU of this client's session since it was opened (local server only). */
  cpu?: BackendCpu;

  constructor(
    protected readonly client: pg.Client,
    protected readonly runId: string,
    protected readonly options: BenchOptions,
  ) {}

  /** Connects a contender of class `kind`. */
  static async connect<T extends Interleaved>(
    kind: new (client: pg.Client, runId: string, options: BenchOptions) => T,
    databaseUrl: string,
    runId: string,
    options: BenchOptions,
  ): Promise<T> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const contender = new kind(client, runId, options);
    contender.cpu = await BackendCpu.of(client, databaseUrl);
    return contender;
  }

  /** Sends a batch of `size` clicks; returns the wall time of its database part (inputs are built before the clock starts). */
  protected abstract send(size: number): Promise<number>;

  /** One batch; returns its wall time. */
  async batch(size: number): Promise<number> {
    const elapsed = await this.send(size);
    this.batchMs.push(elapsed);
    this.clicks += size;
    return elapsed;
  }

  p50(): number {
    return percentile(
      [...this.batchMs].sort((a, b) => a - b),
      50,
    );
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}

/**
 * One transaction per batch on its own pg client (the same driver as the handler): BEGIN, the
 * batch's ledger rows in one INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING, one balance
 * UPDATE, COMMIT. Nothing the handler must do beyond that (locks, prices, voids, spend, budgets,
 * outbox, dead letters, cache mirrors) is in it.
 */
class Floor extends Interleaved {
  protected async send(size: number): Promise<number> {
    const ids: string[] = [];
    const campaigns: number[] = [];
    for (let i = 0; i < size; i += 1) {
      this.sequence += 1;
      ids.push(`floor-${this.runId}-${this.sequence}`);
      // Campaigns of the floor advertiser only, so the ledger check still adds up.
      campaigns.push(
        FLOOR_ADVERTISER + this.options.advertisers * Math.floor(Math.random() * Math.max(1, Math.floor(this.options.campaigns / this.options.advertisers))),
      );
    }
    const now = Date.now();
    const day = budgetDayOf(now, BUDGET_TIME_ZONE);
    const started = performance.now();
    await this.client.query('BEGIN');
    await this.client.query(
      `INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
       SELECT t.event_id, 'DEDUCT', $2::numeric, $3::bigint, t.campaign_id, $4::date, to_timestamp($5::bigint / 1000.0)
         FROM unnest($1::text[], $6::bigint[]) AS t(event_id, campaign_id)
       ON CONFLICT DO NOTHING`,
      [ids, CPC, FLOOR_ADVERTISER, day, now, campaigns],
    );
    await this.client.query('UPDATE advertisers SET balance = balance - $1::numeric * $2::int, updated_at = now() WHERE advertiser_id = $3', [
      CPC,
      size,
      FLOOR_ADVERTISER,
    ]);
    await this.client.query('COMMIT');
    return performance.now() - started;
  }
}

/**
 * CPU time (user + system) of one Postgres backend, read from /proc/<pid>/stat: only when the
 * server runs on this machine and its processes are readable (undefined otherwise). Unlike wall
 * time it does not count waiting for a CPU, the WAL flush or the network.
 */
class BackendCpu {
  private readonly startTicks: number;

  private constructor(private readonly pid: number) {
    this.startTicks = BackendCpu.ticks(pid);
  }

  /** The backend serving `client`, if it can be read here. */
  static async of(client: pg.Client | pg.PoolClient, databaseUrl: string, pid?: number): Promise<BackendCpu | undefined> {
    if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(new URL(databaseUrl).hostname)) return undefined;
    const backend = pid ?? Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    try {
      return new BackendCpu(backend);
    } catch {
      return undefined;
    }
  }

  private static ticks(pid: number): number {
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
  }

  /** Milliseconds of CPU since this reading was opened (Linux reports ticks of 1/100 s to processes). */
  sinceMs(): number {
    return (BackendCpu.ticks(this.pid) - this.startTicks) * 10;
  }
}

/**
 * The charge statement alone (issue 14): `SELECT adstream_charge_clicks(…)`, the handler's one
 * round trip for a clean batch, sent from its own pg client with batches shaped like the
 * handler's (100 clicks over the seeded campaigns), interleaved with the handler and the floor.
 * No decoding, no validation, no Redis: how far the database part alone is from the floor.
 */
class ChargeStatement extends Interleaved {
  protected async send(size: number): Promise<number> {
    const ids: string[] = [];
    const campaigns: number[] = [];
    const advertisers: number[] = [];
    const now = Date.now();
    for (let i = 0; i < size; i += 1) {
      this.sequence += 1;
      const campaign = 1 + Math.floor(Math.random() * this.options.campaigns);
      ids.push(`statement-${this.runId}-${this.sequence}`);
      campaigns.push(campaign);
      advertisers.push(advertiserOf(campaign, this.options));
    }
    const day = budgetDayOf(now, BUDGET_TIME_ZONE);
    const started = performance.now();
    await this.client.query('SELECT adstream_charge_clicks($1, $2, $3, $4, $5, $6, $7, $8)', [
      ids,
      campaigns,
      advertisers,
      ids.map(() => now),
      BUDGET_TIME_ZONE,
      day,
      day,
      day,
    ]);
    return performance.now() - started;
  }
}

/** `day` minus `n` days, as YYYY-MM-DD. */
function dayBefore(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) - n * 86_400_000).toISOString().slice(0, 10);
}

/**
 * --history: `historyRows` DEDUCT rows spread over `historyDays` past days, up to yesterday. Each day is generated into a table of its own (generate_series, random md5 event
 * ids, so the unique index is as scattered as real ids make it), its indexes built once at
 * ATTACH PARTITION (a CHECK matching the range spares the scan), two days at a time.
 */
async function loadHistory(
  databaseUrl: string,
  options: BenchOptions,
  log: (text: string) => void,
): Promise<{ seconds: number; rows: number; oldestDay: string; newestDay: string }> {
  const started = performance.now();
  const today = budgetDayOf(Date.now(), BUDGET_TIME_ZONE);
  // From yesterday back: the charge statement looks into yesterday's partition for re-stamped copies.
  const days = Array.from({ length: options.historyDays }, (_, i) => dayBefore(today, i + 1));
  const perDay = Math.ceil(options.historyRows / days.length);
  const base = 1_000_000_000_000;
  const clients = await Promise.all(
    [0, 1].map(async () => {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      // The bench's own loading sessions (never a worker's): a bigger sort for the index builds.
      await client.query("SET maintenance_work_mem = '256MB'");
      return client;
    }),
  );
  let attachLock = Promise.resolve();
  try {
    let next = 0;
    let done = 0;
    await Promise.all(
      clients.map(async (client) => {
        while (next < days.length) {
          const index = next++;
          const day = days[index];
          const name = `ad_balance_histories_p${day.replace(/-/g, '')}`;
          const rows = Math.min(perDay, options.historyRows - index * perDay);
          if (rows <= 0) continue;
          await client.query(`DROP TABLE IF EXISTS ${name}`);
          await client.query(`CREATE TABLE ${name} (LIKE ad_balance_histories INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
          await client.query(
            `INSERT INTO ${name} (id, event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
             SELECT $1::bigint + g, 'hist-' || md5($2 || ':' || g), 'DEDUCT', $3::numeric, 1 + g % $4, 1 + g % $5, $2::date,
                    $2::date + make_interval(secs => (g % 86400))
               FROM generate_series(1, $6::int) AS g`,
            [base + index * perDay, day, CPC, options.advertisers, options.campaigns, rows],
          );
          await client.query(`ALTER TABLE ${name} ADD CONSTRAINT ${name}_day CHECK (spend_date >= '${day}' AND spend_date < '${day}'::date + 1)`);
          const attach = attachLock.then(() =>
            client.query(`ALTER TABLE ad_balance_histories ATTACH PARTITION ${name} FOR VALUES FROM ('${day}') TO ('${day}'::date + 1)`),
          );
          attachLock = attach.then(
            () => undefined,
            () => undefined,
          );
          await attach;
          await client.query(`ALTER TABLE ${name} DROP CONSTRAINT ${name}_day`);
          done += rows;
          if (!options.json || process.stderr.isTTY) process.stderr.write(`\rhistory: ${done} of ${options.historyRows} rows`);
        }
      }),
    );
    process.stderr.write('\n');
    await clients[0].query(`SELECT setval('ad_balance_histories_id_seq', $1::bigint)`, [base + days.length * perDay + 1]);
    await clients[0].query('VACUUM ANALYZE ad_balance_histories');
    // Write the loaded pages out now: otherwise the checkpoint that follows a load of several GB
    // runs during the measured batches and slows them and their floor alike. A production
    // ledger's history was written long before the batches that charge next to it.
    try {
      await clients[0].query('CHECKPOINT');
    } catch (error) {
      log(`history: CHECKPOINT refused (${(error as Error).message}); the history run may overlap the load's checkpoint`);
    }
    const { rows } = await clients[0].query<{ n: string }>("SELECT count(*) AS n FROM ad_balance_histories WHERE event_id LIKE 'hist-%'");
    const seconds = (performance.now() - started) / 1000;
    log(`history: ${rows[0].n} ledger rows over ${days.length} past days (${days[days.length - 1]} to ${days[0]}) loaded in ${seconds.toFixed(0)} s`);
    return { seconds, rows: Number(rows[0].n), oldestDay: days[days.length - 1], newestDay: days[0] };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

// ---------------------------------------------------------------------------------------------
// The two contenders.

type Handler = (event: unknown) => Promise<{ charged: number; deadLettered: number }>;

async function runHandler(
  handler: Handler,
  runId: string,
  clicks: number,
  batchSize: number,
  options: BenchOptions,
  { floor, statement, name, databaseUrl }: { floor?: Floor; statement?: ChargeStatement; name?: string; databaseUrl?: string } = {},
): Promise<RunResult & { handlerBackendCpuMs?: number }> {
  for (const event of batchesOf(`${runId}-warmup`, options.warmupBatches * batchSize, batchSize, options)) await handler(event);
  // The handler's own backend (its pool's one connection, application_name adstream-worker).
  const handlerCpu = databaseUrl ? await handlerBackendCpu(databaseUrl) : undefined;
  const batchMs: number[] = [];
  const roundTrips: number[] = [];
  let charged = 0;
  let busy = 0;
  profiling = options.profile && batchSize === 100;
  for (const event of batchesOf(runId, clicks, batchSize, options)) {
    const queriesBefore = queryCount;
    const started = performance.now();
    const summary = await handler(event);
    const elapsed = performance.now() - started;
    busy += elapsed;
    batchMs.push(elapsed);
    roundTrips.push(queryCount - queriesBefore);
    charged += summary.charged;
    if (summary.deadLettered > 0) throw new BenchError(`handler dead-lettered ${summary.deadLettered} generated clicks; the benchmark input is wrong`);
    // Interleaved: the floor sees the same machine load, cache and ledger as the handler.
    if (floor || statement) {
      profiling = false;
      await floor?.batch(batchSize);
      await statement?.batch(batchSize);
      profiling = options.profile && batchSize === 100;
    }
  }
  profiling = false;
  const handlerBackendCpuMs = handlerCpu ? handlerCpu.sinceMs() / batchMs.length : undefined;
  if (charged !== clicks) throw new BenchError(`handler charged ${charged} of ${clicks} clicks`);
  // Throughput over time spent inside the handler: building the Kafka events is Lambda's work.
  return { ...summarise(name ?? `handler, batch ${batchSize}, 1 partition`, batchSize, 1, clicks, batchMs, roundTrips, busy / 1000), handlerBackendCpuMs };
}

/** BackendCpu of the handler's pool connection, found by its application_name on the bench database. */
async function handlerBackendCpu(databaseUrl: string): Promise<BackendCpu | undefined> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'adstream-worker'",
    );
    return rows.length === 1 ? await BackendCpu.of(client, databaseUrl, Number(rows[0].pid)) : undefined;
  } finally {
    await client.end();
  }
}

/**
 * The seed's sketch, per record: decode, Redis GET cpc, UPDATE balance, INSERT history — each
 * statement its own autocommit round trip, no idempotency, no budget work. One connection, as
 * the handler has.
 */
async function runBaseline(databaseUrl: string, redis: Redis, runId: string, clicks: number, options: BenchOptions): Promise<RunResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const chargeBatch = async (event: LambdaKafkaEvent): Promise<void> => {
    for (const records of Object.values(event.records)) {
      for (const record of records) {
        const ad = JSON.parse(Buffer.from(record.value as string, 'base64').toString('utf8')) as AdEvent;
        if (ad.event_type !== 'CLICK') continue;
        const cpc = (await redis.get(`cpc:${ad.campaign_id}`)) ?? CPC;
        await client.query('UPDATE advertisers SET balance = balance - $1::numeric WHERE advertiser_id = $2', [cpc, ad.advertiser_id]);
        await client.query(
          `INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
           VALUES ($1, 'DEDUCT', $2::numeric, $3, $4, (to_timestamp($5 / 1000.0) AT TIME ZONE 'Asia/Seoul')::date, to_timestamp($5 / 1000.0))`,
          [ad.event_id, cpc, ad.advertiser_id, ad.campaign_id, ad.event_ts],
        );
      }
    }
  };
  try {
    for (const event of batchesOf(`${runId}-warmup`, options.warmupBatches * 100, 100, options)) await chargeBatch(event);
    const batchMs: number[] = [];
    const roundTrips: number[] = [];
    let busy = 0;
    for (const event of batchesOf(runId, clicks, 100, options)) {
      const queriesBefore = queryCount;
      const started = performance.now();
      await chargeBatch(event);
      const elapsed = performance.now() - started;
      busy += elapsed;
      batchMs.push(elapsed);
      roundTrips.push(queryCount - queriesBefore);
    }
    return summarise('naive per-record baseline, batch 100', 100, 1, clicks, batchMs, roundTrips, busy / 1000);
  } finally {
    await client.end();
  }
}

/** The ledger adds up: one DEDUCT per click, balances down by exactly the DEDUCT total, nothing paused. */
async function checkLedger(pool: pg.Pool, expectedDeducts: number): Promise<{ paused: number }> {
  // The run's own rows: from yesterday on, minus --history's (event ids 'hist-…').
  const since = dayBefore(budgetDayOf(Date.now(), BUDGET_TIME_ZONE), 1);
  const { rows } = await pool.query<{ deducts: string; total: string; spent: string; paused: string }>(
    `SELECT (SELECT count(*) FROM ad_balance_histories WHERE type = 'DEDUCT' AND spend_date >= $2::date AND event_id NOT LIKE 'hist-%') AS deducts,
            (SELECT coalesce(sum(amount), 0)::text FROM ad_balance_histories WHERE type = 'DEDUCT' AND spend_date >= $2::date AND event_id NOT LIKE 'hist-%') AS total,
            (SELECT (count(*) * $1::numeric - sum(balance))::text FROM advertisers) AS spent,
            (SELECT count(*) FROM campaigns WHERE status = 'PAUSED') AS paused`,
    [BALANCE, since],
  );
  const row = rows[0];
  if (Number(row.deducts) !== expectedDeducts) throw new BenchError(`expected ${expectedDeducts} DEDUCT rows, found ${row.deducts}`);
  if (row.total !== row.spent) throw new BenchError(`DEDUCT total ${row.total} differs from the balance decrease ${row.spent}`);
  return { paused: Number(row.paused) };
}

// ---------------------------------------------------------------------------------------------

function table(results: readonly RunResult[]): string {
  const header = ['run', 'clicks', 'clicks/s', 'p50 ms', 'p99 ms', 'max ms', 'DB round trips/batch'];
  const rows = results.map((r) => [
    r.name,
    String(r.clicks),
    String(r.clicksPerSecond),
    r.p50BatchMs.toFixed(2),
    r.p99BatchMs.toFixed(2),
    r.maxBatchMs.toFixed(2),
    r.dbRoundTripsPerBatch === r.maxDbRoundTripsPerBatch ? String(r.dbRoundTripsPerBatch) : `${r.dbRoundTripsPerBatch} (max ${r.maxDbRoundTripsPerBatch})`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The handler's environment, exactly as a deployed function gets it (local URLs instead of ARNs). */
function handlerEnvironment(databaseUrl: string, keyPrefix: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: REDIS_URL,
    REDIS_KEY_PREFIX: keyPrefix,
    // One summary log line and EMF blob per invocation would dominate stdout at these rates.
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
  };
}

function loadRealHandler(): Handler {
  return (require('../lambdas/click-balance/handler') as { handler: Handler }).handler;
}

/** Messages between the parent and a partition worker. */
type WorkerJob = {
  readonly kind: 'job';
  readonly runId: string;
  readonly clicks: number;
  readonly batchSize: number;
  readonly partition: number;
  readonly options: BenchOptions;
};
type WorkerReport =
  | { readonly kind: 'ready' }
  | { readonly kind: 'done'; readonly batchMs: number[]; readonly roundTrips: number[]; readonly charged: number; readonly deadLettered: number }
  | { readonly kind: 'failed'; readonly error: string };

/**
 * One partition's consumer, as Lambda runs it: its own process (a Lambda instance), its own
 * module-scope pool (max 1) and Redis client, one batch at a time, in offset order.
 */
async function partitionWorker(): Promise<void> {
  const send = (report: WorkerReport) => new Promise<void>((resolve) => process.send?.(report, () => resolve()));
  const job = await new Promise<WorkerJob>((resolve) => process.once('message', (m) => resolve(m as WorkerJob)));
  try {
    const handler = loadRealHandler();
    for (const event of batchesOf(`${job.runId}-warmup`, job.options.warmupBatches * job.batchSize, job.batchSize, job.options, job.partition)) {
      await handler(event);
    }
    // Built before the clock starts: producing and fetching records is Kafka's and Lambda's work.
    const events = [...batchesOf(job.runId, job.clicks, job.batchSize, job.options, job.partition)];
    const go = new Promise<void>((resolve) => process.once('message', () => resolve()));
    await send({ kind: 'ready' });
    await go;
    const batchMs: number[] = [];
    const roundTrips: number[] = [];
    let charged = 0;
    let deadLettered = 0;
    for (const event of events) {
      const queriesBefore = queryCount;
      const started = performance.now();
      const summary = await handler(event);
      batchMs.push(performance.now() - started);
      roundTrips.push(queryCount - queriesBefore);
      charged += summary.charged;
      deadLettered += summary.deadLettered;
    }
    await send({ kind: 'done', batchMs, roundTrips, charged, deadLettered });
  } catch (error) {
    await send({ kind: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
}

/** `partitions` workers at once, started together; throughput is clicks over wall-clock time. */
async function runPartitions(
  env: Record<string, string>,
  runId: string,
  clicks: number,
  batchSize: number,
  partitions: number,
  options: BenchOptions,
): Promise<RunResult> {
  const workers: ChildProcess[] = [];
  const reports = new Map<ChildProcess, WorkerReport[]>();
  const waiters = new Map<ChildProcess, (report: WorkerReport) => void>();
  const next = (worker: ChildProcess) =>
    new Promise<WorkerReport>((resolve, reject) => {
      const queued = reports.get(worker)?.shift();
      if (queued) return resolve(queued);
      waiters.set(worker, resolve);
      worker.once('exit', (code) => reject(new BenchError(`partition worker exited with ${code} before reporting`)));
    });
  try {
    for (let partition = 0; partition < partitions; partition += 1) {
      // Inherits tsx's loader flags (execArgv), so the worker runs this same TypeScript file.
      const worker = fork(__filename, ['--partition-worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(worker);
      reports.set(worker, []);
      worker.on('message', (message) => {
        const waiter = waiters.get(worker);
        waiters.delete(worker);
        if (waiter) waiter(message as WorkerReport);
        else reports.get(worker)?.push(message as WorkerReport);
      });
      const share = Math.floor(clicks / partitions) + (partition < clicks % partitions ? 1 : 0);
      worker.send({ kind: 'job', runId: `${runId}-p${partition}`, clicks: share, batchSize, partition, options } satisfies WorkerJob);
    }
    for (const worker of workers) {
      const report = await next(worker);
      if (report.kind !== 'ready') throw new BenchError(`partition worker failed: ${report.kind === 'failed' ? report.error : report.kind}`);
    }
    const started = performance.now();
    for (const worker of workers) worker.send({ kind: 'go' });
    const done = await Promise.all(workers.map(next));
    const seconds = (performance.now() - started) / 1000;
    const batchMs: number[] = [];
    const roundTrips: number[] = [];
    let charged = 0;
    for (const report of done) {
      if (report.kind !== 'done') throw new BenchError(`partition worker failed: ${report.kind === 'failed' ? report.error : report.kind}`);
      if (report.deadLettered > 0) throw new BenchError(`handler dead-lettered ${report.deadLettered} generated clicks; the benchmark input is wrong`);
      batchMs.push(...report.batchMs);
      roundTrips.push(...report.roundTrips);
      charged += report.charged;
    }
    if (charged !== clicks) throw new BenchError(`handler charged ${charged} of ${clicks} clicks`);
    return summarise(`handler, batch ${batchSize}, ${partitions} partitions`, batchSize, partitions, clicks, batchMs, roundTrips, seconds);
  } finally {
    for (const worker of workers) if (worker.exitCode === null) worker.kill();
  }
}

async function main(): Promise<void> {
  const parsedOptions = parseOptions(process.argv.slice(2));
  if (parsedOptions === 'help') {
    console.log(BENCH_USAGE);
    return;
  }
  const options = parsedOptions;
  const runId = randomBytes(4).toString('hex');
  const keyPrefix = `adstream_bench_${runId}:`;
  const log = (text: string) => process.stdout.write(`${text}\n`);

  const db = await createTestDatabase();
  const { url: databaseUrl, pool } = db;
  const redis = new Redis(REDIS_URL, { keyPrefix, maxRetriesPerRequest: 1 });
  try {
    await seed(pool, redis, options);

    // The real handler module, configured through its environment as Lambda configures it.
    const env = handlerEnvironment(databaseUrl, keyPrefix);
    Object.assign(process.env, env);
    const loadStarted = performance.now();
    const handler = loadRealHandler();
    const moduleLoadMs = performance.now() - loadStarted;

    const results: RunResult[] = [];
    let paused = 0;
    const floor = await Interleaved.connect(Floor, databaseUrl, `${runId}-f`, options);
    const statement = await Interleaved.connect(ChargeStatement, databaseUrl, `${runId}-s`, options);
    const historyFloor = await Interleaved.connect(Floor, databaseUrl, `${runId}-hf`, options);
    // Backend CPU of the primary run (read before the connections close).
    let handlerBackendCpuMs: number | undefined;
    let statementCpuMs: number | undefined;
    let floorCpuMs: number | undefined;
    let history: { seconds: number; rows: number; oldestDay: string; newestDay: string } | undefined;
    let historyRun: RunResult | undefined;
    try {
      for (const batchSize of options.batchSizes) {
        for (const partitions of options.partitions) {
          await resetLedger(pool);
          const primaryRun = batchSize === 100 && partitions === 1;
          let result: RunResult;
          if (partitions > 1) {
            result = await runPartitions(env, `${runId}-h${batchSize}x${partitions}`, options.clicks, batchSize, partitions, options);
          } else if (primaryRun) {
            const run = await runHandler(handler, `${runId}-h${batchSize}`, options.clicks, batchSize, options, { floor, statement, databaseUrl });
            handlerBackendCpuMs = run.handlerBackendCpuMs;
            statementCpuMs = statement.cpu?.sinceMs();
            floorCpuMs = floor.cpu?.sinceMs();
            result = run;
          } else {
            result = await runHandler(handler, `${runId}-h${batchSize}`, options.clicks, batchSize, options);
          }
          const interleavedClicks = primaryRun ? floor.clicks + statement.clicks : 0;
          paused += (await checkLedger(pool, options.clicks + partitions * options.warmupBatches * batchSize + interleavedClicks)).paused;
          results.push(result);
        }
      }
      if (options.historyRows > 0) {
        await resetLedger(pool);
        history = await loadHistory(databaseUrl, options, log);
        historyRun = await runHandler(handler, `${runId}-hist`, options.clicks, 100, options, {
          floor: historyFloor,
          name: `handler, batch 100, 1 partition, ${history.rows} rows of history`,
        });
        paused += (await checkLedger(pool, options.clicks + options.warmupBatches * 100 + historyFloor.clicks)).paused;
      }
    } finally {
      await floor.close();
      await statement.close();
      await historyFloor.close();
    }
    await resetLedger(pool);
    // (TRUNCATE keeps the history partitions attached but empty: the baseline runs on an empty ledger.)
    const baseline = await runBaseline(databaseUrl, redis, `${runId}-b`, options.baselineClicks, options);
    await checkLedger(pool, options.baselineClicks + options.warmupBatches * 100);
    results.push(baseline);

    const handlerRuns = results.filter((r) => r !== baseline);
    const floorMs = Number(floor.p50().toFixed(2));
    const primary = handlerRuns.find((r) => r.batchSize === 100 && r.partitions === 1) as RunResult;
    const best = handlerRuns.reduce((a, b) => (b.clicksPerSecond > a.clicksPerSecond ? b : a));
    const speedup = Number((primary.clicksPerSecond / baseline.clicksPerSecond).toFixed(1));
    const floorRatio = Number((primary.p50BatchMs / floorMs).toFixed(2));
    const historyRatio = historyRun ? Number((historyRun.clicksPerSecond / primary.clicksPerSecond).toFixed(2)) : null;
    const historyFloorMs = historyRun ? Number(historyFloor.p50().toFixed(2)) : null;
    const cpuPerBatch = (ms: number | undefined, batches: number) => (ms === undefined || batches === 0 ? null : Number((ms / batches).toFixed(2)));
    const statementMs = Number(statement.p50().toFixed(2));
    const statementSummary = {
      p50BatchMs: statementMs,
      floorRatio: Number((statementMs / floorMs).toFixed(2)),
      backendCpuMs: cpuPerBatch(statementCpuMs, statement.batchMs.length),
      floorBackendCpuMs: cpuPerBatch(floorCpuMs, floor.batchMs.length),
      handlerBackendCpuMs: handlerBackendCpuMs === undefined ? null : Number(handlerBackendCpuMs.toFixed(2)),
    };
    const cpus = os.cpus();
    const load = os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' ');
    log(
      `click-balance benchmark — ${options.campaigns} campaigns over ${options.advertisers} advertisers, ` +
        `node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'CPU'}, Postgres + Redis on ${new URL(databaseUrl).hostname}, ` +
        `load average ${load} (other work on the machine skews every number)`,
    );
    log(
      `handler: ${options.clicks} clicks per run; baseline: ${options.baselineClicks} clicks (rates are compared, not totals); ` +
        `${options.warmupBatches} warm-up batches per consumer are not measured; handler module load ${moduleLoadMs.toFixed(0)} ms.`,
    );
    log(
      '1 partition: one consumer, clicks/s over time inside the handler. N partitions: N processes (one Lambda instance each) at once, clicks/s over wall-clock time.',
    );
    log('');
    log(table(historyRun ? [...handlerRuns, historyRun, baseline] : results));
    log('');
    log(`speed-up, handler (batch 100, 1 partition) vs baseline: ${speedup}×`);
    log(
      `floor (BEGIN, one INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING of the batch's 100 ledger rows, one balance UPDATE, COMMIT; ` +
        `interleaved with the handler's batches): p50 ${floorMs.toFixed(2)} ms; handler p50 ${primary.p50BatchMs.toFixed(2)} ms = ${floorRatio}× the floor`,
    );
    log(
      `the charge statement alone (SELECT adstream_charge_clicks(…) from its own client, batches of 100 interleaved with the handler's and the floor's; ` +
        `no decoding, no Redis): p50 ${statementMs.toFixed(2)} ms = ${statementSummary.floorRatio}× the floor`,
    );
    if (statementSummary.backendCpuMs !== null) {
      log(
        `Postgres backend CPU per batch: the statement alone ${statementSummary.backendCpuMs} ms, the handler's ${statementSummary.handlerBackendCpuMs ?? '?'} ms, ` +
          `the floor's ${statementSummary.floorBackendCpuMs} ms (/proc/<pid>/stat; wall time also waits for a CPU, the WAL flush and the network)`,
      );
    }
    if (historyRun && history) {
      log(
        `with ${history.rows} ledger rows of history: ${historyRun.clicksPerSecond} clicks/s, p50 ${historyRun.p50BatchMs.toFixed(2)} ms ` +
          `(floor ${historyFloorMs?.toFixed(2)} ms) = ${historyRatio}× the empty-ledger throughput`,
      );
    }
    log(`best throughput: ${best.clicksPerSecond} clicks/s (${best.name})`);
    log(`campaigns paused during the runs: ${paused} (budgets are set far above the spend)`);
    log('Ledger checked after each run: one DEDUCT per click, balances down by exactly the DEDUCT total.');
    if (options.profile) {
      const batches = primary.batches;
      const waited = [...queryTime.values()].reduce((sum, e) => sum + e.ms, 0);
      log('');
      log(`where a batch of 100 (1 partition) spends its ${((primary.seconds * 1000) / batches).toFixed(2)} ms (mean):`);
      for (const [label, entry] of [...queryTime].sort((a, b) => b[1].ms - a[1].ms)) {
        log(`  ${(entry.ms / batches).toFixed(2).padStart(7)} ms  ${(entry.count / batches).toFixed(1).padStart(4)}×  ${label}`);
      }
      log(`  ${((primary.seconds * 1000 - waited) / batches).toFixed(2).padStart(7)} ms         the rest (decode, validation, building parameters, logging)`);
    }
    if (options.json) {
      const runKey = (r: RunResult) => (r.partitions === 1 ? `batch${r.batchSize}` : `batch${r.batchSize}x${r.partitions}`);
      log(
        JSON.stringify({
          clicksPerSecond: primary.clicksPerSecond,
          p50BatchMs: primary.p50BatchMs,
          p99BatchMs: primary.p99BatchMs,
          dbRoundTripsPerBatch: primary.dbRoundTripsPerBatch,
          speedup,
          floorMs,
          floorRatio,
          historyRatio,
          statement: statementSummary,
          history:
            historyRun && history
              ? { rows: history.rows, days: options.historyDays, loadSeconds: Number(history.seconds.toFixed(1)), run: historyRun, floorMs: historyFloorMs }
              : null,
          headline: 'batch 100, 1 partition',
          bestClicksPerSecond: best.clicksPerSecond,
          bestRun: best.name,
          clicks: options.clicks,
          baselineClicks: options.baselineClicks,
          campaigns: options.campaigns,
          advertisers: options.advertisers,
          pausedCampaigns: paused,
          handler: Object.fromEntries(handlerRuns.map((r) => [runKey(r), r])),
          baseline,
          environment: { node: process.version, cpus: cpus.length, platform: `${os.platform()} ${os.arch()}`, loadAverage: os.loadavg() },
        }),
      );
    }
  } finally {
    redis.disconnect();
    await db.drop().catch((error: unknown) => {
      process.stderr.write(`bench: could not drop ${db.name}: ${String(error)}\n`);
    });
    await cleanKeyspace(keyPrefix);
  }
}

(process.argv.includes('--partition-worker') ? partitionWorker() : main()).then(
  // The handler's module-scope pool and Redis client stay open, as in Lambda; end explicitly.
  () => process.exit(0),
  (error: unknown) => {
    // A usage or setup problem explains itself; anything else keeps its stack.
    process.stderr.write(`bench: ${error instanceof BenchError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
