import { withTransaction } from '../shared/db';
import { emptySummary, InvocationSummary, instrumentInvocation } from '../shared/observability';
import { campaignStatusOutboxColumns } from '../shared/outbox';
import { publishAfterCommit, watchCache, WorkerDeps } from '../shared/runtime';

/** Name of the handler in logs and metrics. */
export const BUDGET_RESET_HANDLER = 'budget-reset';

/**
 * The scheduled event. EventBridge Scheduler passes the schedule's `input`; the stack sets it to
 * `{"scheduled_time": "<aws.scheduler.scheduled-time>"}`. An EventBridge rule event's `time`
 * works too, and operators may name the day to reset explicitly.
 */
export interface BudgetResetEvent {
  /** ISO time the schedule fired for (Scheduler context attribute). */
  readonly scheduled_time?: string;
  /** ISO time of an EventBridge rule event. */
  readonly time?: string;
  /** Budget day to open, `YYYY-MM-DD` (manual runs). */
  readonly budget_day?: string;
}

/** What a reset did, on top of the usual summary. */
export interface BudgetResetSummary extends InvocationSummary {
  /** The budget day that was opened. */
  budgetDay: string;
  /** Campaigns resumed. */
  resumed: number;
}

/**
 * Warning and exhaustion state is kept per (campaign, budget day) in campaign_daily_spend, so the
 * new day starts with none: opening it needs no deletes.
 *
 * Resumes the campaigns paused for BUDGET_EXHAUSTED, unless they have already exhausted the new
 * day too (clicks of the new day may be charged before the schedule fires). A campaign paused
 * for any other reason stays paused. Idempotent: a resumed campaign is ACTIVE, so a second run
 * finds nothing, and the outbox key is unique per campaign and day.
 */
const RESUME_CAMPAIGNS = `
WITH resumed AS (
  UPDATE campaigns c
     SET status = 'ACTIVE', paused_reason = NULL, updated_at = now()
   WHERE c.status = 'PAUSED' AND c.paused_reason = 'BUDGET_EXHAUSTED'
     AND NOT EXISTS (SELECT 1 FROM campaign_daily_spend s
                      WHERE s.campaign_id = c.campaign_id AND s.spend_date = $1::date AND s.exhausted_at IS NOT NULL)
  RETURNING c.campaign_id, c.advertiser_id, c.product_id, c.placement, c.category, c.bid_price
),
announced AS (
  INSERT INTO outbox (kind, idempotency_key, payload)
  SELECT ${campaignStatusOutboxColumns('CAMPAIGN_RESUMED', 'r', '$1::date')}
    FROM resumed r
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id
)
SELECT (SELECT count(*) FROM resumed)::int AS resumed,
       (SELECT count(*) FROM announced)::int AS announced,
       (SELECT coalesce(json_agg(campaign_id), '[]'::json) FROM resumed) AS campaign_ids`;

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The budget day a reset opens: the calendar day, in the budget zone, of when it was scheduled. */
export function budgetDayToOpen(event: BudgetResetEvent | null | undefined, timeZone: string, now: number): string {
  if (event?.budget_day !== undefined) {
    if (!DAY.test(event.budget_day) || Number.isNaN(Date.parse(`${event.budget_day}T00:00:00Z`))) {
      throw new TypeError(`budget_day must be YYYY-MM-DD, got ${JSON.stringify(event.budget_day).slice(0, 40)}`);
    }
    return event.budget_day;
  }
  const stamp = event?.scheduled_time ?? event?.time;
  let at = now;
  if (stamp !== undefined) {
    at = Date.parse(stamp);
    if (Number.isNaN(at)) throw new TypeError(`scheduled_time must be an ISO-8601 time, got ${JSON.stringify(stamp).slice(0, 60)}`);
  }
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);
}

/** Builds the budget-reset handler, scheduled at local midnight of the budget zone. */
export function createBudgetResetHandler(deps: WorkerDeps): (event: unknown) => Promise<BudgetResetSummary> {
  return async (event) => {
    const now = deps.now?.() ?? Date.now();
    const summary: BudgetResetSummary = { ...emptySummary(BUDGET_RESET_HANDLER), budgetDay: '', resumed: 0 };
    watchCache(deps, summary);
    return instrumentInvocation(deps.observability, summary, 'budget reset failed; nothing applied, the next run retries', async () => {
      summary.budgetDay = budgetDayToOpen(event as BudgetResetEvent, deps.budgetTimeZone, now);
      const { result, roundTrips } = await withTransaction(deps.pool, 'resuming budget-paused campaigns', async (client) => {
        const rows = await client.query<{ resumed: number; announced: number; campaign_ids: number[] }>(RESUME_CAMPAIGNS, [summary.budgetDay]);
        return rows.rows[0];
      });
      summary.dbRoundTrips = roundTrips;
      summary.resumed = result.resumed;
      summary.outboxWritten = result.announced;
      await publishAfterCommit(deps, summary);
    });
  };
}
