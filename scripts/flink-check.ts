/**
 * `npm run flink:check -- --env <env>`: submits every Flink statement of an environment to
 * Confluent Cloud as a dry run (`sql.dry-run = true`: parsed, validated and planned, never
 * executed) through the Flink SQL REST API, and prints statement → accepted / error.
 * Exit code 1 when any statement is rejected or the settings are missing, 2 on a usage error.
 *
 * Where it runs and with which key is read from the deployed streaming stack's outputs (see
 * FLINK_CONNECTION_OUTPUTS): `terraform output -json` of cdktf.out/stacks/adstream-<env>-streaming,
 * or a file holding that JSON (`--outputs-file`). Nothing has to be exported by hand. For CI
 * without Terraform state, all seven of FLINK_API_KEY, FLINK_API_SECRET, FLINK_REST_ENDPOINT,
 * CONFLUENT_ORG_ID, CONFLUENT_ENV_ID, FLINK_COMPUTE_POOL_ID and FLINK_PRINCIPAL_ID may be set
 * instead (plus FLINK_CATALOG / FLINK_DATABASE for a referenced environment or cluster).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { App } from 'cdktf';
import type { FlinkConfig } from '../config/flink';
import { FlinkStack } from '../stacks/flink-stack';
import { stackName } from '../stacks/environment-stack';
import { FLINK_CONNECTION_OUTPUTS } from '../stacks/streaming-stack';
import { reportError, runMain } from './cli';

/** One statement to dry-run. */
export interface DryRunTarget {
  /** The statement's deployed name (the dry run uses a derived, unique name). */
  readonly statementName: string;
  /** SQL exactly as deployed. */
  readonly sql: string;
  /** Properties as deployed. */
  readonly properties: Readonly<Record<string, string>>;
  /** SQL file, relative to flink-sql/. */
  readonly source: string;
  /** Table the statement creates, if it is a CREATE TABLE. */
  readonly creates?: string;
}

/** Connection settings of the Flink SQL REST API. */
export interface FlinkApiSettings {
  /** Flink API key. */
  readonly apiKey: string;
  /** Flink API secret. */
  readonly apiSecret: string;
  /** Regional Flink REST endpoint, e.g. https://flink.ap-northeast-2.aws.confluent.cloud. */
  readonly restEndpoint: string;
  /** Organization id. */
  readonly organizationId: string;
  /** Environment id. */
  readonly environmentId: string;
  /** Compute pool id. */
  readonly computePoolId: string;
  /** Principal (service account) the statements run as. */
  readonly principalId: string;
}

/** Names of the environment variables, by setting. */
export const FLINK_CHECK_ENV_VARS: Readonly<Record<keyof FlinkApiSettings, string>> = {
  apiKey: 'FLINK_API_KEY',
  apiSecret: 'FLINK_API_SECRET',
  restEndpoint: 'FLINK_REST_ENDPOINT',
  organizationId: 'CONFLUENT_ORG_ID',
  environmentId: 'CONFLUENT_ENV_ID',
  computePoolId: 'FLINK_COMPUTE_POOL_ID',
  principalId: 'FLINK_PRINCIPAL_ID',
};

/** Missing or malformed settings for the check. */
export class FlinkCheckConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlinkCheckConfigError';
  }
}

/** Reads the settings from environment variables, naming every missing one. */
export function settingsFromEnv(env: NodeJS.ProcessEnv): FlinkApiSettings {
  const missing = Object.values(FLINK_CHECK_ENV_VARS).filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new FlinkCheckConfigError(`Set ${missing.join(', ')} (the Flink API key of the statement deployer and the ids from the streaming stack outputs).`);
  }
  const read = (key: keyof FlinkApiSettings): string => env[FLINK_CHECK_ENV_VARS[key]] as string;
  const restEndpoint = read('restEndpoint').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(restEndpoint)) {
    throw new FlinkCheckConfigError(
      `FLINK_REST_ENDPOINT must be a URL such as https://flink.ap-northeast-2.aws.confluent.cloud, got ${JSON.stringify(restEndpoint)}.`,
    );
  }
  return {
    apiKey: read('apiKey'),
    apiSecret: read('apiSecret'),
    restEndpoint,
    organizationId: read('organizationId'),
    environmentId: read('environmentId'),
    computePoolId: read('computePoolId'),
    principalId: read('principalId'),
  };
}

/** Outcome of one dry run. */
export type DryRunVerdict = 'accepted' | 'error' | 'needs-ddl';

/** Result of one dry run. */
export interface DryRunResult {
  /** The deployed statement name. */
  readonly statementName: string;
  /** SQL file, relative to flink-sql/. */
  readonly source: string;
  /** accepted; error; or needs-ddl (rejected only because a table our own DDL creates does not exist yet). */
  readonly verdict: DryRunVerdict;
  /** Final phase reported by Confluent, or the HTTP status. */
  readonly phase: string;
  /** Confluent's detail message, when there is one. */
  readonly detail: string;
}

/** Timing of the poll loop. */
export interface DryRunOptions {
  /** First delay between status polls; it doubles up to 2 s. @default 250 ms (env FLINK_CHECK_POLL_MS) */
  readonly pollIntervalMs?: number;
  /** Give up after this long. @default 120 s */
  readonly timeoutMs?: number;
}

interface StatementResponse {
  readonly name?: string;
  readonly status?: { readonly phase?: string; readonly detail?: string };
  readonly errors?: readonly { readonly status?: string; readonly detail?: string; readonly title?: string }[];
  readonly message?: string;
  readonly error_code?: number;
}

const TERMINAL_PHASES = ['COMPLETED', 'FAILED', 'STOPPED', 'FAILING', 'RUNNING', 'DEGRADED'];

function errorDetail(body: StatementResponse | undefined, fallback: string): string {
  if (!body) return fallback;
  if (body.errors && body.errors.length > 0) return body.errors.map((e) => e.detail ?? e.title ?? 'error').join('; ');
  return body.status?.detail ?? body.message ?? fallback;
}

/** A name Confluent accepts that cannot collide with a deployed statement. */
export function dryRunName(statementName: string): string {
  const suffix = `dry-${randomBytes(3).toString('hex')}`;
  return `${statementName.slice(0, 100 - suffix.length - 1)}-${suffix}`;
}

async function call(settings: FlinkApiSettings, method: string, path: string, body?: unknown): Promise<{ status: number; json?: StatementResponse }> {
  const auth = Buffer.from(`${settings.apiKey}:${settings.apiSecret}`).toString('base64');
  const response = await fetch(`${settings.restEndpoint}${path}`, {
    method,
    headers: { Authorization: `Basic ${auth}`, 'Content-Type': 'application/json', Accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json: StatementResponse | undefined;
  try {
    json = text ? (JSON.parse(text) as StatementResponse) : undefined;
  } catch {
    json = { message: text.slice(0, 500) };
  }
  return { status: response.status, json };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Dry-runs one statement: POST it with `sql.dry-run = true`, poll until Confluent reports a
 * final phase, then delete the dry-run statement. Never throws for a rejected statement; a
 * network failure becomes an `error` result naming it.
 */
export async function dryRunStatement(settings: FlinkApiSettings, target: DryRunTarget, options: DryRunOptions = {}): Promise<DryRunResult> {
  const base = `/sql/v1/organizations/${encodeURIComponent(settings.organizationId)}/environments/${encodeURIComponent(settings.environmentId)}/statements`;
  const name = dryRunName(target.statementName);
  const result = (verdict: DryRunVerdict, phase: string, detail: string): DryRunResult => ({
    statementName: target.statementName,
    source: target.source,
    verdict,
    phase,
    detail,
  });
  try {
    const created = await call(settings, 'POST', base, {
      name,
      organization_id: settings.organizationId,
      environment_id: settings.environmentId,
      spec: {
        statement: target.sql,
        properties: { ...target.properties, 'sql.dry-run': 'true' },
        compute_pool_id: settings.computePoolId,
        principal: settings.principalId,
        stopped: false,
      },
    });
    if (created.status >= 400) return result('error', `HTTP ${created.status}`, errorDetail(created.json, 'request rejected'));
    let phase = created.json?.status?.phase ?? 'PENDING';
    let detail = created.json?.status?.detail ?? '';
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    let delay = options.pollIntervalMs ?? 250;
    while (!TERMINAL_PHASES.includes(phase)) {
      if (Date.now() > deadline) {
        await call(settings, 'DELETE', `${base}/${name}`).catch(() => undefined);
        return result('error', phase, `no final phase within ${(options.timeoutMs ?? 120_000) / 1000} s`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
      const polled = await call(settings, 'GET', `${base}/${name}`);
      if (polled.status >= 400) return result('error', `HTTP ${polled.status}`, errorDetail(polled.json, 'status unavailable'));
      phase = polled.json?.status?.phase ?? phase;
      detail = polled.json?.status?.detail ?? detail;
    }
    await call(settings, 'DELETE', `${base}/${name}`).catch(() => undefined);
    if (phase === 'COMPLETED' || phase === 'RUNNING') return result('accepted', phase, detail);
    return result('error', phase, detail || 'rejected without detail');
  } catch (cause) {
    return result('error', 'UNREACHABLE', `request to ${settings.restEndpoint} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * Dry-runs every target in order. A DML rejected only because a table our own DDL creates does
 * not exist yet (before the first deploy nothing has created it) is `needs-ddl`, not an error.
 */
export async function runFlinkCheck(settings: FlinkApiSettings, targets: readonly DryRunTarget[], options: DryRunOptions = {}): Promise<DryRunResult[]> {
  const planned = targets.map((t) => t.creates).filter((t): t is string => t !== undefined);
  const results: DryRunResult[] = [];
  for (const target of targets) {
    const outcome = await dryRunStatement(settings, target, options);
    const missingOwnTable =
      outcome.verdict === 'error' &&
      /(does not exist|not found|cannot be found)/i.test(outcome.detail) &&
      planned.some((table) => outcome.detail.includes(table) && table !== target.creates);
    results.push(missingOwnTable ? { ...outcome, verdict: 'needs-ddl' } : outcome);
  }
  return results;
}

/** A plain-text table: statement | file | result | detail. */
export function formatResultTable(results: readonly DryRunResult[]): string {
  const rows = [
    ['statement', 'file', 'result', 'detail'],
    ...results.map((r) => [
      r.statementName,
      r.source,
      r.verdict === 'needs-ddl' ? 'accepted after DDL' : r.verdict,
      r.detail.replace(/\s+/g, ' ').slice(0, 160),
    ]),
  ];
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row: string[]): string =>
    row
      .map((cell, c) => (c < 3 ? cell.padEnd(widths[c]) : cell))
      .join(' | ')
      .trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('-+-') + '-+-------', ...rows.slice(1).map(line)].join('\n');
}

/** Every statement the Flink stack of an environment deploys, in deployment order. */
export function targetsFor(environmentName: string, production: boolean, flink: FlinkConfig, catalogName: string, databaseName: string): DryRunTarget[] {
  const stack = new FlinkStack(new App({ outdir: mkdtempSync(join(tmpdir(), 'adstream-flink-check-')) }), {
    config: { name: environmentName, production, flink, stateBackend: { kind: 'local', directory: 'terraform-state' } },
    connection: {
      organizationId: 'check',
      environmentId: 'check',
      catalogName,
      databaseName,
      computePoolId: 'check',
      principalId: 'check',
      restEndpoint: 'https://check.invalid',
    },
  });
  return stack.pipelines.flatMap((pipeline) =>
    pipeline.statements.map((s) => ({ statementName: s.statementName, sql: s.sql, properties: s.properties, source: s.source, creates: s.tables.creates })),
  );
}

/** `terraform output -json` of a stack: output name → value (and whether it is sensitive). */
export type StackOutputs = Readonly<Record<string, { readonly value: unknown; readonly sensitive?: boolean }>>;

/** Settings plus the Flink catalog and database, all read from the streaming stack's outputs. */
export interface FlinkCheckTarget {
  /** REST API settings. */
  readonly settings: FlinkApiSettings;
  /** Environment display name (sql.current-catalog). */
  readonly catalogName: string;
  /** Cluster display name (sql.current-database). */
  readonly databaseName: string;
}

/** Reads the check's settings from the streaming stack's outputs, naming every missing output. */
export function settingsFromOutputs(outputs: StackOutputs, streamingStack: string): FlinkCheckTarget {
  const o = FLINK_CONNECTION_OUTPUTS;
  const missing = Object.values(o).filter((name) => typeof outputs[name]?.value !== 'string' || outputs[name].value === '');
  if (missing.length > 0) {
    throw new FlinkCheckConfigError(
      `The outputs of ${streamingStack} lack ${missing.join(', ')}: deploy the streaming stack first (npm run deploy -- --env <env> --stacks streaming).`,
    );
  }
  const read = (name: string): string => outputs[name].value as string;
  const env: NodeJS.ProcessEnv = {
    [FLINK_CHECK_ENV_VARS.apiKey]: read(o.apiKey),
    [FLINK_CHECK_ENV_VARS.apiSecret]: read(o.apiSecret),
    [FLINK_CHECK_ENV_VARS.restEndpoint]: read(o.restEndpoint),
    [FLINK_CHECK_ENV_VARS.organizationId]: read(o.organizationId),
    [FLINK_CHECK_ENV_VARS.environmentId]: read(o.environmentId),
    [FLINK_CHECK_ENV_VARS.computePoolId]: read(o.computePoolId),
    [FLINK_CHECK_ENV_VARS.principalId]: read(o.principalId),
  };
  return { settings: settingsFromEnv(env), catalogName: read(o.catalogName), databaseName: read(o.databaseName) };
}

/** `terraform output -json` of the synthesized, deployed streaming stack. */
function readStackOutputs(stackDir: string, streamingStack: string): StackOutputs {
  if (!existsSync(stackDir)) {
    throw new FlinkCheckConfigError(
      `${stackDir} does not exist: run \`npx cdktf synth\` and deploy ${streamingStack} first (npm run deploy -- --env <env> --stacks streaming).`,
    );
  }
  try {
    const text = execFileSync('terraform', [`-chdir=${stackDir}`, 'output', '-json', '-no-color'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(text) as StackOutputs;
  } catch (cause) {
    const lines = ((cause as { stderr?: string }).stderr ?? '')
      .split('\n')
      .map((line) => line.replace(/^[│╷╵\s]+/, '').trim())
      .filter(Boolean);
    const errorAt = lines.findIndex((line) => line.startsWith('Error'));
    const stderr = (errorAt >= 0 ? lines.slice(errorAt, errorAt + 3) : lines.slice(0, 3)).join('\n');
    throw new FlinkCheckConfigError(
      `Could not read the outputs of ${streamingStack} (terraform output in ${stackDir}${stderr ? `: ${stderr.split('\n').join(' ')}` : ''}). ` +
        'Deploy the streaming stack first; it initialises that directory against the state backend.',
    );
  }
}

const USAGE = `usage: npm run flink:check -- --env <env> [--outputs-file <file>]

Dry-runs every Flink statement of <env> on Confluent Cloud (parsed, validated and planned,
never executed) and prints statement -> accepted / error.

  --env <env>            environment under config/environments (required)
  --outputs-file <file>  JSON of \`terraform output -json\` of adstream-<env>-streaming
                         (default: read from cdktf.out/stacks/adstream-<env>-streaming)
  --help                 this text

Exit code: 0 all accepted, 1 a statement was rejected or settings are missing, 2 usage error.`;

async function main(argv: readonly string[]): Promise<number> {
  let values: { env?: string; 'outputs-file'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { env: { type: 'string' }, 'outputs-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.env) {
    console.error(USAGE);
    return 2;
  }
  try {
    const { loadEnvironment } = require('../config') as typeof import('../config');
    const environment = loadEnvironment(values.env);
    const streamingStack = stackName(environment, 'streaming');
    const fromEnv = Object.values(FLINK_CHECK_ENV_VARS).every((name) => process.env[name]);
    let target: FlinkCheckTarget;
    if (values['outputs-file'] || !fromEnv) {
      const outputs = values['outputs-file']
        ? (JSON.parse(readFileSync(values['outputs-file'], 'utf8')) as StackOutputs)
        : readStackOutputs(join(__dirname, '..', 'cdktf.out', 'stacks', streamingStack), streamingStack);
      target = settingsFromOutputs(outputs, streamingStack);
    } else {
      const configured = environment.confluent;
      const catalogName = process.env.FLINK_CATALOG ?? (configured.environment.mode === 'create' ? configured.environment.displayName : undefined);
      const databaseName = process.env.FLINK_DATABASE ?? (configured.kafkaCluster.mode === 'create' ? configured.kafkaCluster.displayName : undefined);
      if (!catalogName || !databaseName) {
        throw new FlinkCheckConfigError(
          'This environment references an existing Confluent environment or cluster: set FLINK_CATALOG and FLINK_DATABASE to their display names.',
        );
      }
      target = { settings: settingsFromEnv(process.env), catalogName, databaseName };
    }
    const { settings } = target;
    const targets = targetsFor(environment.name, environment.production, environment.flink, target.catalogName, target.databaseName);
    console.log(`Dry-running ${targets.length} statements of ${environment.name} against ${settings.restEndpoint} …`);
    const pollIntervalMs = process.env.FLINK_CHECK_POLL_MS ? Number(process.env.FLINK_CHECK_POLL_MS) : undefined;
    const results = await runFlinkCheck(settings, targets, { pollIntervalMs });
    console.log(formatResultTable(results));
    const errors = results.filter((r) => r.verdict === 'error').length;
    const pending = results.filter((r) => r.verdict === 'needs-ddl').length;
    console.log(`${results.length - errors - pending} accepted, ${pending} accepted pending our own DDL, ${errors} rejected.`);
    return errors > 0 ? 1 : 0;
  } catch (error) {
    return reportError(error);
  }
}

if (require.main === module) {
  runMain(() => main(process.argv.slice(2)));
}
