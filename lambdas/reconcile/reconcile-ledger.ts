import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Pool, PoolClient } from 'pg';
import type { PoolProvider } from '../shared/db';
import { describeCause } from '../shared/errors';
import type { Observability } from '../shared/observability';

/** Service name of the function: its logs and the `service` dimension of its metrics. */
export const RECONCILE_HANDLER = 'reconcile';

/** Metric names, shared with the alarm (constructs/aws/reconciliation.ts). */
export const RECONCILE_METRICS = {
  /** Offending rows over every check; emitted only when every check ran (missing data breaches). */
  drift: 'ReconciliationDrift',
  /** How long a run that completed took, in seconds (the slow alarm warns before runs outlast the function). */
  seconds: 'ReconciliationSeconds',
} as const;

/** Offending ids logged per check at most (the count is always complete). */
export const MAX_LOGGED_IDS = 50;

/** Default grace before an unpublished outbox row counts as drift. */
export const OUTBOX_GRACE_MINUTES = 15;

/** The checks, by name; each query returns the offending rows (empty when the ledger reconciles). */
export const RECONCILE_CHECKS = {
  /**
   * Per advertiser: balance = Σ signed ledger (DEDUCT −; REFUND, TOPUP +; ADJUSTMENT signed, the
   * opening balance included), the days expired from the ledger by their recorded nets.
   */
  balance: `
    WITH ledger AS (
      SELECT advertiser_id, sum(net) AS net FROM (
        SELECT advertiser_id, CASE WHEN type = 'DEDUCT' THEN -amount ELSE amount END AS net FROM ad_balance_histories
        UNION ALL
        SELECT advertiser_id, balance_net FROM ledger_expired_totals
      ) entries GROUP BY advertiser_id
    )
    SELECT coalesce(a.advertiser_id, l.advertiser_id)::text AS id, a.balance::text AS balance, coalesce(l.net, 0)::text AS ledger
      FROM advertisers a FULL JOIN ledger l ON l.advertiser_id = a.advertiser_id
     WHERE a.balance IS DISTINCT FROM coalesce(l.net, 0)
     ORDER BY 1`,
  /** Per campaign and budget day: spend = Σ charges − Σ refunds (of an expired day: its recorded net). */
  spend: `
    WITH ledger AS (
      SELECT campaign_id, spend_date, sum(net) AS net FROM (
        SELECT campaign_id, spend_date, CASE WHEN type = 'DEDUCT' THEN amount ELSE -amount END AS net
          FROM ad_balance_histories WHERE type IN ('DEDUCT', 'REFUND')
        UNION ALL
        SELECT campaign_id, spend_date, spend_net FROM ledger_expired_totals WHERE campaign_id IS NOT NULL
      ) entries GROUP BY campaign_id, spend_date
    )
    SELECT coalesce(s.campaign_id, l.campaign_id)::text || '/' || coalesce(s.spend_date, l.spend_date)::text AS id,
           coalesce(s.spend, 0)::text AS spend, coalesce(l.net, 0)::text AS ledger
      FROM campaign_daily_spend s FULL JOIN ledger l ON l.campaign_id = s.campaign_id AND l.spend_date = s.spend_date
     WHERE coalesce(s.spend, 0) <> coalesce(l.net, 0)
     ORDER BY 1`,
  /** No click both charged and voided (a void means the click must never be charged). */
  chargedAndVoided: `
    SELECT DISTINCT v.event_id AS id
      FROM click_voids v
      JOIN ad_balance_histories h ON h.event_id = v.event_id AND h.type = 'DEDUCT'
                                 AND h.advertiser_id = v.advertiser_id AND h.campaign_id = v.campaign_id
     ORDER BY 1`,
  /**
   * Each click charged at most once: the ledger's key holds the budget day, so a copy of a click
   * dated two or more days away is charged again (lambdas/README.md, the known gap), balance and
   * spend moved consistently; only its event id shows it.
   */
  chargedTwice: `
    WITH twice AS MATERIALIZED (
      -- Read off each day's unique index (event_id, type, spend_date) in event_id order, merged,
      -- and counted as it streams (RECONCILE_CHECK_SETTINGS): no hash or sort of every charge.
      SELECT event_id FROM ad_balance_histories WHERE type = 'DEDUCT'
       GROUP BY event_id HAVING count(*) > 1
    )
    -- The few ids found: their charges looked up by key (LATERAL), not by reading the ledger again.
    SELECT t.event_id AS id, h.advertiser_id, h.campaign_id, h.charges, h.amount
      FROM twice t
     CROSS JOIN LATERAL (
       SELECT min(d.advertiser_id)::text AS advertiser_id, min(d.campaign_id)::text AS campaign_id,
              count(*)::text AS charges, sum(d.amount)::text AS amount
         FROM ad_balance_histories d WHERE d.event_id = t.event_id AND d.type = 'DEDUCT'
     ) h
     ORDER BY 1`,
  /** Each refund returns a charge of the same click, advertiser, campaign and day, and not more than it. */
  refundedNotCharged: `
    SELECT r.event_id AS id, r.advertiser_id::text AS advertiser_id, r.campaign_id::text AS campaign_id,
           r.spend_date::text AS spend_date, r.amount::text AS amount
      FROM ad_balance_histories r
      LEFT JOIN ad_balance_histories d ON d.event_id = r.event_id AND d.type = 'DEDUCT' AND d.spend_date = r.spend_date
                                      AND d.advertiser_id = r.advertiser_id AND d.campaign_id = r.campaign_id
     WHERE r.type = 'REFUND' AND (d.amount IS NULL OR r.amount > d.amount)
     ORDER BY 1, r.spend_date`,
  /** Each duplicate refunded at most once, in the ledger and in the duplicate log. */
  refundedTwice: `
    SELECT id FROM (
      SELECT event_id AS id FROM ad_balance_histories WHERE type = 'REFUND' GROUP BY event_id HAVING count(*) > 1
      UNION
      SELECT duplicate_event_id FROM duplicate_clicks WHERE outcome IN ('REFUNDED', 'VOIDED')
       GROUP BY duplicate_event_id, advertiser_id, campaign_id HAVING count(*) > 1
    ) t ORDER BY 1`,
  /** No original of a refunded (or voided) duplicate refunded or voided too: the group would keep no charge. */
  originalRefunded: `
    SELECT DISTINCT d.original_event_id AS id
      FROM duplicate_clicks d
     WHERE d.outcome IN ('REFUNDED', 'VOIDED')
       AND (EXISTS (SELECT 1 FROM ad_balance_histories h
                     WHERE h.event_id = d.original_event_id AND h.type = 'REFUND'
                       AND h.advertiser_id = d.advertiser_id AND h.campaign_id = d.campaign_id)
            OR EXISTS (SELECT 1 FROM click_voids v
                        WHERE v.event_id = d.original_event_id AND v.advertiser_id = d.advertiser_id AND v.campaign_id = d.campaign_id)
            OR EXISTS (SELECT 1 FROM duplicate_clicks o
                        WHERE o.duplicate_event_id = d.original_event_id AND o.advertiser_id = d.advertiser_id
                          AND o.campaign_id = d.campaign_id AND o.outcome IN ('REFUNDED', 'VOIDED')))
     ORDER BY 1`,
  /** Every outbox row published once its grace period is over ($1: grace in minutes). */
  outboxUnpublished: `
    SELECT id::text AS id, kind, created_at::text AS created_at, last_error
      FROM outbox WHERE published_at IS NULL AND created_at < now() - make_interval(mins => $1::int)
     ORDER BY outbox.id`,
} as const;

/** Name of one check. */
export type ReconcileCheck = keyof typeof RECONCILE_CHECKS;

/**
 * Planner settings a check runs under (set for that check only, inside the run's transaction).
 * `chargedTwice` groups every DEDUCT by event id: hashed, the groups of a large ledger spill to
 * disk (55 s for 10 million rows on the development machine, over the workers' 30 s statement
 * timeout at about 5 million); merged from the per-day indexes they stream (5.7 s).
 */
export const RECONCILE_CHECK_SETTINGS: Partial<Record<ReconcileCheck, Readonly<Record<string, string>>>> = {
  chargedTwice: { enable_hashagg: 'off', enable_sort: 'off' },
};

/**
 * The reconciliation's pool settings: its checks read the whole ledger, so a statement may take
 * longer than a worker's (30 s) but not longer than the function (300 s, RECONCILE_SIZING).
 */
export const RECONCILE_POOL_OVERRIDES = { statement_timeout: 240_000, query_timeout: 250_000 } as const;

/** One check's outcome. */
export interface CheckResult {
  /** Offending rows. */
  readonly count: number;
  /** Their ids (at most MAX_LOGGED_IDS): advertiser, `campaign/day`, event id or outbox id. */
  readonly ids: string[];
  /** The first offending rows with their amounts, for the log. */
  readonly rows: Record<string, string | null>[];
  /** How long the check's query took: how close the ledger is to the statement timeout. */
  readonly durationMs: number;
}

/** A reconciliation run. */
export interface ReconcileReport {
  /** Sum of offending rows over every check: 0 when the ledger reconciles. */
  readonly drift: number;
  readonly checks: Record<ReconcileCheck, CheckResult>;
}

/** Options of {@link reconcileLedger}. */
export interface ReconcileOptions {
  /** Minutes an outbox row may stay unpublished. @default OUTBOX_GRACE_MINUTES */
  readonly outboxGraceMinutes?: number;
}

/**
 * Runs every check in one REPEATABLE READ READ ONLY transaction, so balances, ledger and spend
 * are compared in one snapshot (a charge committing meanwhile is seen entirely or not at all).
 */
export async function reconcileLedger(pool: Pool, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const checks = {} as Record<ReconcileCheck, CheckResult>;
    let drift = 0;
    for (const [name, sql] of Object.entries(RECONCILE_CHECKS) as [ReconcileCheck, string][]) {
      const params = name === 'outboxUnpublished' ? [options.outboxGraceMinutes ?? OUTBOX_GRACE_MINUTES] : [];
      const settings = Object.entries(RECONCILE_CHECK_SETTINGS[name] ?? {});
      const previous = await applySettings(client, settings);
      const started = performance.now();
      const result = await client.query<Record<string, string | null>>(sql, params);
      const durationMs = Math.round(performance.now() - started);
      await applySettings(client, previous);
      const rows = result.rows.slice(0, MAX_LOGGED_IDS);
      checks[name] = { count: result.rowCount ?? 0, ids: rows.map((row) => String(row.id)), rows, durationMs };
      drift += result.rowCount ?? 0;
    }
    await client.query('COMMIT');
    return { drift, checks };
  } catch (error) {
    await client.query('ROLLBACK').catch((rollbackError: Error) => {
      broken = rollbackError;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

/** Sets each setting for the rest of the transaction; returns the values it replaced. */
async function applySettings(client: PoolClient, settings: ReadonlyArray<readonly [string, string]>): Promise<Array<[string, string]>> {
  const previous: Array<[string, string]> = [];
  for (const [name, value] of settings) {
    const { rows } = await client.query<{ old: string }>('SELECT current_setting($1) AS old, set_config($1, $2, true)', [name, value]);
    previous.push([name, rows[0].old]);
  }
  return previous;
}

/** Dependencies of the scheduled reconciliation. */
export interface ReconcileHandlerDeps {
  readonly pool: PoolProvider;
  readonly observability: Observability;
  readonly options?: ReconcileOptions;
}

/**
 * The scheduled function: runs the checks, logs one line (an ERROR naming every offending id
 * when anything drifted) and emits `ReconciliationDrift`. When the checks cannot run it emits
 * nothing and throws, so the alarm's missing data breaches.
 */
export function createReconcileHandler(deps: ReconcileHandlerDeps): (event?: unknown) => Promise<ReconcileReport> {
  return async () => {
    const { logger, metrics } = deps.observability;
    let report: ReconcileReport;
    const started = performance.now();
    try {
      report = await reconcileLedger(await deps.pool(), deps.options);
    } catch (error) {
      logger.error('reconciliation could not run', { error: describeCause(error) });
      throw error;
    }
    const counts = Object.fromEntries(Object.entries(report.checks).map(([name, check]) => [name, check.count]));
    const durationsMs = Object.fromEntries(Object.entries(report.checks).map(([name, check]) => [name, check.durationMs]));
    if (report.drift > 0) {
      const offending = Object.fromEntries(
        Object.entries(report.checks)
          .filter(([, check]) => check.count > 0)
          .map(([name, check]) => [name, { count: check.count, rows: check.rows }]),
      );
      logger.error('ledger does not reconcile', { drift: report.drift, counts, offending, durationsMs });
    } else {
      logger.info('ledger reconciles', { drift: 0, counts, durationsMs });
    }
    metrics.addMetric(RECONCILE_METRICS.drift, MetricUnit.Count, report.drift);
    metrics.addMetric(RECONCILE_METRICS.seconds, MetricUnit.Seconds, Number(((performance.now() - started) / 1000).toFixed(1)));
    metrics.publishStoredMetrics();
    return report;
  };
}
