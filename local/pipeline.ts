// `npm run local`: the whole pipeline on one machine. The local Kafka broker with the
// environment's topics, every Flink statement of the environment running in the local Flink
// engine against it, the six workers through their public factories (the Kafka-triggered ones
// through the Lambda event-source emulator, the budget reset at local midnight of the budget
// zone, the outbox sweep on its schedule, migrations on start), a database and Redis key prefix
// of its own, seeded traffic with its ground truth, a live view, and a reconciliation.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import Redis from 'ioredis';
import { Client, Pool } from 'pg';
import { FlinkPipelineId, rankingHeartbeatPartitions, writesVersionedRankingRows } from '../config/flink';
import type { EnvironmentConfig, TopicConfig } from '../config/schema';
import { createBudgetResetHandler } from '../lambdas/budget-reset/resume-campaigns';
import { createClickBalanceHandler } from '../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../lambdas/compensation/refund-duplicates';
import { createOutboxSweepHandler } from '../lambdas/outbox-sweep/sweep-outbox';
import { createRankingCacheHandler } from '../lambdas/ranking-cache/ranking-cache';
import { createPoolProvider, PoolProvider } from '../lambdas/shared/db';
import type { Observability } from '../lambdas/shared/observability';
import { createKafkaPublisher, OutboxPublisher } from '../lambdas/shared/outbox';
import { createRedisClientProvider, RedisCache } from '../lambdas/shared/redis';
import type { WorkerDeps } from '../lambdas/shared/runtime';
import { workerKafkaTriggers } from '../stacks/worker-triggers';
import { KafkaEventHandler, LambdaKafkaEventSource, namespacedSettings } from './event-source';
import { environmentKafkaJob, FlinkKafkaEngine, LOCAL_SCHEMA_IDS } from './flink-kafka';
import {
  contractTopicSpecs,
  createTopics,
  KafkaConnection,
  kafkaClient,
  kafkaConnectionFromEnv,
  LocalKafkaBroker,
  startLocalKafkaBroker,
} from './kafka-broker';
import { reconcile, Reconciliation } from './reconcile';
import { deleteKeysUnder } from './redis-keys';
import { dayBounds, generateTraffic, Traffic, TrafficRecord, trailingCatalogRecords, trailingEventRecords } from './traffic';

/** Options of {@link runLocalPipeline}. */
export interface LocalPipelineOptions {
  /** Environment config (topics, statements, triggers, budget zone). */
  readonly config: EnvironmentConfig;
  /** Events to generate. */
  readonly events: number;
  /** Events per second to produce. */
  readonly rate: number;
  /** Generator seed. */
  readonly seed: number;
  /** Event time between events, ms. @default 200 */
  readonly spacingMs?: number;
  /** Pipeline versions to run instead of the environment's (e.g. `{ 'duplicate-clicks': 2 }`). @default the configured ones */
  readonly pipelineVersions?: Readonly<Partial<Record<FlinkPipelineId, number>>>;
  /** Bad clicks quote a non-numeric price (see TrafficOptions.malformedPrices). @default false */
  readonly malformedPrices?: boolean;
  /** Postgres server (a database of its own is created on it). */
  readonly databaseUrl: string;
  /** Redis (a key prefix of its own is used). */
  readonly redisUrl: string;
  /** Seconds between live-view lines; 0 = none. @default 3 */
  readonly viewIntervalSeconds?: number;
  /** Longest wait for the pipeline to drain after the traffic, ms. @default 240000 */
  readonly drainTimeoutMs?: number;
  /** Keep the database and Redis keys after the run (for inspection). @default false */
  readonly keep?: boolean;
  /** Where progress goes. @default process.stderr */
  readonly write?: (line: string) => void;
  /** Aborts the run (Ctrl-C); everything started is stopped. */
  readonly signal?: AbortSignal;
}

/** What a run produced. */
export interface LocalPipelineResult {
  /** The reconciliation against the generator's truth. */
  readonly reconciliation: Reconciliation;
  /** Seconds the traffic took to produce, and events per second produced. */
  readonly produceSeconds: number;
  /** Seconds from the first event to a drained pipeline. */
  readonly endToEndSeconds: number;
  /** Events per second from the first event to a drained pipeline. */
  readonly sustainedEventsPerSecond: number;
}

/** A prerequisite is missing (Java, Postgres, Redis); the message says what to do. */
export class LocalPrerequisiteError extends Error {
  override readonly name = 'LocalPrerequisiteError';
}

/** The run was interrupted. */
export class LocalRunAborted extends Error {
  override readonly name = 'LocalRunAborted';
}

/** Sink topics our Flink DDL creates besides rtb-rankings (partitions and cleanup as the DDL declares). */
export const FLINK_CREATED_TOPICS: readonly { topic: string; config: TopicConfig }[] = [
  { topic: 'ad-performance-5m', config: { partitions: 6, retentionMs: 7 * 24 * 3600 * 1000, cleanupPolicy: 'delete' } },
  { topic: 'product-metrics-24h', config: { partitions: 6, retentionMs: -1, cleanupPolicy: 'compact' } },
  { topic: 'conversion-attributions', config: { partitions: 6, retentionMs: 30 * 24 * 3600 * 1000, cleanupPolicy: 'delete' } },
];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** Checks Java, Postgres and Redis, each with a message saying what is missing. */
export async function checkPrerequisites(databaseUrl: string, redisUrl: string): Promise<void> {
  try {
    execFileSync('java', ['-version'], { stdio: 'ignore' });
  } catch {
    throw new LocalPrerequisiteError(
      'Java 17+ is needed for the local Kafka broker and Flink engine: no `java` on PATH (install a JDK 17, e.g. `apt-get install openjdk-17-jdk-headless`).',
    );
  }
  try {
    execFileSync('mvn', ['-v'], { stdio: 'ignore' });
  } catch {
    throw new LocalPrerequisiteError('Apache Maven 3.8+ is needed to build java/kafka-broker and java/flink-runner on first use: no `mvn` on PATH.');
  }
  const client = new Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    throw new LocalPrerequisiteError(
      `PostgreSQL is not reachable at ${redact(databaseUrl)} (${(error as Error).message}); start it or set DATABASE_URL to a server where this user may CREATE DATABASE.`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 5000, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new LocalPrerequisiteError(`Redis is not reachable at ${redact(redisUrl)} (${(error as Error).message}); start it or set REDIS_URL.`);
  } finally {
    redis.disconnect();
  }
}

function quietObservability(service: string): Observability {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  return {
    logger: new Logger({ serviceName: service, logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'adstream-local', serviceName: service }),
  };
}

/** Produces records (prefixing topics), in order, in chunks. */
async function produceRecords(producer: import('kafkajs').Producer, prefix: string, records: readonly TrafficRecord[]): Promise<void> {
  const byTopic = new Map<string, TrafficRecord[]>();
  for (const r of records) {
    const list = byTopic.get(r.topic) ?? [];
    list.push(r);
    byTopic.set(r.topic, list);
  }
  await producer.sendBatch({
    acks: -1,
    topicMessages: [...byTopic.entries()].map(([topic, list]) => ({
      topic: `${prefix}${topic}`,
      messages: list.map((r) => ({
        key: r.key,
        partition: r.partition,
        value: Buffer.isBuffer(r.value) ? r.value : Buffer.from(JSON.stringify(r.value)),
      })),
    })),
  });
}

/** Per-group lag: sum over the group's committed topics (end - committed). */
async function groupsLag(connection: KafkaConnection, groups: readonly { group: string; topic: string }[]): Promise<Map<string, number>> {
  const admin = kafkaClient(connection, 'adstream-local-view').admin();
  await admin.connect();
  try {
    const ends = new Map<string, Map<number, number>>();
    for (const topic of new Set(groups.map((g) => g.topic))) {
      const offsets = await admin.fetchTopicOffsets(topic);
      ends.set(topic, new Map(offsets.map((o) => [o.partition, Number(o.high)])));
    }
    const out = new Map<string, number>();
    for (const { group, topic } of groups) {
      const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const byPartition = new Map(committed[0]?.partitions.map((p) => [p.partition, Math.max(0, Number(p.offset))]) ?? []);
      let lag = 0;
      for (const [partition, end] of ends.get(topic) ?? []) lag += end - (byPartition.get(partition) ?? 0);
      out.set(`${group}@${topic}`, lag);
    }
    return out;
  } finally {
    await admin.disconnect();
  }
}

async function topicEnds(connection: KafkaConnection, topics: readonly string[]): Promise<Map<string, number>> {
  const admin = kafkaClient(connection, 'adstream-local-view').admin();
  await admin.connect();
  try {
    const out = new Map<string, number>();
    for (const topic of topics)
      out.set(
        topic,
        (await admin.fetchTopicOffsets(topic)).reduce((n, o) => n + Number(o.high), 0),
      );
    return out;
  } finally {
    await admin.disconnect();
  }
}

/** Runs the whole pipeline over seeded traffic and reconciles it. Everything it starts is stopped before it returns or throws. */
export async function runLocalPipeline(options: LocalPipelineOptions): Promise<LocalPipelineResult> {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const { config } = options;
  const cleanups: Array<() => Promise<void>> = [];
  const aborted = () => {
    if (options.signal?.aborted) throw new LocalRunAborted('interrupted');
  };
  const runId = randomBytes(4).toString('hex');
  const budgetTimeZone = config.workers.budgetTimeZone;
  try {
    await checkPrerequisites(options.databaseUrl, options.redisUrl);
    const traffic: Traffic = generateTraffic({
      events: options.events,
      seed: options.seed,
      now: Date.now(),
      budgetTimeZone,
      spacingMs: options.spacingMs,
      malformedPrices: options.malformedPrices,
    });

    // Kafka: the broker named by the environment (topics under a prefix of this run), or our own.
    let connection: KafkaConnection | undefined = kafkaConnectionFromEnv();
    const prefix = connection ? `local-${runId}.` : '';
    if (!connection) {
      write('starting the local Kafka broker (java/kafka-broker)…');
      const broker: LocalKafkaBroker = await startLocalKafkaBroker();
      cleanups.push(() => broker.stop());
      connection = broker;
    }
    aborted();
    // The contract topics, rtb-rankings, and the other tables our DDL creates (Flink creates their topics on Confluent).
    const specs = [...contractTopicSpecs(config, prefix), ...FLINK_CREATED_TOPICS.map((t) => ({ topic: `${prefix}${t.topic}`, config: t.config }))];
    await createTopics(connection, specs);
    if (prefix) {
      // On a shared broker: remove this run's topics and consumer groups afterwards.
      const shared = connection;
      cleanups.push(async () => {
        const admin = kafkaClient(shared, 'adstream-local-cleanup').admin();
        await admin.connect();
        try {
          const { groups } = await admin.listGroups();
          const mine = groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix));
          if (mine.length > 0) await admin.deleteGroups(mine).catch(() => undefined);
          await admin.deleteTopics({ topics: specs.map((s) => s.topic), timeout: 30_000 });
        } finally {
          await admin.disconnect();
        }
      });
    }
    const partitionsOf = (topic: string) => specs.find((s) => s.topic === `${prefix}${topic}`)?.config.partitions ?? 1;

    // Postgres and Redis: a database and a key prefix of this run's own.
    const database = `adstream_local_${runId}`;
    const admin = new Client({ connectionString: options.databaseUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    const databaseUrl = (() => {
      const u = new URL(options.databaseUrl);
      u.pathname = `/${database}`;
      return u.toString();
    })();
    const keyPrefix = `adstream_local_${runId}:`;
    cleanups.push(async () => {
      if (options.keep) {
        write(`kept database ${database} and Redis keys ${keyPrefix}*`);
        return;
      }
      const dropper = new Client({ connectionString: options.databaseUrl });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).finally(() => dropper.end());
      await deleteKeysUnder(options.redisUrl, keyPrefix);
    });
    const pool = new Pool({ connectionString: databaseUrl, max: 3 });
    pool.on('error', () => undefined);
    cleanups.push(() => pool.end());

    // Migrations on start, through the db-migrate worker (in a child process: node-pg-migrate is ESM-only).
    try {
      execFileSync(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, 'migrate.ts')], {
        env: { ...process.env, DATABASE_URL: databaseUrl },
        stdio: ['ignore', 'pipe', 'pipe'],
        encoding: 'utf8',
      });
    } catch (error) {
      throw new Error(`db-migrate failed on ${database}: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`);
    }
    write(`database ${database} migrated; Redis prefix ${keyPrefix}`);

    // Seed advertisers and campaigns.
    for (const a of traffic.advertisers) {
      await pool.query('INSERT INTO advertisers (advertiser_id, name, balance) VALUES ($1, $2, $3)', [
        a.advertiserId,
        `advertiser ${a.advertiserId}`,
        centsToText(a.balanceCents),
      ]);
    }
    for (const c of traffic.campaigns) {
      await pool.query(
        `INSERT INTO campaigns (campaign_id, advertiser_id, status, daily_budget, cpc, product_id, placement, category, bid_price) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          c.campaignId,
          c.advertiserId,
          c.status,
          c.dailyBudgetCents === null ? null : centsToText(c.dailyBudgetCents),
          centsToText(c.cpcCents),
          c.productId,
          c.placement,
          c.category,
          centsToText(c.bidCents),
        ],
      );
    }

    // Flink: every statement of the environment, continuously, on the broker.
    write('starting the local Flink engine (java/flink-runner) with every statement of the environment…');
    const { job, statements } = environmentKafkaJob(config, prefix, options.pipelineVersions);
    const flinkGroupPrefix = `${prefix}`;
    const engine = await FlinkKafkaEngine.start(job, connection, { groupPrefix: flinkGroupPrefix });
    cleanups.push(() => engine.stop());
    write(`flink: ${engine.jobs.length} jobs running (${statements.filter((s) => s.kind === 'ddl').length} DDL applied): ${engine.jobs.join(', ')}`);
    aborted();

    // Workers.
    const alerts: unknown[] = [];
    const sns: OutboxPublisher = async (messages) => {
      alerts.push(...messages);
      return { publishedIds: messages.map((m) => m.id) };
    };
    const kafkaConnection = connection;
    const kafkaPublisher = createKafkaPublisher({
      brokers: [kafkaConnection.bootstrap],
      secretArn: 'local',
      topic: `${prefix}campaign-events`,
      schemaId: 100_101,
      ssl: false,
      credentials: async () => ({ username: kafkaConnection.username, password: kafkaConnection.password }),
    });
    // Closed after the workers and schedules stop (cleanups run in reverse): on a broker that
    // outlives the run (ADSTREAM_KAFKA_BOOTSTRAP, the test run's) its connection would stay open.
    cleanups.push(() => kafkaPublisher.close());
    const providers: Array<{ pool: PoolProvider; cache: RedisCache }> = [];
    const deps = (service: string): WorkerDeps => {
      const p = createPoolProvider({ kind: 'url', url: databaseUrl }, { max: 1 });
      const cache = new RedisCache(createRedisClientProvider({ kind: 'url', url: options.redisUrl }, keyPrefix));
      providers.push({ pool: p, cache });
      return { pool: p, cache, publishers: { sns, kafka: kafkaPublisher }, observability: quietObservability(service), budgetTimeZone };
    };
    cleanups.push(async () => {
      for (const p of providers) {
        await p.cache.close().catch(() => undefined);
        await p
          .pool()
          .then((x) => x.end())
          .catch(() => undefined);
      }
    });
    const triggers = workerKafkaTriggers(config);
    const sources: LambdaKafkaEventSource[] = [];
    cleanups.push(async () => {
      for (const s of sources) await s.stop().catch(() => undefined);
    });
    const builders: Record<string, () => KafkaEventHandler> = {
      clickBalance: () => createClickBalanceHandler(deps('click-balance')) as KafkaEventHandler,
      compensation: () => createCompensationHandler(deps('compensation')) as KafkaEventHandler,
      rankingCache: () => {
        const d = deps('ranking-cache');
        return createRankingCacheHandler({
          pool: d.pool,
          cache: d.cache,
          observability: d.observability,
          budgetTimeZone: d.budgetTimeZone,
          freshnessSeconds: config.workers.rankingTtlSeconds,
          versionedRows: writesVersionedRankingRows(config.flink),
          heartbeatPartitions: rankingHeartbeatPartitions(config.flink),
        }) as KafkaEventHandler;
      },
    };
    const workerGroups: Array<{ group: string; topic: string }> = [];
    for (const trigger of triggers) {
      const settings = namespacedSettings(trigger, prefix);
      workerGroups.push({ group: settings.consumerGroupId, topic: settings.topic });
      const source = new LambdaKafkaEventSource({ connection, settings, containers: builders[trigger.functionName], retryDelayMs: 200 });
      sources.push(source);
      await source.start();
    }
    // Scheduled workers: the outbox sweep every minute, the budget reset at local midnight.
    const sweep = createOutboxSweepHandler(deps('outbox-sweep'));
    const reset = createBudgetResetHandler(deps('budget-reset'));
    const sweepMs = config.workers.outboxSweepMinutes * 60_000;
    const sweepTimer = setInterval(() => void sweep({}).catch(() => undefined), sweepMs);
    const [, nextMidnight] = dayBounds(Date.now(), budgetTimeZone);
    let resets = 0;
    const resetTimer = setTimeout(
      () => {
        resets += 1;
        void reset({ scheduled_time: new Date(nextMidnight).toISOString() }).catch(() => undefined);
      },
      Math.min(nextMidnight - Date.now(), 2 ** 31 - 1),
    );
    cleanups.push(async () => {
      clearInterval(sweepTimer);
      clearTimeout(resetTimer);
    });
    write(
      `workers: click-balance, compensation, ranking-cache (emulated Kafka triggers), outbox-sweep (every ${config.workers.outboxSweepMinutes} min), budget-reset (next at ${new Date(nextMidnight).toISOString()}, midnight ${budgetTimeZone}), db-migrate (done)`,
    );

    // Flink's consumer groups (one per statement and source topic); sinks Flink creates itself.
    const extraTopics = [`${prefix}ad-performance-5m`, `${prefix}product-metrics-24h`, `${prefix}conversion-attributions`];
    const flinkGroups: Array<{ group: string; topic: string }> = [];
    {
      const kafkaAdmin = kafkaClient(connection, 'adstream-local-groups').admin();
      await kafkaAdmin.connect();
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const { groups } = await kafkaAdmin.listGroups();
        const mine = groups.map((g) => g.groupId).filter((g) => g.startsWith(`${flinkGroupPrefix}flink-`));
        if (mine.length > 0 && engine.jobs.every((j) => mine.some((g) => g.startsWith(`${flinkGroupPrefix}flink-${j}-`)))) {
          const candidates = [...specs.map((s) => s.topic), ...extraTopics];
          for (const g of mine) {
            const topic = candidates.find((t) => g.endsWith(`-${t}`));
            if (topic) flinkGroups.push({ group: g, topic });
          }
          break;
        }
        await sleep(1000);
      }
      await kafkaAdmin.disconnect();
    }

    // Live view.
    const allGroups = [...workerGroups, ...flinkGroups];
    const topics = specs.map((s) => s.topic).filter((t) => !extraTopics.includes(t));
    let produced = 0;
    const view = async (): Promise<{ lag: Map<string, number>; line: string }> => {
      const ends = await topicEnds(connection!, [...topics, ...extraTopics]).catch(() => new Map<string, number>());
      const lag = await groupsLag(connection!, allGroups).catch(() => new Map<string, number>());
      const money = await pool.query<{ charges: string; refunds: string; voids: string; dead: string; paused: string }>(
        `SELECT (SELECT count(*) FROM ad_balance_histories WHERE type = 'DEDUCT') AS charges,
                (SELECT count(*) FROM ad_balance_histories WHERE type = 'REFUND') AS refunds,
                (SELECT count(*) FROM click_voids) AS voids,
                (SELECT count(*) FROM dead_letters) AS dead,
                (SELECT count(*) FROM campaigns WHERE status = 'PAUSED') AS paused`,
      );
      const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, keyPrefix });
      const rankingKeys = (await redis.keys(`${keyPrefix}rtb:ranking:*`).catch(() => [])).length;
      redis.disconnect();
      const m = money.rows[0];
      const short = (t: string) => t.slice(prefix.length);
      const perTopic = [...ends.entries()]
        .filter(([, n]) => n > 0)
        .map(([t, n]) => `${short(t)} ${n}`)
        .join(', ');
      const totalLag = [...lag.values()].reduce((a, b) => a + b, 0);
      const failed = engine.failedJobs().filter((j) => !j.endsWith('UNKNOWN'));
      const line =
        `[${new Date().toISOString().slice(11, 19)}] produced ${produced}/${traffic.events.length} | topics: ${perTopic} | charges ${m.charges} refunds ${m.refunds} voids ${m.voids} dead letters ${m.dead} paused ${m.paused} | ranking keys ${rankingKeys} | alerts ${alerts.length} | lag ${totalLag}` +
        ` (${
          [...lag.entries()]
            .filter(([, n]) => n > 0)
            .map(([g, n]) => `${short(g.split('@')[0])} ${n}`)
            .join(', ') || 'none'
        })` +
        (failed.length ? ` | FLINK FAILED: ${failed.join('; ')}` : '');
      return { lag, line };
    };
    const interval = (options.viewIntervalSeconds ?? 3) * 1000;
    let viewing = false;
    const viewTimer =
      interval > 0
        ? setInterval(() => {
            if (viewing) return;
            viewing = true;
            void view()
              .then((v) => write(v.line))
              .catch(() => undefined)
              .finally(() => (viewing = false));
          }, interval)
        : undefined;
    cleanups.push(async () => {
      if (viewTimer) clearInterval(viewTimer);
    });

    // Traffic.
    const producer = kafkaClient(connection, 'adstream-local-traffic').producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    await produceRecords(producer, prefix, traffic.setup);
    write(
      `traffic: ${traffic.events.length} events at ${options.rate}/s (seed ${options.seed}), event time ${new Date(traffic.startTs).toISOString()} → ${new Date(traffic.endTs).toISOString()}; ${traffic.truth.clicks.size} clicks, ${traffic.truth.duplicateCount} duplicates (${traffic.truth.sameMillisecondDuplicates} same-millisecond, ${traffic.truth.acrossWindowDuplicates} across a 5-minute boundary), ${traffic.truth.attributions.size} attributable orders, ${traffic.truth.badRecords} bad records, ${traffic.truth.paused.size} campaigns to pause`,
    );
    const started = Date.now();
    const chunk = Math.max(1, Math.round(options.rate / 10));
    for (let i = 0; i < traffic.events.length; i += chunk) {
      aborted();
      await produceRecords(producer, prefix, traffic.events.slice(i, i + chunk));
      produced = Math.min(traffic.events.length, i + chunk);
      const due = started + (produced / options.rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
    const produceSeconds = (Date.now() - started) / 1000;
    await produceRecords(
      producer,
      prefix,
      trailingEventRecords(traffic, { adEvents: partitionsOf('ad-events'), conversionEvents: partitionsOf('conversion-events') }, runId),
    );
    write(`traffic produced in ${produceSeconds.toFixed(1)} s; trailing events advance event time on every partition; waiting for the pipeline to drain…`);

    // Drain: every group at lag 0, the outbox published, and the sinks quiet for a while.
    const deadline = Date.now() + (options.drainTimeoutMs ?? 240_000);
    const waitQuiet = async (what: string, quietRounds: number): Promise<void> => {
      let previous = '';
      let stable = 0;
      while (Date.now() < deadline) {
        aborted();
        const failed = engine.failedJobs().filter((j) => !j.endsWith('UNKNOWN'));
        if (failed.length > 0) throw new Error(`a Flink job failed: ${failed.join('; ')}\n${engine.log.slice(-3000)}`);
        const { lag } = await view();
        const ends = await topicEnds(connection!, [...topics, ...extraTopics]);
        const pending = await pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM outbox WHERE kafka_published_at IS NULL AND kind IN ('CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED')`,
        );
        const totalLag = [...lag.values()].reduce((a, b) => a + b, 0);
        const snapshot = JSON.stringify([...ends.entries()]);
        if (totalLag === 0 && pending.rows[0].n === '0' && snapshot === previous) stable += 1;
        else stable = 0;
        if (pending.rows[0].n !== '0') await sweep({}).catch(() => undefined);
        previous = snapshot;
        if (stable >= quietRounds) return;
        await sleep(1500);
      }
      throw new Error(`the pipeline did not drain (${what}) within ${(options.drainTimeoutMs ?? 240_000) / 1000} s`);
    };
    await waitQuiet('traffic', 4);
    // Pauses have reached campaign-events: advance event time there too, for statements that read it in event time.
    await produceRecords(
      producer,
      prefix,
      trailingCatalogRecords({ campaignEvents: partitionsOf('campaign-events'), productCatalog: partitionsOf('product-catalog') }, Date.now(), runId),
    );
    await waitQuiet('campaign changes', 4);
    const endToEndSeconds = (Date.now() - started) / 1000;
    write(`drained ${endToEndSeconds.toFixed(1)} s after the first event`);

    if (process.env.ADSTREAM_LOCAL_DEBUG)
      write(
        engine.log
          .split('\n')
          .filter((l) => l.includes('adstream-kafka: skipped'))
          .join('\n'),
      );
    const reconciliation = await reconcile({
      pool,
      connection,
      prefix,
      redisUrl: options.redisUrl,
      keyPrefix,
      traffic,
      skipped: engine.status.skipped,
      resets,
      adEventReaders: flinkGroups.filter((g) => g.topic === `${prefix}ad-events`).length,
    });
    return { reconciliation, produceSeconds, endToEndSeconds, sustainedEventsPerSecond: traffic.events.length / endToEndSeconds };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => write(`cleanup: ${(error as Error).message}`));
    }
  }
}

function centsToText(cents: bigint): string {
  const negative = cents < 0n;
  const abs = negative ? -cents : cents;
  return `${negative ? '-' : ''}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

/** Re-exported for the CLI. */
export { LOCAL_SCHEMA_IDS };
