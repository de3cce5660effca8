import { CompensationEvent, compensationEventContract } from '../../contracts';
import { DeadLetter, deadLetterFor, recordDeadLetters } from '../shared/dead-letter';
import { withTransaction } from '../shared/db';
import { KafkaRecordError } from '../shared/errors';
import { decodeKafkaEvent } from '../shared/kafka-event';
import { addAmounts } from '../shared/money';
import { emptySummary, InvocationSummary, instrumentInvocation, SummaryCounter } from '../shared/observability';
import { AcceptedRecord, checkEventTime, checkHistoryKept, parseContractRecord, sortBatch } from '../shared/records';
import { watchCache, WorkerDeps } from '../shared/runtime';
import { dailySpendKey } from '../click-balance/charge-clicks';

/** Name of the handler in logs, metrics and `dead_letters.handler`. */
export const COMPENSATION_HANDLER = 'compensation';

/** Metrics compensation emits after each invocation (and DuplicateClicks, derived from them). */
export const COMPENSATION_METRICS: readonly SummaryCounter[] = ['records', 'skipped', 'deadLettered', 'refunded', 'voided', 'cacheFailures'];

const SPEND_MIRROR_TTL_SECONDS = 2 * 24 * 60 * 60;

/**
 * The quote is the duplicate click's own `actual_price`, copied as text by Flink: click-balance
 * drops an unusable one and charges the click, so here an unusable one is dropped (logged null)
 * and the duplicate refunded; the amount refunded never depends on it.
 */
const INFORMATIONAL_FIELDS = ['refund_amount'] as const;

interface RefundResult {
  refunded: number;
  /** Sum of the inserted REFUND amounts (NUMERIC text). */
  refunded_amount: string;
  voided: number;
  logged: number;
  spend: Array<{ campaign_id: number; spend_date: string; spend: string }>;
  /** Compensations naming another advertiser or campaign than the click's DEDUCT. */
  mismatched: Array<{ compensation_id: string; advertiser_id: string; campaign_id: string; charged_advertiser_id: string; charged_campaign_id: string }>;
}

type Compensation = AcceptedRecord<CompensationEvent>;

/**
 * Locks every advertiser whose money a compensation may move, in id order (the order
 * click-balance uses): the advertiser actually charged for the click, and the one the event
 * names (the click's advertiser too when the compensation is right and the click not charged
 * yet). Holding these locks, the next statement sees every committed charge of those clicks,
 * so "charged → refund" and "not charged yet → void" cannot both miss each other.
 */
const LOCK_AND_LOAD_CAMPAIGNS = `
WITH locked AS (
  SELECT advertiser_id FROM advertisers
   WHERE advertiser_id = ANY($1::bigint[])
      OR advertiser_id IN (SELECT advertiser_id FROM ad_balance_histories
                            WHERE event_id = ANY($3::text[]) AND type = 'DEDUCT')
   ORDER BY advertiser_id
   FOR UPDATE
)
SELECT c.campaign_id, c.advertiser_id
  FROM campaigns c
 WHERE c.campaign_id = ANY($2::bigint[])
   -- Referencing the CTE makes it run, locking in id order, before this row set is returned.
   AND (SELECT count(*) FROM locked) >= 0`;

/**
 * All compensations of a batch (or of one wave of it) in one statement. A compensation whose
 * advertiser or campaign differs from the DEDUCT of the click it names is returned as
 * mismatched and touches nothing (not even the log, so the correct compensation with the same
 * id still applies). Each other new (compensation_id, advertiser, campaign) is logged once; the click it names is
 * refunded exactly what its DEDUCT row charged, or voided (for its advertiser and campaign
 * only) if it has not been charged yet, or left alone if another compensation already settled
 * it, or kept if its named original was already refunded or voided as a duplicate of it (the
 * same pair seen in the other order: refunding both would leave the group uncharged), directly
 * or through same-millisecond refunds (a ← b ← c by v1's arrival order, then c of a by v2's ids:
 * c keeps the group's charge). Only such a cycle: in a chain v ← x ← w, x is still refunded, and
 * v keeps the one charge. Inserts go in key order, so concurrent batches wait on each other in
 * one order.
 */
const REFUND_DUPLICATES = `
WITH RECURSIVE input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                       $8::bigint[], $9::bigint[], $10::numeric[])
    AS t(compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
         duplicate_ms, original_ms, quoted_refund_amount)
),
days AS (
  -- The budget days ($11: BUDGET_TIME_ZONE) of the duplicate and of the original as the
  -- compensation names them: the partition key of the log and of the voids. The lookups by the
  -- keys without the day look in that day and the day before and after (partition pruning).
  SELECT i.*, (to_timestamp(i.duplicate_ms / 1000.0) AT TIME ZONE $11)::date AS named_day,
         (to_timestamp(i.original_ms / 1000.0) AT TIME ZONE $11)::date AS original_day
    FROM input i
),
fresh AS (
  SELECT i.* FROM days i
   WHERE NOT EXISTS (SELECT 1 FROM duplicate_clicks d WHERE d.compensation_id = i.compensation_id
                        AND d.advertiser_id = i.advertiser_id AND d.campaign_id = i.campaign_id
                        AND d.spend_date BETWEEN i.named_day - 1 AND i.named_day + 1)
),
matched AS (
  SELECT f.*, d.amount AS charged_amount, d.advertiser_id AS charged_advertiser_id,
         d.campaign_id AS charged_campaign_id, d.spend_date,
         d.event_id IS NOT NULL AND (d.advertiser_id <> f.advertiser_id OR d.campaign_id <> f.campaign_id) AS mismatch
    FROM fresh f
    LEFT JOIN ad_balance_histories d ON d.event_id = f.duplicate_event_id AND d.type = 'DEDUCT'
),
same_ms_refunds AS (
  -- From the click each compensation names as original, along the refunds and voids of
  -- same-millisecond duplicates to their originals (a refunded as a duplicate of b, b of c, ...):
  -- reaching the compensation's own duplicate closes a cycle, every other click of which is
  -- refunded already. Only same-millisecond links: v1 and v2 order only those differently, a
  -- link across milliseconds points to an earlier click in both, so it can close no cycle (and a
  -- long chain of clicks minutes apart is never walked). UNION stops at a node seen before.
  SELECT m.compensation_id, m.advertiser_id, m.campaign_id, m.duplicate_event_id, m.named_day, m.original_event_id AS node
    FROM matched m
   WHERE NOT m.mismatch
  UNION
  SELECT w.compensation_id, w.advertiser_id, w.campaign_id, w.duplicate_event_id, w.named_day, p.original_event_id
    FROM same_ms_refunds w
    JOIN duplicate_clicks p
      ON p.duplicate_event_id = w.node AND p.outcome IN ('REFUNDED', 'VOIDED')
     AND p.advertiser_id = w.advertiser_id AND p.campaign_id = w.campaign_id
     AND p.duplicate_event_ts = p.original_event_ts
     AND p.spend_date BETWEEN w.named_day - 1 AND w.named_day + 1
   WHERE w.node <> w.duplicate_event_id
),
decided AS (
  SELECT m.*,
         CASE
           WHEN EXISTS (SELECT 1 FROM ad_balance_histories r WHERE r.event_id = m.duplicate_event_id AND r.type = 'REFUND')
             OR EXISTS (SELECT 1 FROM click_voids v WHERE v.event_id = m.duplicate_event_id
                           AND v.advertiser_id = m.advertiser_id AND v.campaign_id = m.campaign_id
                           AND v.spend_date BETWEEN m.named_day - 1 AND m.named_day + 1)
             OR row_number() OVER (PARTITION BY m.duplicate_event_id, m.advertiser_id, m.campaign_id ORDER BY m.compensation_id) > 1
             THEN 'ALREADY_SETTLED'
           WHEN EXISTS (SELECT 1 FROM duplicate_clicks p
                         WHERE p.original_event_id = m.duplicate_event_id AND p.duplicate_event_id = m.original_event_id
                           AND p.outcome IN ('REFUNDED', 'VOIDED')
                           AND p.advertiser_id = m.advertiser_id AND p.campaign_id = m.campaign_id
                           AND p.spend_date BETWEEN m.original_day - 1 AND m.original_day + 1)
             OR EXISTS (SELECT 1 FROM same_ms_refunds w
                         WHERE w.compensation_id = m.compensation_id AND w.advertiser_id = m.advertiser_id
                           AND w.campaign_id = m.campaign_id AND w.node = m.duplicate_event_id)
             THEN 'ORIGINAL_KEPT'
           WHEN m.charged_amount IS NOT NULL THEN 'REFUNDED'
           ELSE 'VOIDED'
         END AS outcome
    FROM matched m
   WHERE NOT m.mismatch
),
logged AS (
  INSERT INTO duplicate_clicks (compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id,
                                ad_id, device_id, duplicate_event_ts, original_event_ts, quoted_refund_amount,
                                outcome, refunded_amount, spend_date)
  SELECT compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
         to_timestamp(duplicate_ms / 1000.0), to_timestamp(original_ms / 1000.0), quoted_refund_amount,
         outcome, CASE WHEN outcome = 'REFUNDED' THEN charged_amount ELSE 0 END, named_day
    FROM decided
   ORDER BY compensation_id, advertiser_id, campaign_id
  ON CONFLICT ON CONSTRAINT duplicate_clicks_pkey DO NOTHING
  RETURNING compensation_id, advertiser_id, campaign_id
),
refunds AS (
  INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts, compensation_id)
  SELECT d.duplicate_event_id, 'REFUND', d.charged_amount, d.charged_advertiser_id, d.charged_campaign_id, d.spend_date,
         to_timestamp(d.duplicate_ms / 1000.0), d.compensation_id
    FROM decided d JOIN logged l USING (compensation_id, advertiser_id, campaign_id)
   WHERE d.outcome = 'REFUNDED'
   ORDER BY d.duplicate_event_id
  ON CONFLICT ON CONSTRAINT ad_balance_histories_event_type_key DO NOTHING
  RETURNING amount, advertiser_id, campaign_id, spend_date
),
voids AS (
  INSERT INTO click_voids (event_id, compensation_id, advertiser_id, campaign_id, spend_date)
  SELECT d.duplicate_event_id, d.compensation_id, d.advertiser_id, d.campaign_id, d.named_day
    FROM decided d JOIN logged l USING (compensation_id, advertiser_id, campaign_id)
   WHERE d.outcome = 'VOIDED'
   ORDER BY d.duplicate_event_id, d.advertiser_id, d.campaign_id
  ON CONFLICT ON CONSTRAINT click_voids_pkey DO NOTHING
  RETURNING event_id
),
credits AS (
  UPDATE advertisers a
     SET balance = a.balance + r.total, updated_at = now()
    FROM (SELECT advertiser_id, sum(amount) AS total FROM refunds GROUP BY advertiser_id) r
   WHERE a.advertiser_id = r.advertiser_id
  RETURNING a.advertiser_id
),
restored AS (
  -- A refund restores the day's spend but does not resume a campaign paused for its budget:
  -- it stays paused until the budget-reset (see lambdas/README.md, "Budgets").
  UPDATE campaign_daily_spend s
     SET spend = s.spend - r.total, clicks = s.clicks - r.clicks, updated_at = now()
    FROM (SELECT campaign_id, spend_date, sum(amount) AS total, count(*) AS clicks
            FROM refunds GROUP BY campaign_id, spend_date) r
   WHERE s.campaign_id = r.campaign_id AND s.spend_date = r.spend_date
  RETURNING s.campaign_id, s.spend_date, s.spend
)
SELECT (SELECT count(*) FROM refunds)::int AS refunded,
       (SELECT coalesce(sum(amount), 0) FROM refunds)::text AS refunded_amount,
       (SELECT count(*) FROM voids)::int AS voided,
       (SELECT count(*) FROM logged)::int AS logged,
       (SELECT count(*) FROM credits)::int AS advertisers_credited,
       (SELECT coalesce(json_agg(json_build_object(
           'campaign_id', campaign_id, 'spend_date', spend_date::text, 'spend', spend::text)), '[]'::json)
          FROM restored) AS spend,
       (SELECT coalesce(json_agg(json_build_object(
           'compensation_id', compensation_id, 'advertiser_id', advertiser_id::text, 'campaign_id', campaign_id::text,
           'charged_advertiser_id', charged_advertiser_id::text,
           'charged_campaign_id', charged_campaign_id::text)), '[]'::json)
          FROM matched WHERE mismatch) AS mismatched`;

/**
 * Builds the compensation handler (`compensation-events`, group `compensation-processor`):
 * refunds duplicate clicks exactly once, by what was charged, whatever the arrival order of the
 * click and its compensation, and only for the click's own advertiser and campaign.
 */
export function createCompensationHandler(deps: WorkerDeps): (event: unknown) => Promise<InvocationSummary> {
  return async (event) => {
    const summary = emptySummary(COMPENSATION_HANDLER, COMPENSATION_METRICS);
    watchCache(deps, summary);
    return instrumentInvocation(deps.observability, summary, 'batch failed; nothing applied, Lambda will redeliver it', () =>
      refundDuplicates(deps, event, deps.now?.() ?? Date.now(), summary),
    );
  };
}

/**
 * Splits a batch into waves applied one statement after the other, so that a compensation
 * naming as its duplicate the original of another one in the batch (the same pair in both
 * orders) sees the other's outcome. Almost every batch is a single wave.
 */
export function compensationWaves<T extends { duplicate_event_id: string; original_event_id: string }>(events: readonly T[]): T[][] {
  const waves: T[][] = [];
  const lastWaveAsOriginal = new Map<string, number>();
  const lastWaveAsDuplicate = new Map<string, number>();
  for (const event of events) {
    const wave = Math.max((lastWaveAsOriginal.get(event.duplicate_event_id) ?? -1) + 1, (lastWaveAsDuplicate.get(event.original_event_id) ?? -1) + 1, 0);
    (waves[wave] ??= []).push(event);
    lastWaveAsOriginal.set(event.original_event_id, Math.max(wave, lastWaveAsOriginal.get(event.original_event_id) ?? -1));
    lastWaveAsDuplicate.set(event.duplicate_event_id, Math.max(wave, lastWaveAsDuplicate.get(event.duplicate_event_id) ?? -1));
  }
  return waves;
}

async function refundDuplicates(deps: WorkerDeps, event: unknown, now: number, summary: InvocationSummary): Promise<void> {
  const records = decodeKafkaEvent(event);
  summary.records = records.length;
  // No de-duplication here: a bad copy of a compensation must not hide a good copy of it.
  const { accepted: compensations, deadLetters } = sortBatch(records, (record) => {
    const compensation = parseContractRecord(compensationEventContract, record.value, { informational: INFORMATIONAL_FIELDS });
    checkEventTime('duplicate_event_ts', compensation.duplicate_event_ts, now);
    checkEventTime('original_event_ts', compensation.original_event_ts, now);
    checkHistoryKept('duplicate_event_ts', compensation.duplicate_event_ts, deps.historySince, deps.budgetTimeZone);
    // duplicate-clicks v2 named a click redelivered to ad-events (or re-stamped) a duplicate of
    // itself (v3 does not; v2's records stay in the topic): its one charge is the click's own.
    // Rejected before the copies are deduplicated, so it neither refunds that charge nor hides
    // the click's real compensation (same id).
    if (compensation.duplicate_event_id === compensation.original_event_id) {
      throw new KafkaRecordError(
        'SELF_DUPLICATE',
        `compensation names click ${JSON.stringify(compensation.duplicate_event_id)} as a duplicate of itself; nothing refunded`,
      );
    }
    return compensation;
  });
  if (compensations.length === 0 && deadLetters.length === 0) {
    summary.skipped = summary.records;
    summary.refundedAmount = '0';
    return;
  }

  const { result, roundTrips } = await withTransaction(deps.pool, 'refunding duplicate clicks', async (client) => {
    const refund: RefundResult = { refunded: 0, refunded_amount: '0', voided: 0, logged: 0, spend: [], mismatched: [] };
    if (compensations.length > 0) {
      const campaigns = await client.query<{ campaign_id: string; advertiser_id: string }>(LOCK_AND_LOAD_CAMPAIGNS, [
        [...new Set(compensations.map((c) => c.event.advertiser_id))],
        [...new Set(compensations.map((c) => c.event.campaign_id))],
        compensations.map((c) => c.event.duplicate_event_id),
      ]);
      const ownerOf = new Map(campaigns.rows.map((row) => [Number(row.campaign_id), row.advertiser_id]));
      const valid = firstValidCopies(compensations, ownerOf, deadLetters);
      const byKey = new Map(valid.map((c) => [JSON.stringify([c.event.compensation_id, String(c.event.advertiser_id), String(c.event.campaign_id)]), c]));
      for (const wave of compensationWaves(valid.map((c) => c.event))) {
        const rows = await client.query<RefundResult>(REFUND_DUPLICATES, [
          wave.map((c) => c.compensation_id),
          wave.map((c) => c.duplicate_event_id),
          wave.map((c) => c.original_event_id),
          wave.map((c) => c.advertiser_id),
          wave.map((c) => c.campaign_id),
          wave.map((c) => c.ad_id),
          wave.map((c) => c.device_id),
          wave.map((c) => c.duplicate_event_ts),
          wave.map((c) => c.original_event_ts),
          wave.map((c) => c.refund_amount ?? null),
          deps.budgetTimeZone,
        ]);
        const step = rows.rows[0];
        refund.refunded += step.refunded;
        refund.refunded_amount = addAmounts(refund.refunded_amount, step.refunded_amount);
        refund.voided += step.voided;
        refund.logged += step.logged;
        refund.spend.push(...step.spend);
        refund.mismatched.push(...step.mismatched);
      }
      for (const mismatch of refund.mismatched) {
        const compensation = byKey.get(JSON.stringify([mismatch.compensation_id, mismatch.advertiser_id, mismatch.campaign_id]));
        if (!compensation) continue;
        const { advertiser_id: advertiserId, campaign_id: campaignId, duplicate_event_id: eventId } = compensation.event;
        deadLetters.push(
          deadLetterFor(
            new KafkaRecordError(
              'CLICK_MISMATCH',
              `compensation names advertiser ${advertiserId} campaign ${campaignId}, but click ${JSON.stringify(eventId)} was charged to advertiser ${mismatch.charged_advertiser_id} campaign ${mismatch.charged_campaign_id}; nothing refunded`,
            ),
            compensation.coordinates,
            compensation.rawValue,
          ),
        );
      }
    }
    await recordDeadLetters(client, COMPENSATION_HANDLER, deadLetters, deps.budgetTimeZone);
    return refund;
  });

  summary.dbRoundTrips = roundTrips;
  summary.refunded = result.refunded;
  summary.refundedAmount = result.refunded_amount;
  summary.voided = result.voided;
  summary.deadLettered = deadLetters.length;
  summary.skipped = summary.records - summary.refunded - summary.voided - summary.deadLettered;

  await deps.cache.setMany(
    result.spend.map((day) => ({
      key: dailySpendKey(day.campaign_id, day.spend_date),
      value: day.spend,
      ttlSeconds: SPEND_MIRROR_TTL_SECONDS,
    })),
  );
}

/**
 * Keeps compensations whose campaign exists and belongs to the advertiser they name, first copy
 * per (compensation_id, advertiser, campaign) among those; the others become dead letters (a
 * copy naming another click under the same key included). Copies naming other advertisers or
 * campaigns are all kept: the statement decides against the click which one, if any, applies.
 */
function firstValidCopies(compensations: readonly Compensation[], ownerOf: ReadonlyMap<number, string>, deadLetters: DeadLetter[]): Compensation[] {
  const kept = new Map<string, Compensation>();
  for (const c of compensations) {
    const reject = (error: KafkaRecordError) => deadLetters.push(deadLetterFor(error, c.coordinates, c.rawValue));
    const owner = ownerOf.get(c.event.campaign_id);
    if (owner === undefined) {
      reject(new KafkaRecordError('UNKNOWN_CAMPAIGN', `campaign ${c.event.campaign_id} does not exist`));
      continue;
    }
    if (owner !== String(c.event.advertiser_id)) {
      reject(new KafkaRecordError('ADVERTISER_MISMATCH', `campaign ${c.event.campaign_id} belongs to advertiser ${owner}, not ${c.event.advertiser_id}`));
      continue;
    }
    const key = JSON.stringify([c.event.compensation_id, c.event.advertiser_id, c.event.campaign_id]);
    const first = kept.get(key);
    if (!first) {
      kept.set(key, c);
      continue;
    }
    if (first.event.duplicate_event_id !== c.event.duplicate_event_id) {
      reject(
        new KafkaRecordError(
          'EVENT_ID_CONFLICT',
          `compensation_id ${JSON.stringify(c.event.compensation_id)} already names click ${JSON.stringify(first.event.duplicate_event_id)} in this batch`,
        ),
      );
    }
  }
  return [...kept.values()];
}
