import { AdEvent, adEventContract } from '../../contracts';
import { budgetDayOf } from '../shared/budget-day';
import { DeadLetter, deadLetterFor, recordDeadLetters } from '../shared/dead-letter';
import { runStatement, TransactionClient, withTransaction } from '../shared/db';
import { DatabaseUnavailableError, KafkaRecordError } from '../shared/errors';
import { decodeKafkaEvent } from '../shared/kafka-event';
import { checkClickAmount, isClickPrice } from '../shared/money';
import { emptySummary, InvocationSummary, instrumentInvocation, SummaryCounter } from '../shared/observability';
import { AcceptedRecord, checkEventTime, checkHistoryKept, parseContractRecord, sortBatch } from '../shared/records';
import { CacheEntry } from '../shared/redis';
import { publishAfterCommit, watchCache, WorkerDeps } from '../shared/runtime';

/** Name of the handler in logs, metrics and `dead_letters.handler`. */
export const CLICK_BALANCE_HANDLER = 'click-balance';

/** Metrics click-balance emits after each invocation. */
export const CLICK_BALANCE_METRICS: readonly SummaryCounter[] = ['records', 'charged', 'skipped', 'deadLettered', 'voided', 'outboxPublished', 'cacheFailures'];

/** Budget and spend mirrors outlive their budget day by a day. */
const MIRROR_TTL_SECONDS = 2 * 24 * 60 * 60;

/**
 * An unchanged `daily_budget:{id}` mirror is written again at most this often (a key lost to a
 * Redis restart or eviction is back within this long while the campaign gets clicks); a
 * changed budget is written by the next batch of the campaign.
 */
export const BUDGET_MIRROR_REFRESH_MS = 60_000;

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
 * The charge statement (db/migrations/1764920000000_charge-functions.sql), for clicks already
 * priced under the advertiser locks: DEDUCT rows, balances, day spend, warnings, pauses, outbox.
 * A function, so the session caches its plan instead of planning it on every batch.
 */
const CHARGE_PRICED_CLICKS = 'SELECT adstream_charge_priced_clicks($1, $2, $3, $4, $5, $6, $7, $8, $9) AS charge';

/**
 * Lock, price and charge of a clean batch in one round trip (the same migration), committed by
 * the statement itself; SQLSTATE `AS001` (nothing applied) when the batch needs the long way.
 */
const CHARGE_CLEAN_BATCH = 'SELECT adstream_charge_clicks($1, $2, $3, $4, $5, $6, $7, $8) AS result';

/** SQLSTATE of adstream_charge_clicks() refusing a batch it cannot account for entirely. */
const NEEDS_LONG_WAY = 'AS001';

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
  const budgetMirrors = new BudgetMirrors();
  return async (event) => {
    const summary = emptySummary(CLICK_BALANCE_HANDLER, CLICK_BALANCE_METRICS);
    watchCache(deps, summary);
    return instrumentInvocation(deps.observability, summary, 'batch failed; nothing applied, Lambda will redeliver it', () =>
      chargeClicks(deps, event, deps.now?.() ?? Date.now(), summary, budgetMirrors),
    );
  };
}

async function chargeClicks(deps: WorkerDeps, event: unknown, now: number, summary: InvocationSummary, budgetMirrors: BudgetMirrors): Promise<void> {
  const records = decodeKafkaEvent(event);
  summary.records = records.length;
  // No de-duplication here: a bad copy of a click must not hide a good copy with the same id
  // (priceClicks keeps the first chargeable copy).
  const { accepted: clicks, deadLetters } = sortBatch(records, (record) => {
    const adEvent = parseContractRecord(adEventContract, record.value, { informational: INFORMATIONAL_FIELDS });
    if (adEvent.event_type !== 'CLICK') return undefined;
    checkEventTime('event_ts', adEvent.event_ts, now);
    checkHistoryKept('event_ts', adEvent.event_ts, deps.historySince, deps.budgetTimeZone);
    return adEvent;
  });

  if (clicks.length === 0 && deadLetters.length === 0) {
    summary.skipped = summary.records;
    summary.chargedAmount = '0';
    return;
  }

  const today = budgetDayOf(now, deps.budgetTimeZone);
  const { campaigns, charge, roundTrips } =
    (deadLetters.length === 0 ? await chargeCleanBatch(deps, clicks, today) : undefined) ?? (await chargeLongWay(deps, clicks, deadLetters, today));

  summary.dbRoundTrips = roundTrips;
  summary.charged = charge.charged;
  summary.chargedAmount = charge.charged_amount;
  summary.voided = charge.voided;
  summary.deadLettered = deadLetters.length;
  summary.skipped = summary.records - summary.charged - summary.deadLettered;
  summary.outboxWritten = charge.outbox_written;

  // Both after the commit and independent of each other (neither ever fails the batch).
  await Promise.all([refreshMirrors(deps, campaigns, charge, budgetMirrors, now), publishAfterCommit(deps, summary)]);
}

/** What charging a batch did, whichever way it went. */
interface BatchCharge {
  /** Daily budget of every campaign of the batch that exists, for the Redis mirrors. */
  readonly campaigns: ReadonlyMap<number, Pick<CampaignRow, 'daily_budget'>>;
  readonly charge: ChargeResult;
  readonly roundTrips: number;
}

/**
 * A batch without dead letters so far, charged in one round trip by adstream_charge_clicks():
 * advertiser locks, database prices, charge and commit in one statement. Undefined, with nothing
 * applied, when any click needs a dead letter or a second look (an id repeated with another
 * campaign or advertiser, an unknown campaign, a campaign of another advertiser, an unusable
 * CPC, an id held by another click): `chargeLongWay` then charges it and records why.
 */
async function chargeCleanBatch(deps: WorkerDeps, clicks: readonly Click[], today: string): Promise<BatchCharge | undefined> {
  const firstCopy = new Map<string, Click>();
  for (const click of clicks) {
    const first = firstCopy.get(click.event.event_id);
    if (!first) firstCopy.set(click.event.event_id, click);
    else if (first.event.campaign_id !== click.event.campaign_id || first.event.advertiser_id !== click.event.advertiser_id) return undefined;
  }
  const unique = [...firstCopy.values()];
  const { first, last } = budgetDaySpan(unique, deps.budgetTimeZone);
  try {
    const { rows } = await runStatement<{ result: { charge: ChargeResult; campaigns: Array<{ campaign_id: string; daily_budget: string | null }> } }>(
      deps.pool,
      'charging clicks',
      CHARGE_CLEAN_BATCH,
      [
        unique.map((c) => c.event.event_id),
        unique.map((c) => c.event.campaign_id),
        unique.map((c) => c.event.advertiser_id),
        unique.map((c) => c.event.event_ts),
        deps.budgetTimeZone,
        today,
        first,
        last,
      ],
    );
    const { charge, campaigns } = rows[0].result;
    return { charge, campaigns: new Map(campaigns.map((c) => [Number(c.campaign_id), c])), roundTrips: 1 };
  } catch (error) {
    if (error instanceof DatabaseUnavailableError && (error.cause as { code?: unknown } | undefined)?.code === NEEDS_LONG_WAY) return undefined;
    throw error;
  }
}

/**
 * Any batch, in one transaction: lock the advertisers and load the campaigns, price in
 * TypeScript (dead letters with their reasons), charge, dead-letter conflicts, record dead
 * letters, COMMIT.
 */
async function chargeLongWay(deps: WorkerDeps, clicks: readonly Click[], deadLetters: DeadLetter[], today: string): Promise<BatchCharge> {
  const campaignIds = [...new Set(clicks.map((c) => c.event.campaign_id))];
  const campaigns = new Map<number, CampaignRow>();
  const { result: charge, roundTrips } = await withTransaction(deps.pool, 'charging clicks', async (client) => {
    let result: ChargeResult = { charged: 0, charged_amount: '0', voided: 0, outbox_written: 0, spend: [], unaccounted: [] };
    if (clicks.length > 0) {
      const rows = await client.query<CampaignRow>(LOCK_AND_LOAD_CAMPAIGNS, [campaignIds]);
      for (const row of rows.rows) campaigns.set(Number(row.campaign_id), row);
      const chargeable = priceClicks(clicks, campaigns, deadLetters);
      if (chargeable.length > 0) {
        result = await applyCharges(client, chargeable, deps.budgetTimeZone, today);
        await deadLetterConflicts(client, chargeable, result.unaccounted, deadLetters);
      }
    }
    await recordDeadLetters(client, CLICK_BALANCE_HANDLER, deadLetters, deps.budgetTimeZone);
    return result;
  });
  return { campaigns, charge, roundTrips };
}

/** First and last budget day of a batch's clicks (the partitions the charge looks around). */
function budgetDaySpan(clicks: ReadonlyArray<Click>, timeZone: string): { first: string; last: string } {
  let first = Infinity;
  let last = -Infinity;
  for (const c of clicks) {
    if (c.event.event_ts < first) first = c.event.event_ts;
    if (c.event.event_ts > last) last = c.event.event_ts;
  }
  return { first: budgetDayOf(first, timeZone), last: budgetDayOf(last, timeZone) };
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
  const { first, last } = budgetDaySpan(
    chargeable.map((c) => c.click),
    timeZone,
  );
  const result = await client.query<{ charge: ChargeResult }>(CHARGE_PRICED_CLICKS, [
    chargeable.map((c) => c.click.event.event_id),
    chargeable.map((c) => c.click.event.campaign_id),
    chargeable.map((c) => c.click.event.advertiser_id),
    chargeable.map((c) => c.price),
    chargeable.map((c) => c.click.event.event_ts),
    timeZone,
    today,
    first,
    last,
  ]);
  return result.rows[0].charge;
}

/**
 * Every click ends in a charge or a dead letter: an event id already charged to another
 * advertiser or campaign is dead-lettered, once however many DEDUCTs hold it. Ids a concurrent
 * batch committed after the charge statement's snapshot are looked up again (one more round
 * trip, only then).
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
    const held = new Set(found.rows.map((row) => row.event_id));
    const unexplained = unseen.filter((id) => !held.has(id)).length;
    if (unexplained > 0) {
      // Not charged, not voided, and no DEDUCT holds the id: nothing can explain it; retry the batch.
      throw new Error(`${unexplained} clicks were neither charged nor found charged`);
    }
    holders = holders.concat(found.rows);
  }
  // One dead letter per click: an id charged on the day before and on the day after its own (two
  // days apart, both stand) has a holder on each.
  const lettered = new Set<string>();
  for (const holder of holders) {
    const click = clickOf.get(holder.event_id);
    if (!click || lettered.has(holder.event_id)) continue;
    if (holder.charged_advertiser_id === String(click.event.advertiser_id) && holder.charged_campaign_id === String(click.event.campaign_id)) {
      continue; // a concurrent copy of the same click: charged once, by the other batch
    }
    lettered.add(holder.event_id);
    deadLetters.push(
      deadLetterFor(
        conflictError(holder.event_id, holder.charged_advertiser_id ?? '?', holder.charged_campaign_id ?? '?', 'already charged'),
        click.coordinates,
        click.rawValue,
      ),
    );
  }
}

/** The `daily_budget:{id}` mirrors this handler instance wrote, with when: unchanged ones are not rewritten on every batch. */
class BudgetMirrors {
  private readonly written = new Map<number, { readonly value: string; readonly at: number }>();

  /** True when the mirror of `campaignId` must be (re)written with `value` at `now`. */
  due(campaignId: number, value: string, now: number): boolean {
    const last = this.written.get(campaignId);
    return !last || last.value !== value || now - last.at >= BUDGET_MIRROR_REFRESH_MS || now < last.at;
  }

  /** Records mirrors Redis acknowledged. */
  wrote(mirrors: ReadonlyArray<{ readonly campaignId: number; readonly value: string }>, now: number): void {
    for (const { campaignId, value } of mirrors) this.written.set(campaignId, { value, at: now });
  }
}

/**
 * Brings the Redis mirrors (`daily_budget:{id}`, `daily_spend:{id}:{day}`) in line with the
 * committed state, for readers outside the money path (ad-server pacing, dashboards): every
 * spend of the batch, and each budget when it changed or its mirror is due again
 * (`BUDGET_MIRROR_REFRESH_MS`). Never read back by a worker and never needed for correctness.
 */
async function refreshMirrors(
  deps: WorkerDeps,
  campaigns: BatchCharge['campaigns'],
  charge: ChargeResult,
  budgetMirrors: BudgetMirrors,
  now: number,
): Promise<void> {
  const entries: CacheEntry[] = [];
  const budgets: Array<{ campaignId: number; value: string }> = [];
  for (const [id, campaign] of campaigns) {
    if (campaign.daily_budget != null && budgetMirrors.due(id, campaign.daily_budget, now)) {
      budgets.push({ campaignId: id, value: campaign.daily_budget });
      entries.push({ key: dailyBudgetKey(id), value: campaign.daily_budget, ttlSeconds: MIRROR_TTL_SECONDS });
    }
  }
  for (const day of charge.spend) {
    entries.push({ key: dailySpendKey(day.campaign_id, day.spend_date), value: day.spend, ttlSeconds: MIRROR_TTL_SECONDS });
  }
  if (await deps.cache.setMany(entries)) budgetMirrors.wrote(budgets, now);
}
