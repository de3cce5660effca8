// `npm run local [-- --env dev] [--events N | --duration S] [--rate R] [--seed N]`: the whole
// pipeline on this machine over seeded traffic, a live view, and a reconciliation of the money
// against the generator's truth. Exit code 0 only when it reconciles; 1 when it does not; 2 on
// a usage error or a missing prerequisite; 130 when interrupted (everything started is stopped).
import { parseArgs } from 'node:util';
import { loadEnvironment } from '../config';
import { LocalPrerequisiteError, LocalRunAborted, runLocalPipeline } from './pipeline';
import { reconciliationTable } from './reconcile';
import { TrafficError } from './traffic';

const HELP = `Usage: npm run local -- [options]

Runs the whole adstream pipeline on this machine: the local Kafka broker with the environment's
topics, every Flink statement of the environment in the local Flink engine, the six workers,
seeded traffic with its ground truth, a live view, and a reconciliation of the money.

Options:
  --env NAME         environment config (config/environments/NAME.ts)   [dev]
  --events N         events to generate                                 [5000]
  --duration S       generate rate × S events instead of --events
  --rate R           events produced per second                         [500]
  --seed N           generator seed (same seed, same traffic and truth) [7]
  --spacing-ms MS    event time between consecutive events              [200]
  --view-seconds S   seconds between live-view lines (0: none)          [3]
  --drain-timeout S  longest wait for the pipeline to drain             [240]
  --pipeline ID=V    run version V of a Flink pipeline instead of the configured one, deployed as
                     the upgrade path does (configured version retired); repeatable, e.g.
                     --pipeline duplicate-clicks=4 (a v4 written after the configured v3)
  --malformed-prices some bad clicks quote 'twelve' instead of a negative price
  --keep             keep the run's database and Redis keys
  -h, --help         this text

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres; the run creates
and drops a database of its own on that server), REDIS_URL (default redis://127.0.0.1:6379; the
run uses a key prefix of its own), ADSTREAM_KAFKA_* (reuse a running broker, topics under a run
prefix; default: start one). Needs Java 17 and Maven (the Java tools build on first use).
Exit code 0 only when every reconciliation check passes.`;

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new TypeError(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        env: { type: 'string', default: 'dev' },
        events: { type: 'string' },
        duration: { type: 'string' },
        rate: { type: 'string' },
        seed: { type: 'string' },
        'spacing-ms': { type: 'string' },
        'view-seconds': { type: 'string' },
        'drain-timeout': { type: 'string' },
        keep: { type: 'boolean', default: false },
        'malformed-prices': { type: 'boolean', default: false },
        pipeline: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const controller = new AbortController();
  const interrupt = () => {
    if (controller.signal.aborted) return;
    process.stderr.write('\ninterrupted: stopping the workers, Flink and the broker, dropping the run database…\n');
    controller.abort();
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  try {
    if (values.events !== undefined && values.duration !== undefined) throw new TypeError('give --events or --duration, not both');
    const rate = positive('rate', values.rate, 500);
    const events =
      values.duration !== undefined ? Math.round(rate * positive('duration', values.duration, 10)) : Math.round(positive('events', values.events, 5000));
    const seed = values.seed === undefined ? 7 : Number(values.seed);
    if (!Number.isInteger(seed)) throw new TypeError(`--seed must be an integer, got ${JSON.stringify(values.seed)}`);
    const viewSeconds = values['view-seconds'] === undefined ? 3 : Number(values['view-seconds']);
    const config = loadEnvironment(values.env ?? 'dev');
    const pipelineVersions: Record<string, number> = {};
    for (const spec of values.pipeline ?? []) {
      const match = /^([a-z-]+)=(\d+)$/.exec(spec);
      if (!match) throw new TypeError(`--pipeline takes ID=VERSION (e.g. duplicate-clicks=4), got ${JSON.stringify(spec)}`);
      pipelineVersions[match[1]] = Number(match[2]);
    }
    const result = await runLocalPipeline({
      config,
      events,
      rate,
      seed,
      spacingMs: positive('spacing-ms', values['spacing-ms'], 200),
      viewIntervalSeconds: Number.isFinite(viewSeconds) && viewSeconds >= 0 ? viewSeconds : 3,
      drainTimeoutMs: positive('drain-timeout', values['drain-timeout'], 240) * 1000,
      databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      keep: values.keep,
      malformedPrices: values['malformed-prices'],
      pipelineVersions,
      signal: controller.signal,
    });
    process.stdout.write(`\n${reconciliationTable(result.reconciliation)}\n`);
    process.stdout.write(
      `${events} events produced in ${result.produceSeconds.toFixed(1)} s; pipeline drained ${result.endToEndSeconds.toFixed(1)} s after the first event: ${result.sustainedEventsPerSecond.toFixed(0)} events/s end to end\n`,
    );
    return result.reconciliation.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof LocalRunAborted) return 130;
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof LocalPrerequisiteError || error instanceof TrafficError || error instanceof TypeError ? 2 : 1;
  }
}

void main(process.argv.slice(2)).then((code) => process.exit(code));
