// The local Flink engine as a child process: one JVM (java/flink-runner, built on demand by
// scripts/java.ts) that runs many jobs, one JSON line each way. Tests and `npm run flink:test`
// start one engine per run and close it at the end (also on failure).
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { LocalJob } from '../constructs/flink/local-engine';
import { javaClasspath } from './java';

/** Records of one input topic, in arrival order, as the runner reads them. */
export interface EngineRecord {
  /** Kafka partition (arrival order is global across partitions). */
  readonly partition: number;
  /** Raw record key, or null. */
  readonly key: string | null;
  /** JSON value, or null for a tombstone. */
  readonly value: Record<string, unknown> | null;
  /** Record timestamp, epoch ms (the `$rowtime` column). */
  readonly timestamp: number;
}

/** One row a sink received. */
export interface ChangelogRow {
  /** `+I`, `-U`, `+U` or `-D`. */
  readonly op: string;
  /** The row, decimals and timestamps as strings. */
  readonly row: Record<string, unknown>;
}

/** What the engine says about one statement. */
export interface StatementResult {
  /** Statement name. */
  readonly name: string;
  /** Flink's optimized physical plan with changelog modes (DML only). */
  readonly plan?: string;
  /** Changelog mode of the rows the sink receives, e.g. `I` or `I,UA,D` (DML only). */
  readonly sinkInputChangelogMode?: string;
  /** Whether Flink had to add an upsert materializer because the query's key is not the sink's key. */
  readonly upsertMaterialize?: boolean;
  /** Flink's message when this statement failed (with `continueOnError`). */
  readonly error?: string;
  /** Operator names of the plan, sink first. */
  readonly operators?: readonly string[];
}

/** The answer to one job. */
export interface EngineAnswer {
  /** Whether every statement was accepted (and executed). */
  readonly ok: boolean;
  /** The first failure: statement name and Flink's message. */
  readonly error?: { readonly statement: string; readonly message: string };
  /** Results of the statements that ran, in order. */
  readonly statements: readonly StatementResult[];
  /** Changelog of every sink written, by topic (execute only). */
  readonly sinks?: Readonly<Record<string, readonly ChangelogRow[]>>;
}

/** A running local engine. */
export class FlinkEngine {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, (answer: EngineAnswer) => void>();
  private nextId = 1;
  private stderr = '';
  private readonly ready: Promise<void>;
  private exited = false;

  private constructor() {
    const classpath = javaClasspath('flink-runner');
    this.child = spawn('java', ['-Xmx1g', '-XX:+UseSerialGC', '-cp', classpath, 'adstream.flink.Runner'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-20000);
    });
    let markReady: () => void = () => undefined;
    let failReady: (e: Error) => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as EngineAnswer & { id?: number; ready?: boolean };
      if (message.ready) return markReady();
      const resolve = this.pending.get(message.id ?? -1);
      if (resolve) {
        this.pending.delete(message.id ?? -1);
        resolve({ ...message, statements: message.statements ?? [] });
      }
    });
    this.child.on('exit', (code) => {
      this.exited = true;
      const error = new Error(`The local Flink engine exited (code ${code}).\n${this.stderr}`);
      failReady(error);
      for (const resolve of this.pending.values()) resolve({ ok: false, error: { statement: '(engine)', message: error.message }, statements: [] });
      this.pending.clear();
    });
  }

  /** Builds the runner if needed and starts its JVM. */
  public static async start(): Promise<FlinkEngine> {
    const engine = new FlinkEngine();
    await engine.ready;
    return engine;
  }

  /** Plans every statement of `job` (and with `execute`, runs its INSERTs over `inputs`). */
  public async run(
    job: LocalJob,
    options: { execute?: boolean; continueOnError?: boolean; inputs?: Readonly<Record<string, readonly EngineRecord[]>> } = {},
  ): Promise<EngineAnswer> {
    if (this.exited) throw new Error(`The local Flink engine is not running.\n${this.stderr}`);
    const id = this.nextId++;
    const answer = new Promise<EngineAnswer>((resolve) => this.pending.set(id, resolve));
    this.child.stdin.write(
      `${JSON.stringify({ id, ...job, execute: options.execute ?? false, continueOnError: options.continueOnError ?? false, inputs: options.inputs ?? {} })}\n`,
    );
    return answer;
  }

  /** Stops the JVM. */
  public async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
