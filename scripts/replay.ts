/**
 * Replays a Kafka offset range through the real handler of its topic, in Lambda's event shape,
 * batch by batch as the trigger would; or the ranges named by a Lambda on-failure queue
 * message. Idempotent by the handlers' construction: a record already applied moves nothing.
 * See `npm run replay -- --help`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Kafka, KafkaConfig, logLevel } from 'kafkajs';
import { loadEnvironment } from '../config';
import { describeCause, RecoveryRequestError } from '../lambdas/shared/errors';
import type { LambdaKafkaEvent, LambdaKafkaRecord } from '../lambdas/shared/kafka-event';
import { lambdaRecordOf, timestampTypeOf } from '../local/event-source';
import { REPLAY_CONSUMER_GROUP_PREFIX } from '../stacks/worker-triggers';
import { runMain, UsageError } from './cli';
import { usageFailure } from './ops-db';
import {
  addSummary,
  emptyTotals,
  formatMoney,
  formatTotals,
  HANDLER_OF_TOPIC,
  type MoneyMoved,
  parseHandlerName,
  RecoveryHandlerName,
  recoveryHandler,
  type RecoveryTotals,
  withRecoverySession,
} from './recovery';

/** `npm run replay -- --help`. */
export const REPLAY_USAGE = `usage: npm run replay -- --env <env> --brokers <host:port> --topic <topic> --partition <n> --from-offset <a> --to-offset <b> [options]
       npm run replay -- --env <env> --brokers <host:port> --on-failure-message <file|-> [options]

Reads exactly the offsets a..b (inclusive) of one partition from Kafka and feeds them, in
batches of the environment's trigger batch size, through the handler of the topic (ad-events:
click-balance, compensation-events: compensation, rtb-rankings-v2: ranking-cache), in Lambda's
event shape. Every handler is idempotent: a record already applied moves nothing, so a replay
charges only what is missing and running it twice moves money once. Records it still cannot
apply are dead-lettered as the trigger would (see npm run redrive). Outbox rows it writes are
published by the scheduled outbox sweep.
  --env <env>                  environment (batch size, budget time zone)
  --brokers <host:port,...>    Kafka bootstrap servers (streaming output kafka_bootstrap_servers)
  --topic <topic>              topic to read
  --partition <n>              partition
  --from-offset <a>            first offset to replay
  --to-offset <b>              last offset to replay (inclusive)
  --on-failure-message <file>  a message of the trigger's on-failure queue (file, or - for stdin):
                               the SQS body, the output of aws sqs receive-message (one message),
                               or an SNS notification; replays every topic-partition range it names
  --handler <name>             click-balance, compensation or ranking-cache (default: by topic)
  --batch-size <n>             records per invocation (default: the environment's workers.batchSize)
  --dry-run                    run the handler in a transaction that is rolled back: print the money
                               that would move, move nothing (no database, Redis or outbox write)
  --plaintext                  no TLS to the brokers (local broker only)
  --json                       print the result as JSON
  --help                       this text
Kafka credentials: KAFKA_API_KEY and KAFKA_API_SECRET (SASL/PLAIN; the workers consumer key).
Database: DATABASE_URL. Redis (optional; required for ranking-cache): REDIS_URL, REDIS_KEY_PREFIX.`;

/** One inclusive offset range of one partition. */
export interface ReplayRange {
  /** Topic. */
  readonly topic: string;
  /** Partition. */
  readonly partition: number;
  /** First offset. */
  readonly fromOffset: number;
  /** Last offset (inclusive). */
  readonly toOffset: number;
}

/** The result of a replay. */
export interface ReplayResult {
  /** Whether nothing was committed. */
  readonly dryRun: boolean;
  /** The handler the records went through. */
  readonly handler: RecoveryHandlerName;
  /** The ranges replayed. */
  readonly ranges: readonly ReplayRange[];
  /** Record counts. */
  readonly totals: RecoveryTotals;
  /** Money moved, or that would move. */
  readonly money: MoneyMoved;
}

function offsetOf(value: unknown, what: string): number {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new RecoveryRequestError(`${what} must be a non-negative whole number, got ${JSON.stringify(value)}`);
  }
  return Number(text);
}

function checkedRange(range: ReplayRange): ReplayRange {
  if (range.toOffset < range.fromOffset) {
    throw new RecoveryRequestError(
      `the range ${range.topic}-${range.partition} ${range.fromOffset}..${range.toOffset} is empty: the last offset is before the first`,
    );
  }
  return range;
}

/**
 * The offset ranges in a Lambda on-failure destination record for a Kafka trigger (SQS or SNS:
 * `requestContext`, `responseContext`, `KafkaBatchInfo.recordsInfo` keyed `"<topic>-<partition>"`
 * with `firstRecordOffset` / `lastRecordOffset` as strings). Accepts the record itself, the
 * output of `aws sqs receive-message` holding one message, or an SNS notification.
 */
export function parseOnFailureMessage(text: string): ReplayRange[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RecoveryRequestError(`the on-failure message is not JSON: ${describeCause(error)}`);
  }
  const object = (value: unknown): Record<string, unknown> | undefined =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  const record = object(parsed);
  const messages = record?.Messages;
  if (Array.isArray(messages)) {
    if (messages.length !== 1) {
      throw new RecoveryRequestError(`the file holds ${messages.length} SQS messages; give one (aws sqs receive-message --max-number-of-messages 1)`);
    }
    return parseOnFailureMessage(String(object(messages[0])?.Body ?? ''));
  }
  if (record?.Type === 'Notification' && typeof record.Message === 'string') return parseOnFailureMessage(record.Message);
  const info = object(record?.KafkaBatchInfo);
  if (!record || !object(record.requestContext) || !info) {
    throw new RecoveryRequestError('not a Lambda on-failure record of a Kafka trigger: requestContext and KafkaBatchInfo are required');
  }
  const recordsInfo = object(info.recordsInfo);
  if (!recordsInfo || Object.keys(recordsInfo).length === 0) {
    throw new RecoveryRequestError('the on-failure record names no records: KafkaBatchInfo.recordsInfo is missing or empty');
  }
  return Object.entries(recordsInfo).map(([topicPartition, entry]) => {
    // Topic names may contain hyphens: the partition is after the last one.
    const match = /^(.+)-([0-9]{1,9})$/.exec(topicPartition);
    if (!match) throw new RecoveryRequestError(`recordsInfo key ${JSON.stringify(topicPartition)} is not "<topic>-<partition>"`);
    const offsets = object(entry);
    return checkedRange({
      topic: match[1],
      partition: Number(match[2]),
      fromOffset: offsetOf(offsets?.firstRecordOffset, `${topicPartition} firstRecordOffset`),
      toOffset: offsetOf(offsets?.lastRecordOffset, `${topicPartition} lastRecordOffset`),
    });
  });
}

/** kafkajs settings for the command's brokers (SASL/PLAIN, TLS unless `plaintext`). */
export function replayKafkaConfig(brokers: string, env: NodeJS.ProcessEnv, plaintext: boolean): KafkaConfig {
  const username = env.KAFKA_API_KEY;
  const password = env.KAFKA_API_SECRET;
  if (!plaintext && (!username || !password)) {
    throw new UsageError('KAFKA_API_KEY and KAFKA_API_SECRET are not set; they are the Confluent API key of the workers consumer (see docs/operations.md)');
  }
  return {
    clientId: 'adstream-replay',
    brokers: brokers.split(',').map((b) => b.trim().replace(/^SASL_SSL:\/\//, '')),
    ssl: !plaintext,
    sasl: username && password ? { mechanism: 'plain', username, password } : undefined,
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 },
    logLevel: logLevel.NOTHING,
  };
}

/** Longest wait for the next records of a range before giving up. */
const READ_STALL_MS = 60_000;

/**
 * Reads offsets `fromOffset..toOffset` of one partition and hands them to `onBatch` in order,
 * `batchSize` at a time. Checks first that the range still exists: offsets below the partition's
 * first offset were deleted by retention, and nothing is replayed then.
 */
export async function readOffsetRange(
  kafka: Kafka,
  range: ReplayRange,
  batchSize: number,
  onBatch: (records: LambdaKafkaRecord[]) => Promise<void>,
): Promise<void> {
  const { topic, partition, fromOffset, toOffset } = range;
  const admin = kafka.admin();
  await admin.connect();
  let low: number;
  let high: number;
  let others: number[];
  try {
    const offsets = await admin.fetchTopicOffsets(topic).catch((error: unknown) => {
      throw new RecoveryRequestError(`cannot read the offsets of topic ${topic}: ${describeCause(error)}`);
    });
    const found = offsets.find((o) => o.partition === partition);
    if (!found) throw new RecoveryRequestError(`topic ${topic} has no partition ${partition} (it has ${offsets.length})`);
    low = Number(found.low);
    high = Number(found.high);
    others = offsets.map((o) => o.partition).filter((p) => p !== partition);
  } finally {
    await admin.disconnect();
  }
  const where = `${topic}-${partition}`;
  if (toOffset >= high) {
    throw new RecoveryRequestError(`offset ${toOffset} is past the end of ${where} (its last offset is ${high - 1}); nothing replayed`);
  }
  if (fromOffset < low) {
    const lost = Math.min(toOffset, low - 1);
    throw new RecoveryRequestError(
      `offsets ${fromOffset}..${lost} of ${where} are gone (Kafka retention deleted them; the partition now starts at ${low}); nothing replayed.` +
        (toOffset >= low ? ` To replay what is left: --topic ${topic} --partition ${partition} --from-offset ${low} --to-offset ${toOffset}.` : '') +
        ' Lost records must be re-read from the producer (see docs/operations.md).',
    );
  }

  // A group of its own, never committed: the live trigger's group and offsets are not touched.
  const consumer = kafka.consumer({
    groupId: `${REPLAY_CONSUMER_GROUP_PREFIX}${randomBytes(6).toString('hex')}`,
    maxWaitTimeInMs: 500,
    allowAutoTopicCreation: false,
  });
  let pending: LambdaKafkaRecord[] = [];
  let finished: (error?: unknown) => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    finished = (error) => (error === undefined ? resolve() : reject(error));
  });
  let lastProgress = Date.now();
  let complete = false;
  // The next offset to take: the consumer starts at the beginning and is moved to the range by
  // a seek whenever that takes effect, so a record may come twice and is taken once.
  let next = fromOffset;
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    // Once the group has its partitions: jump to the range (an optimization; `next` keeps it
    // correct whenever the seek takes effect) and fetch only this partition.
    consumer.on(consumer.events.GROUP_JOIN, () => {
      try {
        consumer.seek({ topic, partition, offset: String(fromOffset) });
        if (others.length > 0) consumer.pause([{ topic, partitions: others }]);
      } catch {
        // The consumer is stopping; the reader below ends on its own.
      }
    });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, heartbeat }) => {
        if (complete || batch.partition !== partition) return;
        lastProgress = Date.now();
        try {
          for (const message of batch.messages) {
            const offset = Number(message.offset);
            if (offset < next || offset > toOffset) continue;
            next = offset + 1;
            pending.push(lambdaRecordOf(topic, partition, message, timestampTypeOf(message)));
            if (pending.length >= batchSize) {
              const records = pending;
              pending = [];
              await onBatch(records);
              await heartbeat();
            }
          }
          // Compaction and transaction markers leave gaps: a batch reaching past the range ends it.
          if (next > fromOffset && Number(batch.lastOffset()) >= toOffset) {
            complete = true;
            if (pending.length > 0) await onBatch(pending);
            pending = [];
            finished();
          }
        } catch (error) {
          complete = true;
          finished(error);
        }
      },
    });
    const stall = setInterval(() => {
      if (!complete && Date.now() - lastProgress > READ_STALL_MS) {
        complete = true;
        finished(
          new RecoveryRequestError(
            `no records of ${where} up to offset ${toOffset} arrived for ${READ_STALL_MS / 1000} s (taken up to ${next - 1}; records after the last full batch were not applied). If the rest of the range holds no records (transaction markers), end it at the last record; otherwise check the consumer's access.`,
          ),
        );
      }
    }, 1_000);
    try {
      await done;
    } finally {
      clearInterval(stall);
    }
  } finally {
    await consumer.disconnect();
  }
}

/** Options of {@link replay}. */
export interface ReplayOptions {
  /** kafkajs settings. */
  readonly kafka: KafkaConfig;
  /** The ranges, in order. */
  readonly ranges: readonly ReplayRange[];
  /** Handler, or by topic. */
  readonly handler?: RecoveryHandlerName;
  /** Records per invocation. */
  readonly batchSize: number;
  /** Budget time zone of the environment. */
  readonly budgetTimeZone: string;
  /** Roll everything back. */
  readonly dryRun: boolean;
  /** Environment (DATABASE_URL, REDIS_URL). */
  readonly env: NodeJS.ProcessEnv;
}

function handlerFor(ranges: readonly ReplayRange[], chosen: RecoveryHandlerName | undefined): RecoveryHandlerName {
  if (chosen) return chosen;
  const handlers = new Set(ranges.map((r) => HANDLER_OF_TOPIC[r.topic]));
  const [only] = handlers;
  if (handlers.size !== 1 || only === undefined) {
    throw new UsageError(`no handler consumes topic ${ranges.map((r) => r.topic).join(', ')}; give --handler (click-balance, compensation or ranking-cache)`);
  }
  return only;
}

/** Replays the ranges; see {@link REPLAY_USAGE}. */
export async function replay(options: ReplayOptions): Promise<ReplayResult> {
  const handlerName = handlerFor(options.ranges, options.handler);
  const kafka = new Kafka(options.kafka);
  const totals = emptyTotals();
  return withRecoverySession(options.env, options.dryRun, async (session, cache) => {
    const handler = recoveryHandler(handlerName, session, cache, { budgetTimeZone: options.budgetTimeZone, env: options.env });
    for (const range of options.ranges) {
      await readOffsetRange(kafka, range, options.batchSize, async (records) => {
        const event: LambdaKafkaEvent = {
          eventSource: 'SelfManagedKafka',
          bootstrapServers: (options.kafka.brokers as string[]).join(','),
          records: { [`${range.topic}-${range.partition}`]: records },
        };
        try {
          addSummary(totals, await handler(event));
        } catch (error) {
          const first = records[0].offset;
          const last = records[records.length - 1].offset;
          throw new RecoveryRequestError(
            `${handlerName} failed on offsets ${first}..${last} of ${range.topic}-${range.partition}: ${describeCause(error)}. ` +
              (options.dryRun
                ? 'Dry run: nothing was written.'
                : `The ${totals.invocations} batches before it are applied (${formatTotals(totals)}); fix the cause and run the same command again: nothing is applied twice.`),
          );
        }
      });
    }
    return { dryRun: options.dryRun, handler: handlerName, ranges: options.ranges, totals };
  });
}

/** Formats a result for a terminal. */
export function formatReplay(result: ReplayResult): string {
  const ranges = result.ranges.map((r) => `${r.topic}-${r.partition} offsets ${r.fromOffset}..${r.toOffset}`).join(', ');
  const head = result.dryRun
    ? `dry run (rolled back, nothing moved): replaying ${ranges} through ${result.handler}`
    : `replayed ${ranges} through ${result.handler}`;
  return [head, `  ${formatTotals(result.totals)}`, ...formatMoney(result.money, result.dryRun)].join('\n');
}

/** Runs the command; returns the printed text and the exit code. */
export async function replayCommand(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  stdin: () => string = () => readFileSync(0, 'utf8'),
): Promise<{ code: number; output: string; result?: ReplayResult }> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        env: { type: 'string' },
        brokers: { type: 'string' },
        topic: { type: 'string' },
        partition: { type: 'string' },
        'from-offset': { type: 'string' },
        'to-offset': { type: 'string' },
        'on-failure-message': { type: 'string' },
        handler: { type: 'string' },
        'batch-size': { type: 'string' },
        'dry-run': { type: 'boolean' },
        plaintext: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    usageFailure(error, REPLAY_USAGE);
  }
  if (values.help) return { code: 0, output: REPLAY_USAGE };
  const required = (name: 'env' | 'brokers') => {
    const value = values[name];
    if (value === undefined) throw new UsageError(`replay: --${name} is required\n\n${REPLAY_USAGE}`);
    return value;
  };
  const config = loadEnvironment(required('env'));
  const brokers = required('brokers');
  const coordinates = (['topic', 'partition', 'from-offset', 'to-offset'] as const).filter((name) => values[name] !== undefined);
  let ranges: ReplayRange[];
  if (values['on-failure-message'] !== undefined) {
    if (coordinates.length > 0) throw new UsageError(`replay: --on-failure-message names the range; leave out --${coordinates.join(', --')}`);
    const source = values['on-failure-message'];
    let text: string;
    try {
      text = source === '-' ? stdin() : readFileSync(source, 'utf8');
    } catch (error) {
      throw new RecoveryRequestError(`cannot read the on-failure message ${source}: ${describeCause(error)}`);
    }
    ranges = parseOnFailureMessage(text);
  } else {
    if (coordinates.length !== 4)
      throw new UsageError(`replay: give --topic, --partition, --from-offset and --to-offset, or --on-failure-message\n\n${REPLAY_USAGE}`);
    ranges = [
      checkedRange({
        topic: values.topic as string,
        partition: offsetOf(values.partition, '--partition'),
        fromOffset: offsetOf(values['from-offset'], '--from-offset'),
        toOffset: offsetOf(values['to-offset'], '--to-offset'),
      }),
    ];
  }
  const batchSize = values['batch-size'] === undefined ? config.workers.batchSize : offsetOf(values['batch-size'], '--batch-size');
  if (batchSize < 1 || batchSize > 10_000) throw new UsageError(`replay: --batch-size must be 1 to 10000 (Lambda's range), got ${batchSize}`);
  const result = await replay({
    kafka: replayKafkaConfig(brokers, env, values.plaintext === true),
    ranges,
    handler: values.handler === undefined ? undefined : parseHandlerName(values.handler),
    batchSize,
    budgetTimeZone: config.workers.budgetTimeZone,
    dryRun: values['dry-run'] === true,
    env,
  });
  return { code: 0, output: values.json ? JSON.stringify(result) : formatReplay(result), result };
}

if (require.main === module) {
  runMain(async () => {
    const { code, output } = await replayCommand(process.argv.slice(2));
    console.log(output);
    return code;
  });
}
