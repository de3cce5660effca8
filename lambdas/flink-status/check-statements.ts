import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { describeCause, ConfigError, SecretError } from '../shared/errors';
import type { Observability } from '../shared/observability';

/** Service name of the function: its logs and the `service` dimension of its metrics. */
export const FLINK_STATUS_HANDLER = 'flink-status';

/** Metric names, shared with the alarms and the dashboard (constructs/aws/silence-alarms.ts). */
export const FLINK_STATUS_METRICS = {
  /** Per statement (dimension `statement`): 1 when RUNNING, 0 when Confluent reports anything else or it is missing. */
  running: 'FlinkStatementRunning',
  /** Statements that are not RUNNING in this check (only emitted when every statement could be checked). */
  notRunning: 'FlinkStatementsNotRunning',
} as const;

/** Where and as whom the Flink SQL REST API is called; the value of the status secret. */
export interface FlinkStatusSettings {
  /** Regional Flink REST endpoint, e.g. https://flink.ap-northeast-2.aws.confluent.cloud. */
  readonly restEndpoint: string;
  /** Confluent organization id. */
  readonly organizationId: string;
  /** Confluent environment id (`env-…`). */
  readonly environmentId: string;
  /** Flink API key with read access to the environment's statements. */
  readonly apiKey: string;
  /** Its secret. */
  readonly apiSecret: string;
}

/** Keys of the status secret's JSON, by setting. */
export const STATUS_SECRET_KEYS: Readonly<Record<keyof FlinkStatusSettings, string>> = {
  restEndpoint: 'rest_endpoint',
  organizationId: 'organization_id',
  environmentId: 'environment_id',
  apiKey: 'api_key',
  apiSecret: 'api_secret',
};

/** Parses the status secret, naming every missing key (never quoting a value). */
export function parseStatusSecret(secretArn: string, raw: string): FlinkStatusSettings {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw new SecretError(secretArn, `is not JSON; expected an object with ${Object.values(STATUS_SECRET_KEYS).join(', ')}`);
  }
  const missing = Object.values(STATUS_SECRET_KEYS).filter((key) => typeof record?.[key] !== 'string' || (record[key] as string).length === 0);
  if (missing.length > 0) throw new SecretError(secretArn, `lacks ${missing.join(', ')} (see docs/operations.md, "Flink status check")`);
  const read = (setting: keyof FlinkStatusSettings) => record[STATUS_SECRET_KEYS[setting]] as string;
  const restEndpoint = read('restEndpoint').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(restEndpoint))
    throw new SecretError(secretArn, 'has a rest_endpoint that is not a URL such as https://flink.ap-northeast-2.aws.confluent.cloud');
  return { restEndpoint, organizationId: read('organizationId'), environmentId: read('environmentId'), apiKey: read('apiKey'), apiSecret: read('apiSecret') };
}

/** Parses `FLINK_STATEMENTS`: the comma-separated names of the statements that must be RUNNING. */
export function parseStatementNames(raw: string | undefined): string[] {
  const names = (raw ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
  if (names.length === 0) throw new ConfigError('FLINK_STATEMENTS', 'is empty; it must name the Flink statements that should be RUNNING');
  return names;
}

/** What Confluent says about one statement. */
export interface StatementStatus {
  /** Statement name. */
  readonly statement: string;
  /** Confluent's phase (RUNNING, FAILED, DEGRADED, STOPPED, …), MISSING for a 404, UNKNOWN when it could not be asked. */
  readonly phase: string;
  /** Confluent's detail, or why the check failed. */
  readonly detail: string;
}

/** The `fetch` the check uses (tests pass the global one against a local server). */
export type Fetch = typeof fetch;

/** Asks the Flink SQL REST API for one statement's phase. Never throws. */
export async function statementStatus(
  settings: FlinkStatusSettings,
  statement: string,
  fetchImpl: Fetch = fetch,
  timeoutMs = 10_000,
): Promise<StatementStatus> {
  const path = `/sql/v1/organizations/${encodeURIComponent(settings.organizationId)}/environments/${encodeURIComponent(settings.environmentId)}/statements/${encodeURIComponent(statement)}`;
  const auth = Buffer.from(`${settings.apiKey}:${settings.apiSecret}`).toString('base64');
  try {
    const response = await fetchImpl(`${settings.restEndpoint}${path}`, {
      headers: { Authorization: `Basic ${auth}`, Accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status === 404) return { statement, phase: 'MISSING', detail: 'no such statement in the environment' };
    if (!response.ok) return { statement, phase: 'UNKNOWN', detail: `HTTP ${response.status} from the Flink REST API` };
    const body = (await response.json()) as { status?: { phase?: string; detail?: string } };
    return { statement, phase: body.status?.phase ?? 'UNKNOWN', detail: body.status?.detail ?? '' };
  } catch (error) {
    return { statement, phase: 'UNKNOWN', detail: `request to ${settings.restEndpoint} failed: ${describeCause(error)}` };
  }
}

/** What one check found. */
export interface FlinkStatusReport {
  /** One entry per expected statement, in the configured order. */
  readonly statements: readonly StatementStatus[];
  /** Statements whose phase is known and is not RUNNING. */
  readonly notRunning: number;
  /** Statements that could not be checked (API or credentials unavailable). */
  readonly unknown: number;
}

/** Dependencies of the handler. */
export interface FlinkStatusDeps {
  /** Statements that must be RUNNING. */
  readonly statements: readonly string[];
  /** Reads the API settings (from Secrets Manager in the deployed function). */
  readonly settings: () => Promise<FlinkStatusSettings>;
  /** Logger and metrics. */
  readonly observability: Observability;
  /** HTTP client. @default global fetch */
  readonly fetch?: Fetch;
}

/**
 * The scheduled check: asks Confluent for the phase of every statement that must be running
 * and reports it as metrics, 1/0 per statement and the count not running. A statement that
 * could not be checked gets no data point, so its alarm (missing data breaches) fires as
 * "could not check" rather than a false "running" or "failed". Never throws for a bad phase.
 */
export function createFlinkStatusHandler(deps: FlinkStatusDeps): () => Promise<FlinkStatusReport> {
  const { logger, metrics } = deps.observability;
  return async () => {
    let statements: StatementStatus[];
    try {
      const settings = await deps.settings();
      statements = await Promise.all(deps.statements.map((name) => statementStatus(settings, name, deps.fetch)));
    } catch (error) {
      statements = deps.statements.map((statement) => ({ statement, phase: 'UNKNOWN', detail: describeCause(error) }));
    }
    const known = statements.filter((s) => s.phase !== 'UNKNOWN');
    const notRunning = known.filter((s) => s.phase !== 'RUNNING').length;
    const report: FlinkStatusReport = { statements, notRunning, unknown: statements.length - known.length };
    try {
      for (const s of known) {
        const single = metrics.singleMetric();
        single.addDimension('statement', s.statement);
        single.addMetric(FLINK_STATUS_METRICS.running, MetricUnit.Count, s.phase === 'RUNNING' ? 1 : 0);
      }
      if (report.unknown === 0) {
        metrics.addMetric(FLINK_STATUS_METRICS.notRunning, MetricUnit.Count, notRunning);
        metrics.publishStoredMetrics();
      }
    } catch (error) {
      logger.warn('could not emit metrics', { error: describeCause(error) });
    }
    const line = {
      statements: statements.map((s) => ({ statement: s.statement, phase: s.phase, ...(s.phase === 'RUNNING' ? {} : { detail: s.detail.slice(0, 500) }) })),
    };
    if (report.unknown > 0) logger.error('could not check every Flink statement', line);
    else if (notRunning > 0) logger.error('Flink statements not RUNNING', line);
    else logger.info('every Flink statement is RUNNING', line);
    return report;
  };
}
