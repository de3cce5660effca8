import { AdEvent, adEventContract } from '../../contracts';
import { DeadLetter, deadLetterFor, recordDeadLetters } from '../shared/dead-letter';
import { TransactionClient, withTransaction } from '../shared/db';
import { KafkaRecordError } from '../shared/errors';
import { decodeKafkaEvent } from '../shared/kafka-event';
import { checkInformationalAmount, isClickPrice } from '../shared/money';
import { emptySummary, InvocationSummary, instrumentInvocation } from '../shared/observability';
import { campaignStatusOutboxColumns } from '../shared/outbox';
import { AcceptedRecord, checkEventTime, parseContractRecord, sortBatch } from '../shared/records';
import { CacheEntry } from '../shared/redis';
import { publishAfterCommit, watchCache, WorkerDeps } from '../shared/runtime';

/** Name of the handler in logs, metrics and `dead_letters.handler`. */
export const CLICK_BALANCE_HANDLER = 'click-balance';

/** A refilled `cpc:{id}` lives this long, so a price changed in the database propagates. */
const CPC_CACHE_TTL_SECONDS = 300;
/** Spend mirrors outlive their budget day by a day. */
const SPEND_MIRROR_TTL_SECONDS = 2 * 24 * 60 * 60;

/** Redis key of a campaign's cost per click. */
export const cpcKey = (campaignId: number | string): string => `cpc:${campaignId}`;
/** Redis key of a campaign's daily budget (mirror of `campaigns.daily_budget`). */
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

interface ChargeResult {
  charged: number;
  voided: number;
  outbox_written: number;
  spend: Array<{ campaign_id: number; spend_date: string; spend: string; daily_budget: string | null }>;
}

/**
 * Locks the advertisers that will be charged, in id order, before anything else is read: every
 * writer of an advertiser's money (this handler, compensations) takes the same locks in the same
 * order, so concurrent partitions never deadlock, and the next statement's snapshot sees every
 * committed charge, refund and void for those clicks.
 */
const LOCK_AND_LOAD_CAMPAIGNS = `
WITH locked AS (
  SELECT advertiser_id FROM advertisers
   WHERE advertiser_id IN (SELECT advertiser_id FROM campaigns WHERE campaign_id = ANY($1::bigint[]))
   ORDER BY advertiser_id
   FOR UPDATE
)
SELECT c.campaign_id, c.advertiser_id, c.cpc::text AS cpc, c.daily_budget::text AS daily_budget
  FROM campaigns c
 WHERE c.campaign_id = ANY($1::bigint[])
   -- Referencing the CTE makes it run, locking in id order, before this row set is returned.
   AND (SELECT count(*) FROM locked) >= 0`;

/**
 * The whole charge in one statement, set-based so its cost does not grow in round trips with
 * the batch: DEDUCT rows keyed by event_id (a replay inserts nothing), voided clicks skipped,
 * balances decreased by exactly the inserted amounts, day spend upserted, thresholds evaluated
 * from those totals once per campaign and day, campaigns paused and outbox rows written.
 */
const CHARGE_CLICKS = `
WITH input AS (
  SELECT t.event_id, t.campaign_id, t.advertiser_id, t.amount, t.event_ms,
         (to_timestamp(t.event_ms / 1000.0) AT TIME ZONE $6)::date AS spend_date
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::numeric[], $5::bigint[])
      AS t(event_id, campaign_id, advertiser_id, amount, event_ms)
),
voided AS (
  SELECT i.event_id FROM input i JOIN click_voids v ON v.event_id = i.event_id
),
charged AS (
  INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
  SELECT i.event_id, 'DEDUCT', i.amount, i.advertiser_id, i.campaign_id, i.spend_date, to_timestamp(i.event_ms / 1000.0)
    FROM input i
   WHERE i.event_id NOT IN (SELECT event_id FROM voided)
  ON CONFLICT ON CONSTRAINT ad_balance_histories_event_type_key DO NOTHING
  RETURNING event_id, amount, advertiser_id, campaign_id, spend_date
),
debits AS (
  UPDATE advertisers a
     SET balance = a.balance - d.total, updated_at = now()
    FROM (SELECT advertiser_id, sum(amount) AS total FROM charged GROUP BY advertiser_id) d
   WHERE a.advertiser_id = d.advertiser_id
  RETURNING a.advertiser_id
),
day_totals AS (
  SELECT c.campaign_id, c.spend_date, sum(c.amount) AS amount, count(*) AS clicks, k.daily_budget
    FROM charged c JOIN campaigns k ON k.campaign_id = c.campaign_id
   GROUP BY c.campaign_id, c.spend_date, k.daily_budget
),
spend_before AS (
  SELECT s.campaign_id, s.spend_date, s.warned_at, s.exhausted_at
    FROM campaign_daily_spend s JOIN day_totals t USING (campaign_id, spend_date)
),
spend AS (
  -- Thresholds only for the current (or a future) budget day: a late click from yesterday
  -- must not pause today's campaign.
  INSERT INTO campaign_daily_spend AS s (campaign_id, spend_date, spend, clicks, daily_budget, warned_at, exhausted_at)
  SELECT t.campaign_id, t.spend_date, t.amount, t.clicks, t.daily_budget,
         CASE WHEN t.spend_date >= (now() AT TIME ZONE $6)::date AND t.amount >= t.daily_budget * 0.9 THEN now() END,
         CASE WHEN t.spend_date >= (now() AT TIME ZONE $6)::date AND t.amount >= t.daily_budget THEN now() END
    FROM day_totals t
   ORDER BY t.campaign_id, t.spend_date
  ON CONFLICT (campaign_id, spend_date) DO UPDATE SET
    spend = s.spend + EXCLUDED.spend,
    clicks = s.clicks + EXCLUDED.clicks,
    daily_budget = EXCLUDED.daily_budget,
    updated_at = now(),
    warned_at = COALESCE(s.warned_at,
      CASE WHEN EXCLUDED.spend_date >= (now() AT TIME ZONE $6)::date
            AND s.spend + EXCLUDED.spend >= EXCLUDED.daily_budget * 0.9 THEN now() END),
    exhausted_at = COALESCE(s.exhausted_at,
      CASE WHEN EXCLUDED.spend_date >= (now() AT TIME ZONE $6)::date
            AND s.spend + EXCLUDED.spend >= EXCLUDED.daily_budget THEN now() END)
  RETURNING s.campaign_id, s.spend_date, s.spend, s.daily_budget, s.warned_at, s.exhausted_at
),
crossed AS (
  SELECT s.campaign_id, s.spend_date, s.spend, s.daily_budget,
         b.warned_at IS NULL AND s.warned_at IS NOT NULL AS newly_warned,
         b.exhausted_at IS NULL AND s.exhausted_at IS NOT NULL AS newly_exhausted
    FROM spend s LEFT JOIN spend_before b USING (campaign_id, spend_date)
),
paused AS (
  UPDATE campaigns c
     SET status = 'PAUSED', paused_reason = 'BUDGET_EXHAUSTED', updated_at = now()
    FROM crossed x
   WHERE x.newly_exhausted AND c.campaign_id = x.campaign_id AND c.status = 'ACTIVE'
  RETURNING c.campaign_id, c.advertiser_id, c.product_id, c.placement, c.category, c.bid_price, x.spend_date
),
outbox_rows AS (
  INSERT INTO outbox (kind, idempotency_key, payload)
  SELECT 'BUDGET_WARNING',
         'BUDGET_WARNING:' || x.campaign_id || ':' || x.spend_date,
         jsonb_build_object(
           'campaign_id', x.campaign_id, 'advertiser_id', k.advertiser_id,
           'spend_date', x.spend_date::text, 'spend', x.spend::text,
           'daily_budget', x.daily_budget::text, 'threshold', '0.9')
    FROM crossed x JOIN campaigns k ON k.campaign_id = x.campaign_id
   WHERE x.newly_warned
  UNION ALL
  SELECT ${campaignStatusOutboxColumns('CAMPAIGN_PAUSED', 'p', 'p.spend_date')}
    FROM paused p
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING kind
)
SELECT (SELECT count(*) FROM charged)::int AS charged,
       (SELECT count(*) FROM voided)::int AS voided,
       (SELECT count(*) FROM outbox_rows)::int AS outbox_written,
       (SELECT count(*) FROM debits)::int AS advertisers_debited,
       (SELECT coalesce(json_agg(json_build_object(
           'campaign_id', s.campaign_id, 'spend_date', s.spend_date::text,
           'spend', s.spend::text, 'daily_budget', s.daily_budget::text)), '[]'::json) FROM spend s) AS spend`;

/**
 * Builds the click-balance handler (`ad-events`, group `click-balance-processor`): charges each
 * CLICK exactly once at the campaign's CPC, keeps day spend, fires the 90 % / 100 % budget
 * thresholds once per campaign and day, and dead-letters bad records in the same transaction.
 */
export function createClickBalanceHandler(deps: WorkerDeps): (event: unknown) => Promise<InvocationSummary> {
  return async (event) => {
    const summary = emptySummary(CLICK_BALANCE_HANDLER);
    watchCache(deps, summary);
    return instrumentInvocation(deps.observability, summary, 'batch failed; nothing applied, Lambda will redeliver it', () =>
      chargeClicks(deps, event, deps.now?.() ?? Date.now(), summary),
    );
  };
}

async function chargeClicks(deps: WorkerDeps, event: unknown, now: number, summary: InvocationSummary): Promise<void> {
  const records = decodeKafkaEvent(event);
  summary.records = records.length;
  const { accepted: clicks, deadLetters } = sortBatch(
    records,
    (record) => {
      const adEvent = parseContractRecord(adEventContract, record.value);
      if (adEvent.event_type !== 'CLICK') return undefined;
      checkEventTime('event_ts', adEvent.event_ts, now);
      if (adEvent.actual_price != null) {
        const problem = checkInformationalAmount(adEvent.actual_price);
        if (problem) throw new KafkaRecordError('ABSURD_AMOUNT', `actual_price ${problem}`);
      }
      return adEvent;
    },
    // The same click twice in one batch (a producer retry): charge the first only.
    (adEvent) => adEvent.event_id,
  );

  const campaignIds = [...new Set(clicks.map((c) => c.event.campaign_id))];
  const cachedPrices = await deps.cache.getMany(campaignIds.map(cpcKey));
  const priceFromCache = new Map<number, string>();
  campaignIds.forEach((id, i) => {
    const cached = cachedPrices?.[i];
    // A corrupted cache value is treated as a miss, never charged.
    if (isClickPrice(cached)) priceFromCache.set(id, cached);
  });

  if (clicks.length === 0 && deadLetters.length === 0) {
    summary.skipped = summary.records;
    return;
  }

  const campaigns = new Map<number, CampaignRow>();
  const refills = new Map<number, string>();
  const { result, roundTrips } = await withTransaction(deps.pool, 'charging clicks', async (client) => {
    let charge: ChargeResult = { charged: 0, voided: 0, outbox_written: 0, spend: [] };
    if (clicks.length > 0) {
      const rows = await client.query<CampaignRow>(LOCK_AND_LOAD_CAMPAIGNS, [campaignIds]);
      for (const row of rows.rows) campaigns.set(Number(row.campaign_id), row);
      const chargeable = priceClicks(clicks, campaigns, priceFromCache, refills, deadLetters);
      if (chargeable.length > 0) charge = await applyCharges(client, chargeable, deps.budgetTimeZone);
    }
    const recorded = await recordDeadLetters(client, CLICK_BALANCE_HANDLER, deadLetters);
    return { charge, recorded };
  });

  summary.dbRoundTrips = roundTrips;
  summary.charged = result.charge.charged;
  summary.voided = result.charge.voided;
  summary.deadLettered = deadLetters.length;
  summary.skipped = summary.records - summary.charged - summary.deadLettered;
  summary.outboxWritten = result.charge.outbox_written;

  await refreshMirrors(deps, campaigns, refills, result.charge);
  await publishAfterCommit(deps, summary);
}

/** Prices each click (cache first, database CPC second); unpriceable clicks become dead letters. */
function priceClicks(
  clicks: readonly Click[],
  campaigns: ReadonlyMap<number, CampaignRow>,
  priceFromCache: ReadonlyMap<number, string>,
  refills: Map<number, string>,
  deadLetters: DeadLetter[],
): Array<{ click: Click; price: string }> {
  const chargeable: Array<{ click: Click; price: string }> = [];
  for (const click of clicks) {
    const { campaign_id: campaignId, advertiser_id: advertiserId } = click.event;
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
    let price = priceFromCache.get(campaignId);
    if (price === undefined && isClickPrice(campaign.cpc)) {
      price = campaign.cpc;
      refills.set(campaignId, campaign.cpc);
    }
    if (price === undefined) {
      reject(new KafkaRecordError('NO_PRICE', `campaign ${campaignId} has no usable CPC in Redis or the database`));
      continue;
    }
    chargeable.push({ click, price });
  }
  return chargeable;
}

async function applyCharges(
  client: TransactionClient,
  chargeable: ReadonlyArray<{ click: Click; price: string }>,
  timeZone: string,
): Promise<ChargeResult> {
  const result = await client.query<ChargeResult>(CHARGE_CLICKS, [
    chargeable.map((c) => c.click.event.event_id),
    chargeable.map((c) => c.click.event.campaign_id),
    chargeable.map((c) => c.click.event.advertiser_id),
    chargeable.map((c) => c.price),
    chargeable.map((c) => c.click.event.event_ts),
    timeZone,
  ]);
  return result.rows[0];
}

/** Brings the Redis mirrors in line with the committed totals; never needed for correctness. */
async function refreshMirrors(
  deps: WorkerDeps,
  campaigns: ReadonlyMap<number, CampaignRow>,
  refills: ReadonlyMap<number, string>,
  charge: ChargeResult,
): Promise<void> {
  const entries: CacheEntry[] = [];
  // Campaign settings are mirrored when the price had to come from the database (a cache miss,
  // at most once per CPC TTL), so a changed budget reaches Redis within that TTL without
  // rewriting every campaign's settings on every batch.
  for (const [id, price] of refills) {
    entries.push({ key: cpcKey(id), value: price, ttlSeconds: CPC_CACHE_TTL_SECONDS });
    const budget = campaigns.get(id)?.daily_budget;
    if (budget != null) entries.push({ key: dailyBudgetKey(id), value: budget, ttlSeconds: CPC_CACHE_TTL_SECONDS });
  }
  for (const day of charge.spend) {
    entries.push({ key: dailySpendKey(day.campaign_id, day.spend_date), value: day.spend, ttlSeconds: SPEND_MIRROR_TTL_SECONDS });
  }
  await deps.cache.setMany(entries);
}
