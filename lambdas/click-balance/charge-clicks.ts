import { AdEvent, adEventContract } from '../../contracts';
import { budgetDayOf } from '../shared/budget-day';
import { DeadLetter, deadLetterFor, recordDeadLetters } from '../shared/dead-letter';
import { TransactionClient, withTransaction } from '../shared/db';
import { KafkaRecordError } from '../shared/errors';
import { decodeKafkaEvent } from '../shared/kafka-event';
import { checkClickAmount, isClickPrice } from '../shared/money';
import { emptySummary, InvocationSummary, instrumentInvocation, SummaryCounter } from '../shared/observability';
import { campaignStatusOutboxColumns } from '../shared/outbox';
import { AcceptedRecord, checkEventTime, parseContractRecord, sortBatch } from '../shared/records';
import { CacheEntry } from '../shared/redis';
import { publishAfterCommit, watchCache, WorkerDeps } from '../shared/runtime';

/** Name of the handler in logs, metrics and `dead_letters.handler`. */
export const CLICK_BALANCE_HANDLER = 'click-balance';

/** Metrics click-balance emits after each invocation. */
export const CLICK_BALANCE_METRICS: readonly SummaryCounter[] = ['records', 'charged', 'skipped', 'deadLettered', 'voided', 'outboxPublished', 'cacheFailures'];

/** Budget and spend mirrors outlive their budget day by a day. */
const MIRROR_TTL_SECONDS = 2 * 24 * 60 * 60;

/** Optional fields of a click that no amount depends on: a malformed one is dropped, the click charged. */
const INFORMATIONAL_FIELDS = ['session_id', 'user_id', 'actual_price', 'revenue_amount'] as const;

/** Redis key of a campaign's daily budget (mirror of `campaigns.daily_budget`, for readers such as the ad server). */
export const dailyBudgetKey = (campaignId: number | string): string => `daily_budget:${campaignId}`;
/** Redis key of a campaign's spend on one budget day (mirror of `campaign_daily_spend.spend`). */
export const dailySpendKey = (campaignId: number | string, day: string): string => `daily_spend:${campaignId}:${day}`;

type Click = AcceptedRecord<AdEvent>;

interface CampaignRow {
  campaign_id: string;
  advertiser_id: string;
  cpc: string | null;
  daily_budget: string | null;
}

/** A click that was neither charged nor voided although no DEDUCT of the same click was visible. */
interface Unaccounted {
  event_id: string;
  /** Advertiser and campaign of the DEDUCT already holding the event id, if the statement saw it. */
  charged_advertiser_id: string | null;
  charged_campaign_id: string | null;
}

interface ChargeResult {
  charged: number;
  /** Sum of the inserted DEDUCT amounts (NUMERIC text). */
  charged_amount: string;
  voided: number;
  outbox_written: number;
  spend: Array<{ campaign_id: number; spend_date: string; spend: string; daily_budget: string | null }>;
  unaccounted: Unaccounted[];
}

/**
 * Locks the advertisers that will be charged, in id order, before anything else is read: every
 * writer of an advertiser's money (this handler, compensations, budget-reset) takes the same
 * locks in the same order, and the next statement's snapshot sees every committed charge,
 * refund and void for those clicks. The price is the database's; beyond 6 fraction digits its
 * trailing zeros are trimmed (`100.0000000` is 100).
 */
const LOCK_AND_LOAD_CAMPAIGNS = `
WITH locked AS (
  SELECT advertiser_id FROM advertisers
   WHERE advertiser_id IN (SELECT advertiser_id FROM campaigns WHERE campaign_id = ANY($1::bigint[]))
   ORDER BY advertiser_id
   FOR UPDATE
)
SELECT c.campaign_id, c.advertiser_id, (CASE WHEN scale(c.cpc) > 6 THEN trim_scale(c.cpc) ELSE c.cpc END)::text AS cpc, c.daily_budget::text AS daily_budget
  FROM campaigns c
 WHERE c.campaign_id = ANY($1::bigint[])
   -- Referencing the CTE makes it run, locking in id order, before this row set is returned.
   AND (SELECT count(*) FROM locked) >= 0`;

/**
 * The whole charge in one statement, set-based so its cost does not grow in round trips with
 * the batch: DEDUCT rows keyed by event_id (a replay inserts nothing), inserted in event_id
 * order (so two batches racing for the same ids wait on each other in one order and cannot
 * deadlock), voided clicks skipped (a void applies only to the click of its advertiser and
 * campaign), balances decreased by exactly the inserted amounts, day spend upserted, the 90 %
 * warning evaluated once per budget it is reached for, every campaign of the batch whose spend
 * on the current budget day has reached its budget paused if it is ACTIVE, outbox rows written.
 */
const CHARGE_CLICKS = `
WITH input AS (
  -- $7 is the current budget day (of the handler's clock). Thresholds and pauses are decided
  -- for this day only: a late click of yesterday never pauses today, and a click dated
  -- tomorrow (ad-server clock skew) counts for tomorrow without stopping today's serving.
  SELECT t.event_id, t.campaign_id, t.advertiser_id, t.amount, t.event_ms,
         (to_timestamp(t.event_ms / 1000.0) AT TIME ZONE $6)::date AS spend_date
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::numeric[], $5::bigint[])
      AS t(event_id, campaign_id, advertiser_id, amount, event_ms)
),
voided AS (
  SELECT i.event_id FROM input i
    JOIN click_voids v ON v.event_id = i.event_id AND v.advertiser_id = i.advertiser_id AND v.campaign_id = i.campaign_id
),
charged AS (
  INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
  SELECT i.event_id, 'DEDUCT', i.amount, i.advertiser_id, i.campaign_id, i.spend_date, to_timestamp(i.event_ms / 1000.0)
    FROM input i
   WHERE i.event_id NOT IN (SELECT event_id FROM voided)
     -- The ledger is partitioned by day and its unique key includes the day: a copy of a click
     -- carrying another event_ts is not charged again in the partition of the day before or
     -- after (run-time pruning probes only those two partitions, so history costs nothing here;
     -- a copy re-stamped further away is not looked for, see lambdas/README.md).
     -- $8/$9 are the first and last budget day of the batch: the planner prunes to the
     -- partitions around them (planning does not grow with the retained days).
     AND NOT EXISTS (SELECT 1 FROM ad_balance_histories o
                      WHERE o.event_id = i.event_id AND o.type = 'DEDUCT'
                        AND o.spend_date BETWEEN $8::date - 2 AND $9::date + 2
                        AND o.spend_date BETWEEN i.spend_date - 1 AND i.spend_date + 1 AND o.spend_date <> i.spend_date)
   ORDER BY i.event_id
  ON CONFLICT ON CONSTRAINT ad_balance_histories_event_type_key DO NOTHING
  RETURNING event_id, amount, advertiser_id, campaign_id, spend_date
),
unaccounted AS (
  -- Neither charged nor voided: a replay of the same click (not reported), or an event id
  -- already charged to another advertiser or campaign, or one a concurrent batch inserted after
  -- this statement's snapshot (charged_* null: the caller looks again).
  SELECT i.event_id, d.advertiser_id::text AS charged_advertiser_id, d.campaign_id::text AS charged_campaign_id
    FROM input i
    LEFT JOIN ad_balance_histories d ON d.event_id = i.event_id AND d.type = 'DEDUCT'
          AND d.spend_date BETWEEN $8::date - 2 AND $9::date + 2 AND d.spend_date BETWEEN i.spend_date - 1 AND i.spend_date + 1
   WHERE i.event_id NOT IN (SELECT event_id FROM charged)
     AND i.event_id NOT IN (SELECT event_id FROM voided)
     AND (d.event_id IS NULL OR d.advertiser_id <> i.advertiser_id OR d.campaign_id <> i.campaign_id)
),
debits AS (
  UPDATE advertisers a
     SET balance = a.balance - d.total, updated_at = now()
    FROM (SELECT advertiser_id, sum(amount) AS total FROM charged GROUP BY advertiser_id) d
   WHERE a.advertiser_id = d.advertiser_id
  RETURNING a.advertiser_id
),
day_totals AS (
  SELECT c.campaign_id, c.spend_date, sum(c.amount) AS amount, count(*) AS clicks, k.daily_budget,
         c.spend_date = $7::date AS is_today
    FROM charged c JOIN campaigns k ON k.campaign_id = c.campaign_id
   GROUP BY c.campaign_id, c.spend_date, k.daily_budget
),
spend_before AS (
  SELECT s.campaign_id, s.spend_date, s.spend, s.warned_budget
    FROM campaign_daily_spend s JOIN day_totals t USING (campaign_id, spend_date)
),
spend AS (
  -- warned_budget is the budget the warning last fired for: a raised budget re-arms it, and it
  -- fires again once the day's spend reaches 90 % of the new budget. exhausted_at is when the
  -- day's spend last reached the budget in force (informational; pausing reads spend and budget).
  INSERT INTO campaign_daily_spend AS s (campaign_id, spend_date, spend, clicks, daily_budget, warned_at, warned_budget, exhausted_at)
  SELECT t.campaign_id, t.spend_date, t.amount, t.clicks, t.daily_budget,
         CASE WHEN t.is_today AND t.amount >= t.daily_budget * 0.9 THEN now() END,
         CASE WHEN t.is_today AND t.amount >= t.daily_budget * 0.9 THEN t.daily_budget END,
         CASE WHEN t.is_today AND t.amount >= t.daily_budget THEN now() END
    FROM day_totals t
   ORDER BY t.campaign_id, t.spend_date
  ON CONFLICT (campaign_id, spend_date) DO UPDATE SET
    spend = s.spend + EXCLUDED.spend,
    clicks = s.clicks + EXCLUDED.clicks,
    daily_budget = EXCLUDED.daily_budget,
    updated_at = now(),
    warned_at = CASE WHEN EXCLUDED.spend_date = $7::date
                      AND s.spend + EXCLUDED.spend >= EXCLUDED.daily_budget * 0.9
                      AND (s.warned_budget IS NULL OR s.warned_budget < EXCLUDED.daily_budget)
                     THEN now() ELSE s.warned_at END,
    warned_budget = CASE WHEN EXCLUDED.spend_date = $7::date
                          AND s.spend + EXCLUDED.spend >= EXCLUDED.daily_budget * 0.9
                          AND (s.warned_budget IS NULL OR s.warned_budget < EXCLUDED.daily_budget)
                         THEN EXCLUDED.daily_budget ELSE s.warned_budget END,
    exhausted_at = CASE WHEN EXCLUDED.spend_date = $7::date
                         AND s.spend + EXCLUDED.spend >= EXCLUDED.daily_budget
                         AND (s.exhausted_at IS NULL OR s.spend < EXCLUDED.daily_budget)
                        THEN now() ELSE s.exhausted_at END
  RETURNING s.campaign_id, s.spend_date, s.spend, s.daily_budget, s.warned_budget
),
warned AS (
  SELECT s.campaign_id, s.spend_date, s.spend, s.warned_budget
    FROM spend s LEFT JOIN spend_before b USING (campaign_id, spend_date)
   WHERE s.warned_budget IS NOT NULL AND s.warned_budget IS DISTINCT FROM b.warned_budget
),
today_spend AS (
  -- Every campaign of the batch, charged now or not (a replayed batch still enforces): its
  -- spend on the current budget day after this statement.
  SELECT b.campaign_id, COALESCE(s.spend, d.spend, 0) AS spend
    FROM (SELECT DISTINCT campaign_id FROM input) b
    LEFT JOIN spend s ON s.campaign_id = b.campaign_id AND s.spend_date = $7::date
    LEFT JOIN campaign_daily_spend d ON d.campaign_id = b.campaign_id AND d.spend_date = $7::date
),
paused AS (
  -- Enforced on every batch: an ACTIVE campaign at or over its current budget is paused, however
  -- it became ACTIVE (manual resume, raised budget and resume, a reset racing a batch).
  UPDATE campaigns c
     SET status = 'PAUSED', paused_reason = 'BUDGET_EXHAUSTED', status_seq = c.status_seq + 1, updated_at = now()
    FROM today_spend x
   WHERE c.campaign_id = x.campaign_id AND c.status = 'ACTIVE'
     AND c.daily_budget IS NOT NULL AND x.spend >= c.daily_budget
  RETURNING c.campaign_id, c.advertiser_id, c.product_id, c.placement, c.category, c.bid_price, c.status_seq,
            $7::date AS spend_date
),
outbox_rows AS (
  INSERT INTO outbox (kind, idempotency_key, payload)
  SELECT 'BUDGET_WARNING',
         'BUDGET_WARNING:' || w.campaign_id || ':' || w.spend_date || ':' || trim_scale(w.warned_budget),
         jsonb_build_object(
           'campaign_id', w.campaign_id, 'advertiser_id', k.advertiser_id,
           'spend_date', w.spend_date::text, 'spend', w.spend::text,
           'daily_budget', w.warned_budget::text, 'threshold', '0.9')
    FROM warned w JOIN campaigns k ON k.campaign_id = w.campaign_id
  UNION ALL
  SELECT ${campaignStatusOutboxColumns('CAMPAIGN_PAUSED', 'p', 'p.spend_date')}
    FROM paused p
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING kind
)
SELECT (SELECT count(*) FROM charged)::int AS charged,
       (SELECT coalesce(sum(amount), 0) FROM charged)::text AS charged_amount,
       (SELECT count(*) FROM voided)::int AS voided,
       (SELECT count(*) FROM outbox_rows)::int AS outbox_written,
       (SELECT count(*) FROM debits)::int AS advertisers_debited,
       (SELECT coalesce(json_agg(json_build_object(
           'campaign_id', s.campaign_id, 'spend_date', s.spend_date::text,
           'spend', s.spend::text, 'daily_budget', s.daily_budget::text)), '[]'::json) FROM spend s) AS spend,
       (SELECT coalesce(json_agg(u), '[]'::json) FROM unaccounted u) AS unaccounted`;

/** Event ids a concurrent batch charged after the charge statement's snapshot: who holds them. */
const CHARGED_ELSEWHERE = `
SELECT event_id, advertiser_id::text AS charged_advertiser_id, campaign_id::text AS charged_campaign_id
  FROM ad_balance_histories
 WHERE event_id = ANY($1::text[]) AND type = 'DEDUCT'`;

/**
 * Builds the click-balance handler (`ad-events`, group `click-balance-processor`): charges each
 * CLICK exactly once at the campaign's database CPC, keeps day spend, warns at 90 % and pauses
 * an ACTIVE campaign whose spend reached its budget on every batch, and dead-letters bad records
 * in the same transaction.
 */
export function createClickBalanceHandler(deps: WorkerDeps): (event: unknown) => Promise<InvocationSummary> {
  return async (event) => {
    const summary = emptySummary(CLICK_BALANCE_HANDLER, CLICK_BALANCE_METRICS);
    watchCache(deps, summary);
    return instrumentInvocation(deps.observability, summary, 'batch failed; nothing applied, Lambda will redeliver it', () =>
      chargeClicks(deps, event, deps.now?.() ?? Date.now(), summary),
    );
  };
}

async function chargeClicks(deps: WorkerDeps, event: unknown, now: number, summary: InvocationSummary): Promise<void> {
  const records = decodeKafkaEvent(event);
  summary.records = records.length;
  // No de-duplication here: a bad copy of a click must not hide a good copy with the same id
  // (priceClicks keeps the first chargeable copy).
  const { accepted: clicks, deadLetters } = sortBatch(records, (record) => {
    const adEvent = parseContractRecord(adEventContract, record.value, { informational: INFORMATIONAL_FIELDS });
    if (adEvent.event_type !== 'CLICK') return undefined;
    checkEventTime('event_ts', adEvent.event_ts, now);
    return adEvent;
  });

  if (clicks.length === 0 && deadLetters.length === 0) {
    summary.skipped = summary.records;
    summary.chargedAmount = '0';
    return;
  }

  const campaignIds = [...new Set(clicks.map((c) => c.event.campaign_id))];
  const campaigns = new Map<number, CampaignRow>();
  const { result, roundTrips } = await withTransaction(deps.pool, 'charging clicks', async (client) => {
    let charge: ChargeResult = { charged: 0, charged_amount: '0', voided: 0, outbox_written: 0, spend: [], unaccounted: [] };
    if (clicks.length > 0) {
      const rows = await client.query<CampaignRow>(LOCK_AND_LOAD_CAMPAIGNS, [campaignIds]);
      for (const row of rows.rows) campaigns.set(Number(row.campaign_id), row);
      const chargeable = priceClicks(clicks, campaigns, deadLetters);
      if (chargeable.length > 0) {
        charge = await applyCharges(client, chargeable, deps.budgetTimeZone, budgetDayOf(now, deps.budgetTimeZone));
        await deadLetterConflicts(client, chargeable, charge.unaccounted, deadLetters);
      }
    }
    const recorded = await recordDeadLetters(client, CLICK_BALANCE_HANDLER, deadLetters);
    return { charge, recorded };
  });

  summary.dbRoundTrips = roundTrips;
  summary.charged = result.charge.charged;
  summary.chargedAmount = result.charge.charged_amount;
  summary.voided = result.charge.voided;
  summary.deadLettered = deadLetters.length;
  summary.skipped = summary.records - summary.charged - summary.deadLettered;
  summary.outboxWritten = result.charge.outbox_written;

  await refreshMirrors(deps, campaigns, result.charge);
  await publishAfterCommit(deps, summary);
}

/**
 * Prices each click at its campaign's database CPC (the cache never decides an amount) and
 * keeps the first chargeable copy of each event id; unpriceable clicks and copies that
 * contradict the kept one become dead letters.
 */
function priceClicks(clicks: readonly Click[], campaigns: ReadonlyMap<number, CampaignRow>, deadLetters: DeadLetter[]): Array<{ click: Click; price: string }> {
  const chargeable: Array<{ click: Click; price: string }> = [];
  const kept = new Map<string, Click>();
  for (const click of clicks) {
    const { campaign_id: campaignId, advertiser_id: advertiserId, event_id: eventId } = click.event;
    const campaign = campaigns.get(campaignId);
    const reject = (error: KafkaRecordError) => deadLetters.push(deadLetterFor(error, click.coordinates, click.rawValue));
    if (!campaign) {
      reject(new KafkaRecordError('UNKNOWN_CAMPAIGN', `campaign ${campaignId} does not exist`));
      continue;
    }
    if (campaign.advertiser_id !== String(advertiserId)) {
      reject(new KafkaRecordError('ADVERTISER_MISMATCH', `campaign ${campaignId} belongs to advertiser ${campaign.advertiser_id}, not ${advertiserId}`));
      continue;
    }
    if (!isClickPrice(campaign.cpc)) {
      const problem = campaign.cpc === null ? 'is not set' : checkClickAmount(campaign.cpc);
      reject(new KafkaRecordError('NO_PRICE', `campaign ${campaignId} cpc ${problem}`));
      continue;
    }
    const first = kept.get(eventId);
    if (first) {
      // The same click twice in one batch (a producer retry) is charged once; the same id on
      // another campaign or advertiser is a conflict, recorded rather than dropped.
      if (first.event.campaign_id !== campaignId || first.event.advertiser_id !== advertiserId) {
        reject(conflictError(eventId, first.event.advertiser_id, first.event.campaign_id, 'an earlier record of this batch'));
      }
      continue;
    }
    kept.set(eventId, click);
    chargeable.push({ click, price: campaign.cpc });
  }
  return chargeable;
}

function conflictError(eventId: string, advertiserId: number | string, campaignId: number | string, where: string): KafkaRecordError {
  return new KafkaRecordError(
    'EVENT_ID_CONFLICT',
    `event_id ${JSON.stringify(eventId.slice(0, 64))} is already a click of advertiser ${advertiserId} campaign ${campaignId} (${where}); not charged again`,
  );
}

async function applyCharges(
  client: TransactionClient,
  chargeable: ReadonlyArray<{ click: Click; price: string }>,
  timeZone: string,
  today: string,
): Promise<ChargeResult> {
  let first = Infinity;
  let last = -Infinity;
  for (const c of chargeable) {
    if (c.click.event.event_ts < first) first = c.click.event.event_ts;
    if (c.click.event.event_ts > last) last = c.click.event.event_ts;
  }
  const result = await client.query<ChargeResult>(CHARGE_CLICKS, [
    chargeable.map((c) => c.click.event.event_id),
    chargeable.map((c) => c.click.event.campaign_id),
    chargeable.map((c) => c.click.event.advertiser_id),
    chargeable.map((c) => c.price),
    chargeable.map((c) => c.click.event.event_ts),
    timeZone,
    today,
    budgetDayOf(first, timeZone),
    budgetDayOf(last, timeZone),
  ]);
  return result.rows[0];
}

/**
 * Every click ends in a charge or a dead letter: an event id already charged to another
 * advertiser or campaign is dead-lettered. Ids a concurrent batch committed after the charge
 * statement's snapshot are looked up again (one more round trip, only then).
 */
async function deadLetterConflicts(
  client: TransactionClient,
  chargeable: ReadonlyArray<{ click: Click; price: string }>,
  unaccounted: readonly Unaccounted[],
  deadLetters: DeadLetter[],
): Promise<void> {
  if (unaccounted.length === 0) return;
  const clickOf = new Map(chargeable.map((c) => [c.click.event.event_id, c.click]));
  let holders = unaccounted.filter((u) => u.charged_advertiser_id !== null);
  const unseen = unaccounted.filter((u) => u.charged_advertiser_id === null).map((u) => u.event_id);
  if (unseen.length > 0) {
    const found = await client.query<Unaccounted>(CHARGED_ELSEWHERE, [unseen]);
    if (found.rows.length < unseen.length) {
      // Not charged, not voided, and no DEDUCT holds the id: nothing can explain it; retry the batch.
      throw new Error(`${unseen.length - found.rows.length} clicks were neither charged nor found charged`);
    }
    holders = holders.concat(found.rows);
  }
  for (const holder of holders) {
    const click = clickOf.get(holder.event_id);
    if (!click) continue;
    if (holder.charged_advertiser_id === String(click.event.advertiser_id) && holder.charged_campaign_id === String(click.event.campaign_id)) {
      continue; // a concurrent copy of the same click: charged once, by the other batch
    }
    deadLetters.push(
      deadLetterFor(
        conflictError(holder.event_id, holder.charged_advertiser_id ?? '?', holder.charged_campaign_id ?? '?', 'already charged'),
        click.coordinates,
        click.rawValue,
      ),
    );
  }
}

/**
 * Brings the Redis mirrors (`daily_budget:{id}`, `daily_spend:{id}:{day}`) in line with the
 * committed state, for readers outside the money path (ad-server pacing, dashboards). Never
 * read back by a worker and never needed for correctness.
 */
async function refreshMirrors(deps: WorkerDeps, campaigns: ReadonlyMap<number, CampaignRow>, charge: ChargeResult): Promise<void> {
  const entries: CacheEntry[] = [];
  for (const [id, campaign] of campaigns) {
    if (campaign.daily_budget != null) entries.push({ key: dailyBudgetKey(id), value: campaign.daily_budget, ttlSeconds: MIRROR_TTL_SECONDS });
  }
  for (const day of charge.spend) {
    entries.push({ key: dailySpendKey(day.campaign_id, day.spend_date), value: day.spend, ttlSeconds: MIRROR_TTL_SECONDS });
  }
  await deps.cache.setMany(entries);
}
