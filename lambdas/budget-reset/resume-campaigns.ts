import { budgetDayOf, isCalendarDay } from '../shared/budget-day';
import { withTransaction } from '../shared/db';
import { BudgetResetRequestError } from '../shared/errors';
import { emptySummary, InvocationSummary, instrumentInvocation, SummaryCounter } from '../shared/observability';
import { campaignStatusOutboxColumns } from '../shared/outbox';
import { publishAfterCommit, watchCache, WorkerDeps } from '../shared/runtime';
import { DEFAULT_LEDGER_HISTORY, HISTORY_TABLES, HistoryAction, LedgerHistory, LOCK_NOT_AVAILABLE, MAINTAIN_HISTORY } from './ledger-history';

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

/** Metrics budget-reset emits after each run (it charges nothing: no click counters). */
export const BUDGET_RESET_METRICS: readonly SummaryCounter[] = ['outboxPublished', 'cacheFailures'];

/** What a reset did, on top of the usual summary. */
export interface BudgetResetSummary extends InvocationSummary {
  /** The budget day that was opened. */
  budgetDay: string;
  /** Campaigns resumed. */
  resumed: number;
  /** ACTIVE campaigns paused because their spend on the current budget day already reached the budget. */
  paused: number;
  /** True when an earlier run had opened the current budget day (or a later one) already: nothing was changed. */
  alreadyOpened: boolean;
  /** Daily history partitions created ahead, and expired ones detached or dropped (config `database.history`). */
  partitionsCreated: number;
  partitionsExpired: number;
  /**
   * Expired outbox or dead-letter days kept because they still hold a row not published or not
   * re-driven (logged by name as a warning; expired on a later run once that is done).
   */
  partitionsKeptPending: number;
  /**
   * History tables whose upkeep gave up waiting for a lock (a long reader held the table): logged
   * by name as a warning; the next hourly run keeps them.
   */
  partitionTablesPostponed: number;
}

/**
 * Locks, in id order, the advertisers of every campaign the reset may change: the order
 * click-balance and compensation use, so a batch charging one of them either committed before
 * the next statement's snapshot (its spend is seen) or waits for the reset to commit (and then
 * sees the resumed campaign and enforces its budget itself).
 */
const LOCK_ADVERTISERS = `
SELECT advertiser_id FROM advertisers
 WHERE advertiser_id IN (
   SELECT c.advertiser_id FROM campaigns c
    WHERE (c.status = 'PAUSED' AND c.paused_reason = 'BUDGET_EXHAUSTED')
       OR (c.status = 'ACTIVE' AND c.daily_budget IS NOT NULL
           AND EXISTS (SELECT 1 FROM campaign_daily_spend s
                        WHERE s.campaign_id = c.campaign_id AND s.spend_date = $1::date AND s.spend >= c.daily_budget)))
 ORDER BY advertiser_id
 FOR UPDATE`;

/**
 * Opens the current budget day once (migration 1765000000000): false when it or a later day was
 * opened already, and the reset then changes nothing. Taken after the advertiser locks; it waits
 * for the charges under way, and charges starting later wait for the reset, then count the
 * opened day as theirs even when their clock still reads the old one.
 */
const OPEN_BUDGET_DAY = `SELECT adstream_open_budget_day($1::date) AS opened`;

/**
 * True while no reset has ever recorded a day: a new database, or one just upgraded from the
 * daily schedule (before migration 1765000000000 a reset ran once a day, at midnight, and kept
 * no record of the days it opened). Read before OPEN_BUDGET_DAY, in the same transaction.
 */
const NEVER_OPENED = `SELECT NOT EXISTS (SELECT 1 FROM budget_days_opened) AS never`;

/**
 * Warning and exhaustion state is kept per (campaign, budget day) in campaign_daily_spend, so the
 * new day starts with none: opening it needs no deletes.
 *
 * Resumes the campaigns paused for BUDGET_EXHAUSTED unless their spend on the current budget day
 * ($1) has already reached their current budget (clicks of the new day may be charged before
 * the schedule fires; a late or manual run for another day must not resume a campaign exhausted
 * today). Pauses ACTIVE campaigns whose spend on the current day already reached the budget
 * (clicks dated ahead by ad-server clock skew). A campaign paused for any other reason stays
 * paused. Runs once per current budget day (OPEN_BUDGET_DAY); each change bumps status_seq,
 * which keys its outbox row. $2 is the day opened, named in the announcements.
 */
const RESET_CAMPAIGNS = `
WITH today_spend AS (
  SELECT c.campaign_id, c.status, c.daily_budget,
         COALESCE((SELECT s.spend FROM campaign_daily_spend s
                    WHERE s.campaign_id = c.campaign_id AND s.spend_date = $1::date), 0) AS spend
    FROM campaigns c
   WHERE (c.status = 'PAUSED' AND c.paused_reason = 'BUDGET_EXHAUSTED') OR c.status = 'ACTIVE'
),
resumed AS (
  UPDATE campaigns c
     SET status = 'ACTIVE', paused_reason = NULL, status_seq = c.status_seq + 1, updated_at = now()
    FROM today_spend t
   WHERE t.campaign_id = c.campaign_id AND c.status = 'PAUSED' AND c.paused_reason = 'BUDGET_EXHAUSTED'
     AND (c.daily_budget IS NULL OR t.spend < c.daily_budget)
  RETURNING c.campaign_id, c.advertiser_id, c.product_id, c.placement, c.category, c.bid_price, c.status_seq
),
paused AS (
  UPDATE campaigns c
     SET status = 'PAUSED', paused_reason = 'BUDGET_EXHAUSTED', status_seq = c.status_seq + 1, updated_at = now()
    FROM today_spend t
   WHERE t.campaign_id = c.campaign_id AND c.status = 'ACTIVE'
     AND c.daily_budget IS NOT NULL AND t.spend >= c.daily_budget
  RETURNING c.campaign_id, c.advertiser_id, c.product_id, c.placement, c.category, c.bid_price, c.status_seq
),
announced AS (
  -- Each row in the partition of the day its key names, as the charge function writes them.
  INSERT INTO outbox (kind, idempotency_key, payload, spend_date)
  SELECT a.kind, a.idempotency_key, a.payload, adstream_outbox_key_day(a.idempotency_key) FROM (
    SELECT ${campaignStatusOutboxColumns('CAMPAIGN_RESUMED', 'r', '$2::date')}
      FROM resumed r
    UNION ALL
    SELECT ${campaignStatusOutboxColumns('CAMPAIGN_PAUSED', 'p', '$1::date')}
      FROM paused p
  ) AS a (kind, idempotency_key, payload)
  ON CONFLICT ON CONSTRAINT outbox_idempotency_key_key DO NOTHING
  RETURNING id
)
SELECT (SELECT count(*) FROM resumed)::int AS resumed,
       (SELECT count(*) FROM paused)::int AS paused,
       (SELECT count(*) FROM announced)::int AS announced`;

/**
 * A schedule that fires this little before midnight by the Lambda's clock (clock skew between
 * Scheduler and Lambda) still opens the new day: the new day counts as begun.
 */
export const SCHEDULE_CLOCK_SKEW_MS = 60_000;

const HOUR_MS = 3_600_000;

/** What a reset works on: the day it opens and the current budget day it checks spend against. */
export interface ResetDays {
  /** The day opened (named in the announcements). */
  readonly budgetDay: string;
  /** The current budget day: resumes and pauses are decided from the spend of this day. */
  readonly currentDay: string;
  /**
   * True for a scheduled run (`scheduled_time` or `time`) an hour or more into its budget day:
   * not a manual run (`budget_day`, or an empty event), not the run that opens the day. On a
   * database that never recorded an opened day it takes the day as opened by the daily schedule
   * it replaces, and changes no campaign.
   */
  readonly pastFirstHour: boolean;
}

/**
 * The days of a reset. The day opened is an explicit `budget_day` (manual runs), else the
 * calendar day, in the budget zone, of when it was scheduled (`scheduled_time`, or an
 * EventBridge `time`), else of now. Throws `BudgetResetRequestError` for a malformed or
 * impossible day (2026-02-30), a malformed time, or a day after the current budget day (a
 * reset cannot open a day that has not begun; the retry runs it once it has) — except a
 * scheduled time at most `SCHEDULE_CLOCK_SKEW_MS` ahead of the clock, whose day counts as begun.
 */
export function resetDays(event: BudgetResetEvent | null | undefined, timeZone: string, now: number): ResetDays {
  let currentDay = budgetDayOf(now, timeZone);
  let budgetDay: string;
  let pastFirstHour = false;
  if (event?.budget_day !== undefined) {
    if (typeof event.budget_day !== 'string' || !isCalendarDay(event.budget_day)) {
      throw new BudgetResetRequestError(`budget_day must be an existing day as YYYY-MM-DD, got ${JSON.stringify(event.budget_day).slice(0, 40)}`);
    }
    budgetDay = event.budget_day;
  } else {
    const stamp = event?.scheduled_time ?? event?.time;
    let at = now;
    if (stamp !== undefined) {
      at = typeof stamp === 'string' ? Date.parse(stamp) : Number.NaN;
      if (Number.isNaN(at)) throw new BudgetResetRequestError(`scheduled_time must be an ISO-8601 time, got ${JSON.stringify(stamp).slice(0, 60)}`);
    }
    budgetDay = budgetDayOf(at, timeZone);
    pastFirstHour = stamp !== undefined && budgetDayOf(at - HOUR_MS, timeZone) === budgetDay;
    if (budgetDay > currentDay && at - now <= SCHEDULE_CLOCK_SKEW_MS) currentDay = budgetDay;
  }
  if (budgetDay > currentDay) {
    throw new BudgetResetRequestError(`budget day ${budgetDay} has not begun in ${timeZone} (the current budget day is ${currentDay}); nothing was reset`);
  }
  return { budgetDay, currentDay, pastFirstHour };
}

/** The budget day a reset opens (see `resetDays`). */
export function budgetDayToOpen(event: BudgetResetEvent | null | undefined, timeZone: string, now: number): string {
  return resetDays(event, timeZone, now).budgetDay;
}

/**
 * Builds the budget-reset handler, scheduled every hour of the budget zone (the run at local
 * midnight opens the day, a later one only if that was missed). After the
 * reset commits it keeps the daily partitions of the history tables: `history.aheadDays` days
 * created ahead, days older than `history.retentionDays` detached or dropped, except an outbox or
 * dead-letter day still holding work, or a ledger, void or duplicate-log day written into within
 * the retention (a late click's charge, which a replay must still find), counted in
 * `partitionsKeptPending` and logged.
 */
export function createBudgetResetHandler(deps: WorkerDeps, history: LedgerHistory = DEFAULT_LEDGER_HISTORY): (event: unknown) => Promise<BudgetResetSummary> {
  return async (event) => {
    const now = deps.now?.() ?? Date.now();
    const summary: BudgetResetSummary = {
      ...emptySummary(BUDGET_RESET_HANDLER, BUDGET_RESET_METRICS),
      budgetDay: '',
      resumed: 0,
      paused: 0,
      alreadyOpened: false,
      partitionsCreated: 0,
      partitionsExpired: 0,
      partitionsKeptPending: 0,
      partitionTablesPostponed: 0,
    };
    watchCache(deps, summary);
    return instrumentInvocation(deps.observability, summary, 'budget reset failed; nothing applied, the next run retries', async () => {
      const { budgetDay, currentDay: today, pastFirstHour } = resetDays(event as BudgetResetEvent, deps.budgetTimeZone, now);
      summary.budgetDay = budgetDay;
      let adopted = false;
      const { result, roundTrips } = await withTransaction(deps.pool, 'resuming budget-paused campaigns', async (client) => {
        await client.query(LOCK_ADVERTISERS, [today]);
        const never = pastFirstHour && (await client.query<{ never: boolean }>(NEVER_OPENED)).rows[0].never;
        const opened = await client.query<{ opened: boolean }>(OPEN_BUDGET_DAY, [today]);
        if (!opened.rows[0].opened) return undefined;
        // The daily schedule opened this day at midnight: resuming now would resume a campaign
        // paused today and refunded under its budget (a second reset of the day, which never
        // resumes one). The day is recorded as opened; the next midnight opens the next one.
        adopted = never;
        if (adopted) return undefined;
        const rows = await client.query<{ resumed: number; paused: number; announced: number }>(RESET_CAMPAIGNS, [today, summary.budgetDay]);
        return rows.rows[0];
      });
      if (adopted) {
        summary.alreadyOpened = true;
        deps.observability.logger.warn(
          'no budget day was ever recorded (first hourly run after the daily schedule): the current day is taken as opened by that schedule at midnight; no campaign changed',
          { budgetDay, currentDay: today },
        );
      } else if (result === undefined) {
        summary.alreadyOpened = true;
        deps.observability.logger.info('budget day already opened by an earlier run; no campaign changed', { budgetDay, currentDay: today });
      }
      summary.dbRoundTrips = roundTrips;
      summary.resumed = result?.resumed ?? 0;
      summary.paused = result?.paused ?? 0;
      summary.outboxWritten = result?.announced ?? 0;
      await publishAfterCommit(deps, summary);
      const kept: HistoryAction[] = [];
      const postponed: string[] = [];
      const pool = await deps.pool();
      for (const table of HISTORY_TABLES) {
        try {
          const done = await pool.query<HistoryAction>(MAINTAIN_HISTORY, [today, history.aheadDays, history.retentionDays, history.expired, table]);
          kept.push(...done.rows);
        } catch (error) {
          if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw error;
          postponed.push(table);
        } finally {
          summary.dbRoundTrips += 1;
        }
      }
      summary.partitionTablesPostponed = postponed.length;
      if (postponed.length > 0) {
        deps.observability.logger.warn('partition upkeep postponed to the next run: a lock on these tables was not free within 2 s (a long reader holds it)', {
          tables: postponed,
        });
      }
      summary.partitionsCreated = kept.filter((r) => r.action === 'created').length;
      summary.partitionsExpired = kept.filter((r) => r.action === 'detached' || r.action === 'dropped').length;
      const pending = kept.filter((r) => r.action === 'kept-pending').map((r) => r.partition_name);
      summary.partitionsKeptPending = pending.length;
      if (pending.length > 0) {
        deps.observability.logger.warn(
          'expired history days kept: they hold outbox rows not published, dead letters not re-driven, or rows written within the retention',
          {
            partitions: pending,
          },
        );
      }
    });
  };
}
