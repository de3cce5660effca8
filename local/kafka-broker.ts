// Starts and stops the project's local Apache Kafka broker (java/kafka-broker: Kafka 4.x, KRaft,
// one node that is broker and controller) and creates the contract topics on it from an
// environment config, for the test suite (jest globalSetup) and local runs of the pipeline.
//
// The broker binds 127.0.0.1 on free ports and formats a fresh directory under the system temp
// directory on every start. It exits by itself when the process that started it ends, however
// it ends (it watches its stdin, which is a pipe from this process, and this process's pid), and
// deletes its directory when it exits. A directory left by a broker that could not clean up (the
// machine stopped) is removed by the next start; a broker still running for a launcher that no
// longer exists is stopped first.
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin, ITopicConfig, Kafka, KafkaConfig, logLevel } from 'kafkajs';
import type { EnvironmentConfig, TopicConfig } from '../config/schema';
import { RTB_RANKINGS_TOPIC } from '../contracts';
import { javaClasspath } from '../scripts/java';

/** Where and how to reach a running broker: what clients need, nothing about the process. */
export interface KafkaConnection {
  /** `host:port` of the broker's client listener (SASL/PLAIN over plaintext). */
  readonly bootstrap: string;
  /** SASL/PLAIN user name. */
  readonly username: string;
  /** SASL/PLAIN password (random per broker). */
  readonly password: string;
  /** The broker's log directory (`<topic>-<partition>/…log` segments), for inspection. */
  readonly logDir: string;
  /**
   * The broker's request log: one JSON line per completed request (header, body without record
   * data, response), for seeing what clients actually sent. Empty when the broker is not local.
   */
  readonly requestLog: string;
}

/** A broker this process started. */
export interface LocalKafkaBroker extends KafkaConnection {
  /** Pid of the broker's JVM. */
  readonly pid: number;
  /** The directory the broker formatted and owns (deleted when it stops). */
  readonly workDir: string;
  /** `host:port` of the listener advertised at `advertiseProxyPort`, when asked for. */
  readonly proxiedListener?: string;
  /** Stops the broker and waits for its JVM to exit (it deletes its directory). */
  stop(): Promise<void>;
}

/** Options of {@link startLocalKafkaBroker}. */
export interface LocalKafkaBrokerOptions {
  /** How long the broker may take to answer as ready. @default 240000 (a loaded 2-core machine) */
  readonly startTimeoutMs?: number;
  /** Parent directory of the broker's work directory. @default os.tmpdir() */
  readonly tmpRoot?: string;
  /** Start attempts (each on fresh ports and a fresh directory). @default 3 */
  readonly attempts?: number;
  /**
   * Adds a second client listener advertised at this port, where the caller runs a proxy to
   * the listener's real address (`proxiedListener`); for tests that cut connections.
   * @default - no such listener
   */
  readonly advertiseProxyPort?: number;
}

/** Raised when the broker cannot be built, started or reached; the message says why. */
export class LocalKafkaBrokerError extends Error {
  override readonly name = 'LocalKafkaBrokerError';
}

const WORK_DIR_PREFIX = 'adstream-kafka-';
const MAIN_CLASS = 'adstream.kafka.LocalBroker';
const OWNER_FILE = 'owner.json';
const UNOWNED_GRACE_MS = 10 * 60_000;

interface Owner {
  readonly launcherPid: number;
  readonly brokerPid?: number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when `pid` is a JVM running this project's broker on `workDir` (guards against pid reuse). */
function isOurBroker(pid: number, workDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(MAIN_CLASS) && cmdline.includes(workDir);
  } catch {
    return false;
  }
}

/**
 * Removes what crashed runs left under `tmpRoot`: work directories whose launcher is gone, after
 * stopping their broker if it is somehow still running. Directories of live launchers (another
 * test run on the same machine) are left alone.
 */
export function removeStaleBrokers(tmpRoot: string = tmpdir()): string[] {
  const removed: string[] = [];
  if (!existsSync(tmpRoot)) return removed;
  for (const entry of readdirSync(tmpRoot)) {
    if (!entry.startsWith(WORK_DIR_PREFIX)) continue;
    const dir = join(tmpRoot, entry);
    let owner: Owner | undefined;
    try {
      owner = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as Owner;
    } catch {
      owner = undefined;
    }
    if (owner && isAlive(owner.launcherPid)) continue;
    // A directory without its owner file may be one a launcher has just made: leave young ones.
    if (!owner && Date.now() - statSync(dir).mtimeMs < UNOWNED_GRACE_MS) continue;
    if (owner?.brokerPid && isAlive(owner.brokerPid) && isOurBroker(owner.brokerPid, dir)) {
      try {
        process.kill(owner.brokerPid, 'SIGKILL');
      } catch {
        // Gone in the meantime.
      }
    }
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

function once(broker: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (broker.exitCode !== null || broker.signalCode !== null) resolve();
    else broker.once('exit', () => resolve());
  });
}

type ResolvedOptions = Required<Omit<LocalKafkaBrokerOptions, 'advertiseProxyPort'>> & Pick<LocalKafkaBrokerOptions, 'advertiseProxyPort'>;

async function startOnce(classpath: string, options: ResolvedOptions): Promise<LocalKafkaBroker> {
  const workDir = join(options.tmpRoot, `${WORK_DIR_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(workDir, { recursive: true });
  writeFileSync(join(workDir, OWNER_FILE), JSON.stringify({ launcherPid: process.pid } satisfies Owner));
  const username = 'adstream';
  const password = randomBytes(18).toString('base64url');
  // Logs live in the work directory (startup failures quote their tails) and go with it.
  const logPath = join(workDir, 'broker.log');
  const stderrPath = join(workDir, 'stderr.log');
  const requestLog = join(workDir, 'requests.log');
  const logFd = openSync(stderrPath, 'a');
  const broker = spawn(
    'java',
    [
      '-Xms128m',
      '-Xmx768m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      '-Djava.awt.headless=true',
      `-Dadstream.kafka.brokerLog=${logPath}`,
      `-Dadstream.kafka.requestLog=${requestLog}`,
      '-cp',
      classpath,
      MAIN_CLASS,
      '--data-dir',
      join(workDir, 'data'),
      '--parent-pid',
      String(process.pid),
      '--delete-on-exit',
      workDir,
      ...(options.advertiseProxyPort === undefined ? [] : ['--advertise-proxy-port', String(options.advertiseProxyPort)]),
    ],
    {
      stdio: ['pipe', 'pipe', logFd],
      env: { ...process.env, ADSTREAM_KAFKA_USER: username, ADSTREAM_KAFKA_PASSWORD: password },
    },
  );
  closeSync(logFd);
  // Neither the pipe nor the child may keep this process alive; the broker ends with it.
  broker.unref();
  (broker.stdout as unknown as { unref?: () => void }).unref?.();
  (broker.stdin as unknown as { unref?: () => void }).unref?.();
  broker.stdin?.on('error', () => undefined);
  writeFileSync(join(workDir, OWNER_FILE), JSON.stringify({ launcherPid: process.pid, brokerPid: broker.pid } satisfies Owner));

  const exited = once(broker);
  const stop = async (): Promise<void> => {
    if (broker.exitCode === null && broker.signalCode === null) {
      broker.stdin?.end();
      const timer = setTimeout(() => broker.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(workDir, { recursive: true, force: true });
  };

  const ready = new Promise<{ bootstrap: string; logDir: string; proxied: string }>((resolve, reject) => {
    let buffered = '';
    broker.stdout?.setEncoding('utf8');
    broker.stdout?.on('data', (chunk: string) => {
      buffered += chunk;
      const match = /^READY (\{.*\})$/m.exec(buffered);
      if (match) resolve(JSON.parse(match[1]) as { bootstrap: string; logDir: string; proxied: string });
    });
    void exited.then(() => reject(new LocalKafkaBrokerError(`the broker exited during startup (code ${broker.exitCode}, signal ${broker.signalCode})`)));
    broker.once('error', (error) => reject(new LocalKafkaBrokerError(`could not run java: ${error.message}`)));
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LocalKafkaBrokerError(`the broker was not ready within ${options.startTimeoutMs} ms`)), options.startTimeoutMs);
  });
  try {
    const info = await Promise.race([ready, timeout]);
    return {
      bootstrap: info.bootstrap,
      username,
      password,
      logDir: info.logDir,
      requestLog,
      pid: broker.pid as number,
      workDir,
      ...(info.proxied ? { proxiedListener: info.proxied } : {}),
      stop,
    };
  } catch (error) {
    const tail = [logPath, stderrPath]
      .map((path) => {
        try {
          return readFileSync(path, 'utf8').split('\n').slice(-30).join('\n');
        } catch {
          return '';
        }
      })
      .join('\n');
    broker.kill('SIGKILL');
    await exited;
    rmSync(workDir, { recursive: true, force: true });
    throw new LocalKafkaBrokerError(`${(error as Error).message}\n--- broker log (last lines) ---\n${tail}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Builds `java/kafka-broker` if needed, removes what crashed runs left behind, and starts a
 * broker on free 127.0.0.1 ports. Resolves once the broker answers admin requests.
 */
export async function startLocalKafkaBroker(options: LocalKafkaBrokerOptions = {}): Promise<LocalKafkaBroker> {
  const resolved: ResolvedOptions = {
    startTimeoutMs: options.startTimeoutMs ?? 240_000,
    tmpRoot: options.tmpRoot ?? tmpdir(),
    attempts: options.attempts ?? 3,
    advertiseProxyPort: options.advertiseProxyPort,
  };
  removeStaleBrokers(resolved.tmpRoot);
  const classpath = javaClasspath('kafka-broker');
  let last: unknown;
  for (let attempt = 1; attempt <= resolved.attempts; attempt++) {
    try {
      return await startOnce(classpath, resolved);
    } catch (error) {
      // Most often a free port taken between the broker picking it and binding it: try again
      // on new ports.
      last = error;
    }
  }
  throw last;
}

/** kafkajs client settings for a connection (SASL/PLAIN, no TLS, quiet logs). */
export function kafkaClientConfig(connection: KafkaConnection, clientId: string): KafkaConfig {
  return {
    clientId,
    brokers: [connection.bootstrap],
    ssl: false,
    sasl: { mechanism: 'plain', username: connection.username, password: connection.password },
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
    logLevel: logLevel.NOTHING,
  };
}

/** A kafkajs client on a connection. */
export function kafkaClient(connection: KafkaConnection, clientId: string): Kafka {
  return new Kafka(kafkaClientConfig(connection, clientId));
}

/** Environment variables that carry a connection to test workers and child processes. */
export const KAFKA_CONNECTION_ENV = {
  bootstrap: 'ADSTREAM_KAFKA_BOOTSTRAP',
  username: 'ADSTREAM_KAFKA_USERNAME',
  password: 'ADSTREAM_KAFKA_PASSWORD',
  logDir: 'ADSTREAM_KAFKA_LOG_DIR',
  requestLog: 'ADSTREAM_KAFKA_REQUEST_LOG',
} as const;

/** The connection named by the environment, if one is. */
export function kafkaConnectionFromEnv(source: NodeJS.ProcessEnv = process.env): KafkaConnection | undefined {
  const bootstrap = source[KAFKA_CONNECTION_ENV.bootstrap];
  if (!bootstrap) return undefined;
  return {
    bootstrap,
    username: source[KAFKA_CONNECTION_ENV.username] ?? '',
    password: source[KAFKA_CONNECTION_ENV.password] ?? '',
    logDir: source[KAFKA_CONNECTION_ENV.logDir] ?? '',
    requestLog: source[KAFKA_CONNECTION_ENV.requestLog] ?? '',
  };
}

/** Writes a connection into an environment (for processes started afterwards). */
export function exportKafkaConnection(connection: KafkaConnection, target: NodeJS.ProcessEnv = process.env): void {
  target[KAFKA_CONNECTION_ENV.bootstrap] = connection.bootstrap;
  target[KAFKA_CONNECTION_ENV.username] = connection.username;
  target[KAFKA_CONNECTION_ENV.password] = connection.password;
  target[KAFKA_CONNECTION_ENV.logDir] = connection.logDir;
  target[KAFKA_CONNECTION_ENV.requestLog] = connection.requestLog;
}

/**
 * Partitions and cleanup of `rtb-rankings`, which Flink creates on Confluent Cloud from the
 * ranking statement's DDL (`DISTRIBUTED BY … INTO 6 BUCKETS`, `kafka.cleanup-policy` compact).
 */
export const RTB_RANKINGS_TOPIC_CONFIG: TopicConfig = { partitions: 6, retentionMs: -1, cleanupPolicy: 'compact' };

/** One topic to create: its name and settings. */
export interface TopicSpec {
  /** Topic name as created (prefix included). */
  readonly topic: string;
  /** Partitions, retention, cleanup. */
  readonly config: TopicConfig;
}

/**
 * The topics a local pipeline needs: every contract topic of the environment with the
 * partitions, cleanup policy and retention the streaming stack gives it, plus `rtb-rankings`.
 * `prefix` namespaces them (tests sharing one broker each use their own).
 */
export function contractTopicSpecs(config: EnvironmentConfig, prefix = ''): TopicSpec[] {
  const topics = Object.entries(config.confluent.topics).map(([topic, settings]) => ({ topic: `${prefix}${topic}`, config: settings }));
  return [...topics, { topic: `${prefix}${RTB_RANKINGS_TOPIC}`, config: RTB_RANKINGS_TOPIC_CONFIG }];
}

/** The broker-side topic configuration of one spec (what the streaming stack sets on Confluent). */
export function topicConfigEntries(config: TopicConfig, extra: Readonly<Record<string, string>> = {}): ITopicConfig['configEntries'] {
  return [
    { name: 'cleanup.policy', value: config.cleanupPolicy },
    { name: 'retention.ms', value: String(config.retentionMs) },
    ...Object.entries(extra).map(([name, value]) => ({ name, value })),
  ];
}

/** How long {@link createTopics} waits for the broker to create topics and elect their leaders. */
const TOPIC_CREATION_TIMEOUT_MS = 60_000;

/**
 * Errors of a metadata request that mean "created, not visible with leaders yet": a KRaft broker
 * answers UNKNOWN_TOPIC_OR_PARTITION for a topic it has just created until its metadata catches
 * up (KAFKA-15780), which kafkajs's own wait for leaders does not retry.
 */
const TOPIC_NOT_READY = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE', 'NOT_LEADER_OR_FOLLOWER', 'NOT_LEADER_FOR_PARTITION']);

/**
 * Creates topics that do not exist yet and waits until every partition of every topic in
 * `specs` (also one another caller is creating at the same time) has a leader that serves it.
 */
export async function createTopics(
  connection: KafkaConnection,
  specs: readonly TopicSpec[],
  extraConfig: Readonly<Record<string, string>> = {},
): Promise<void> {
  const admin = kafkaClient(connection, 'adstream-local-admin').admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((spec) => !existing.has(spec.topic));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: false,
        timeout: TOPIC_CREATION_TIMEOUT_MS,
        topics: missing.map((spec) => ({
          topic: spec.topic,
          numPartitions: spec.config.partitions,
          replicationFactor: 1,
          configEntries: topicConfigEntries(spec.config, extraConfig),
        })),
      });
    }
    await waitForLeaders(admin, specs, Date.now() + TOPIC_CREATION_TIMEOUT_MS);
  } finally {
    await admin.disconnect();
  }
}

async function waitForLeaders(admin: Admin, specs: readonly TopicSpec[], deadline: number): Promise<void> {
  const topics = specs.map((spec) => spec.topic);
  let waitingFor = 'the first metadata answer';
  while (Date.now() < deadline) {
    try {
      const metadata = await admin.fetchTopicMetadata({ topics });
      const leaderless = metadata.topics.flatMap((t) => t.partitions.filter((p) => p.leader < 0).map((p) => `${t.name}/${p.partitionId}`));
      if (leaderless.length === 0 && metadata.topics.length === topics.length) {
        // The metadata can name a leader before that broker serves the partition (KRaft applies
        // the change asynchronously): the first ListOffsets then fails with "not the leader".
        // Asking for the offsets of every topic waits for that too.
        waitingFor = 'the leaders to serve the partitions';
        for (const topic of topics) await admin.fetchTopicOffsets(topic);
        return;
      }
      waitingFor = `leaders of ${leaderless.join(', ') || 'every topic'}`;
    } catch (error) {
      const { type: ownType, originalError } = error as { type?: string; originalError?: { type?: string } };
      const type = ownType ?? originalError?.type;
      if (!type || !TOPIC_NOT_READY.has(type)) throw error;
      waitingFor = `the broker to report the topics (${type})`;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`topics ${topics.join(', ')}: timed out after ${TOPIC_CREATION_TIMEOUT_MS} ms waiting for ${waitingFor}`);
}

/** Creates the environment's contract topics (and `rtb-rankings`) on a broker. */
export async function createContractTopics(connection: KafkaConnection, config: EnvironmentConfig, prefix = ''): Promise<TopicSpec[]> {
  const specs = contractTopicSpecs(config, prefix);
  await createTopics(connection, specs);
  return specs;
}

/**
 * `npx tsx local/kafka-broker.ts [--env dev]`: starts a broker with the environment's contract
 * topics, prints the connection as `NAME=value` lines (the variables of KAFKA_CONNECTION_ENV)
 * and a `READY` line, and runs until interrupted or until its stdin closes.
 */
async function main(argv: readonly string[]): Promise<void> {
  const envIndex = argv.indexOf('--env');
  const envName = envIndex >= 0 ? argv[envIndex + 1] : 'dev';
  // Loaded here, not at the top: test files import this module without wanting every environment.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { loadEnvironment } = require('../config') as typeof import('../config');
  const config = loadEnvironment(envName);
  const broker = await startLocalKafkaBroker();
  let stopping: Promise<void> | undefined;
  const stop = (): void => {
    stopping ??= broker.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
  await createContractTopics(broker, config);
  const env: NodeJS.ProcessEnv = {};
  exportKafkaConnection(broker, env);
  for (const [name, value] of Object.entries(env)) process.stdout.write(`${name}=${value}\n`);
  process.stdout.write(`READY broker pid ${broker.pid}, topics of ${config.name} created\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
