// Every Flink statement of an environment running continuously in the local Flink engine against
// a Kafka broker: the runner's translation (constructs/flink/local-engine.ts) with each table's
// in-JVM test connector swapped for `adstream-kafka` (java/flink-runner KafkaTableFactory: JSON
// Schema Registry wire format, upsert keys, tombstones), in one JVM (adstream.flink.KafkaRunner)
// that submits one streaming job per INSERT and exits when this process goes away.
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FLINK_PIPELINE_IDS, FlinkPipelineId } from '../config/flink';
import type { EnvironmentConfig } from '../config/schema';
import { LOCAL_CONNECTOR, LocalJob, localJob } from '../constructs/flink/local-engine';
import { synthesizedDeployment } from '../scripts/flink-statements';
import { javaClasspath } from '../scripts/java';
import type { KafkaConnection } from './kafka-broker';

/** Connector of the translated tables in Kafka mode. */
export const KAFKA_CONNECTOR = 'adstream-kafka';

/** Schema ids the local sinks put in the wire header (no Schema Registry runs locally). */
export const LOCAL_SCHEMA_IDS = { key: 100_001, value: 100_002 } as const;

/** One statement the local pipeline runs. */
export interface RunningStatementInfo {
  /** Confluent statement name. */
  readonly name: string;
  /** Path relative to flink-sql/. */
  readonly source: string;
  /** DDL (run once) or DML (a continuous job). */
  readonly kind: 'ddl' | 'dml';
}

/** Rewrites `'connector' = 'adstream-topic', 'topic' = 'x'` to the Kafka connector on `<prefix>x`. */
export function toKafkaConnector(sql: string, topicPrefix: string): string {
  const pattern = new RegExp(`'connector' = '${LOCAL_CONNECTOR}',(\\s*)'topic' = '((?:[^']|'')*)'`, 'g');
  return sql.replace(pattern, (_m, space: string, topic: string) => `'connector' = '${KAFKA_CONNECTOR}',${space}'topic' = '${topicPrefix}${topic}'`);
}

/**
 * The job `npm run local` runs for an environment: its configured pipeline versions as
 * synthesized (every DDL, including a retired version's tables a running version writes, and
 * the INSERTs of the running versions only), translated, on Kafka topics under `topicPrefix`.
 */
export function environmentKafkaJob(
  config: EnvironmentConfig,
  topicPrefix = '',
  versions: Readonly<Partial<Record<FlinkPipelineId, number>>> = {},
): { job: LocalJob; statements: RunningStatementInfo[] } {
  const pipelines = { ...config.flink.pipelines };
  for (const [id, version] of Object.entries(versions) as [FlinkPipelineId, number][]) {
    if (!FLINK_PIPELINE_IDS.includes(id)) throw new TypeError(`unknown pipeline ${id} (known: ${FLINK_PIPELINE_IDS.join(', ')})`);
    const configured = config.flink.pipelines[id].version;
    // As the upgrade path deploys it: the new version running, the configured one retired beside it.
    pipelines[id] = version === configured ? config.flink.pipelines[id] : { version, stopped: false, retiredVersions: [configured] };
  }
  const deployment = synthesizedDeployment(config, { flink: { pipelines, allowUnreleasedVersions: true } });
  const selected = deployment.statements.filter((s) => s.kind === 'ddl' || s.running);
  const job = localJob(selected, deployment.cleanupPolicies);
  const kafkaJob: LocalJob = {
    ...job,
    // Continuous run: watermarks every 200 ms instead of after every record (the scenario setting).
    baseConfig: { ...job.baseConfig, 'pipeline.auto-watermark-interval': '200 ms' },
    tables: job.tables.map((t) => ({ ...t, sql: toKafkaConnector(t.sql, topicPrefix) })),
    statements: job.statements.map((s) => ({ ...s, sql: toKafkaConnector(s.sql, topicPrefix) })),
  };
  for (const s of [...kafkaJob.tables, ...kafkaJob.statements]) {
    if (s.sql.includes(`'${LOCAL_CONNECTOR}'`)) throw new Error(`${s.name}: a table kept the in-JVM test connector`);
  }
  return { job: kafkaJob, statements: selected.map((s) => ({ name: s.name, source: s.source, kind: s.kind })) };
}

/** What the engine reports every two seconds. */
export interface FlinkKafkaStatus {
  /** Job state per INSERT statement (`RUNNING`, or `FAILED: message`). */
  readonly jobs: Readonly<Record<string, string>>;
  /** Records skipped as unreadable, per topic. */
  readonly skipped: Readonly<Record<string, number>>;
}

/** Raised when the engine cannot start a statement or a job fails. */
export class LocalFlinkError extends Error {
  override readonly name = 'LocalFlinkError';
}

const WORK_DIR_PREFIX = 'adstream-flink-local-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the work directories of engines whose launcher is gone (killed with SIGKILL, machine
 * stopped): Flink's MiniCluster writes its blobs, RPC jar and spill files there.
 */
export function removeStaleFlinkDirs(root: string = tmpdir()): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(root)) {
    if (!name.startsWith(WORK_DIR_PREFIX)) continue;
    const dir = join(root, name);
    let owner = 0;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      owner = 0;
    }
    if (owner > 0 && alive(owner)) continue;
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

/** The continuous local Flink engine. */
export class FlinkKafkaEngine {
  /** Latest status line. */
  public status: FlinkKafkaStatus = { jobs: {}, skipped: {} };
  /** Names of the running INSERT jobs. */
  public jobs: string[] = [];
  private stderr = '';
  private exited = false;
  private readonly exit: Promise<number | null>;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly workDir: string,
  ) {
    this.exit = new Promise((resolve) =>
      child.once('exit', (code) => {
        this.exited = true;
        resolve(code);
      }),
    );
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-30_000);
    });
  }

  /** Pid of the JVM. */
  public get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last lines the JVM wrote to stderr. */
  public get log(): string {
    return this.stderr;
  }

  /** Builds the runner if needed, starts the JVM and every statement; resolves when every job is submitted. */
  public static async start(job: LocalJob, connection: KafkaConnection, options: { groupPrefix?: string; heap?: string } = {}): Promise<FlinkKafkaEngine> {
    const classpath = javaClasspath('flink-runner');
    removeStaleFlinkDirs();
    // Every temporary file of the JVM (MiniCluster blobs, RPC jar, spill files) goes to a
    // directory of this engine's own, removed when it stops.
    const workDir = mkdtempSync(join(tmpdir(), WORK_DIR_PREFIX));
    writeFileSync(join(workDir, 'owner.pid'), String(process.pid));
    const child = spawn(
      'java',
      [
        `-Xmx${options.heap ?? '1200m'}`,
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        `-Djava.io.tmpdir=${workDir}`,
        '-cp',
        classpath,
        'adstream.flink.KafkaRunner',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const engine = new FlinkKafkaEngine(child, workDir);
    const started = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        let message: { ok?: boolean; error?: string; jobs?: unknown } & Partial<FlinkKafkaStatus>;
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          return;
        }
        if (message.ok === true) {
          engine.jobs = message.jobs as unknown as string[];
          resolve();
        } else if (message.ok === false) {
          reject(new LocalFlinkError(`the local Flink engine could not start the statements: ${message.error}`));
        } else if (message.jobs && typeof message.jobs === 'object') {
          engine.status = { jobs: message.jobs as Record<string, string>, skipped: message.skipped ?? {} };
        }
      });
      void engine.exit.then((code) => reject(new LocalFlinkError(`the local Flink engine exited (code ${code}).\n${engine.stderr.slice(-4000)}`)));
    });
    child.stdin.write(
      `${JSON.stringify({
        ...job,
        kafka: {
          bootstrap: connection.bootstrap,
          username: connection.username,
          password: connection.password,
          groupPrefix: options.groupPrefix ?? '',
          keySchemaId: LOCAL_SCHEMA_IDS.key,
          valueSchemaId: LOCAL_SCHEMA_IDS.value,
        },
      })}\n`,
    );
    try {
      await started;
    } catch (error) {
      await engine.stop();
      throw error;
    }
    return engine;
  }

  /** Consumer group of a statement's source on `topic` (as the engine names it). */
  public static groupOf(groupPrefix: string, statement: string, topic: string): string {
    return `${groupPrefix}flink-${statement}-${topic}`;
  }

  /** Jobs that are not RUNNING (with their messages). */
  public failedJobs(): string[] {
    return Object.entries(this.status.jobs)
      .filter(([, state]) => state !== 'RUNNING' && state !== 'CREATED' && state !== 'INITIALIZING')
      .map(([name, state]) => `${name}: ${state}`);
  }

  /** Cancels every job and waits for the JVM to exit (killed after 20 s). */
  public async stop(): Promise<void> {
    if (!this.exited) {
      this.child.stdin.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
      await this.exit;
      clearTimeout(timer);
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }
}
