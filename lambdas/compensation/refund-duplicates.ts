import { compensationEventContract } from '../../contracts';
import { deadLetterFor, recordDeadLetters } from '../shared/dead-letter';
import { withTransaction } from '../shared/db';
import { KafkaRecordError } from '../shared/errors';
import { decodeKafkaEvent } from '../shared/kafka-event';
import { checkInformationalAmount } from '../shared/money';
import { emptySummary, InvocationSummary, instrumentInvocation } from '../shared/observability';
import { checkEventTime, parseContractRecord, sortBatch } from '../shared/records';
import { watchCache, WorkerDeps } from '../shared/runtime';
import { dailySpendKey } from '../click-balance/charge-clicks';

/** Name of the handler in logs, metrics and `dead_letters.handler`. */
export const COMPENSATION_HANDLER = 'compensation';

const SPEND_MIRROR_TTL_SECONDS = 2 * 24 * 60 * 60;

interface RefundResult {
  refunded: number;
  voided: number;
  logged: number;
  spend: Array<{ campaign_id: number; spend_date: string; spend: string }>;
}

/**
 * Locks every advertiser whose money a compensation may move, in id order (the order
 * click-balance uses): the advertiser named by the event and the one actually charged for the
 * click. Holding these locks, the next statement sees every committed charge of those clicks,
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
 * All compensations of a batch in one statement. Each new compensation_id is logged once; the
 * click it names is refunded exactly what its DEDUCT row charged, or voided if it has not been
 * charged yet, or left alone if another compensation already settled it.
 */
const REFUND_DUPLICATES = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                       $8::bigint[], $9::bigint[], $10::numeric[])
    AS t(compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
         duplicate_ms, original_ms, quoted_refund_amount)
),
fresh AS (
  SELECT i.* FROM input i
   WHERE NOT EXISTS (SELECT 1 FROM duplicate_clicks d WHERE d.compensation_id = i.compensation_id)
),
decided AS (
  SELECT f.*, d.amount AS charged_amount, d.advertiser_id AS charged_advertiser_id,
         d.campaign_id AS charged_campaign_id, d.spend_date,
         CASE
           WHEN EXISTS (SELECT 1 FROM ad_balance_histories r WHERE r.event_id = f.duplicate_event_id AND r.type = 'REFUND')
             OR EXISTS (SELECT 1 FROM click_voids v WHERE v.event_id = f.duplicate_event_id)
             OR row_number() OVER (PARTITION BY f.duplicate_event_id ORDER BY f.compensation_id) > 1
             THEN 'ALREADY_SETTLED'
           WHEN d.amount IS NOT NULL THEN 'REFUNDED'
           ELSE 'VOIDED'
         END AS outcome
    FROM fresh f
    LEFT JOIN ad_balance_histories d ON d.event_id = f.duplicate_event_id AND d.type = 'DEDUCT'
),
logged AS (
  INSERT INTO duplicate_clicks (compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id,
                                ad_id, device_id, duplicate_event_ts, original_event_ts, quoted_refund_amount,
                                outcome, refunded_amount)
  SELECT compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
         to_timestamp(duplicate_ms / 1000.0), to_timestamp(original_ms / 1000.0), quoted_refund_amount,
         outcome, CASE WHEN outcome = 'REFUNDED' THEN charged_amount ELSE 0 END
    FROM decided
  ON CONFLICT (compensation_id) DO NOTHING
  RETURNING compensation_id
),
refunds AS (
  INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts, compensation_id)
  SELECT d.duplicate_event_id, 'REFUND', d.charged_amount, d.charged_advertiser_id, d.charged_campaign_id, d.spend_date,
         to_timestamp(d.duplicate_ms / 1000.0), d.compensation_id
    FROM decided d JOIN logged l USING (compensation_id)
   WHERE d.outcome = 'REFUNDED'
  ON CONFLICT ON CONSTRAINT ad_balance_histories_event_type_key DO NOTHING
  RETURNING amount, advertiser_id, campaign_id, spend_date
),
voids AS (
  INSERT INTO click_voids (event_id, compensation_id, advertiser_id, campaign_id)
  SELECT d.duplicate_event_id, d.compensation_id, d.advertiser_id, d.campaign_id
    FROM decided d JOIN logged l USING (compensation_id)
   WHERE d.outcome = 'VOIDED'
  ON CONFLICT (event_id) DO NOTHING
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
  UPDATE campaign_daily_spend s
     SET spend = s.spend - r.total, clicks = s.clicks - r.clicks, updated_at = now()
    FROM (SELECT campaign_id, spend_date, sum(amount) AS total, count(*) AS clicks
            FROM refunds GROUP BY campaign_id, spend_date) r
   WHERE s.campaign_id = r.campaign_id AND s.spend_date = r.spend_date
  RETURNING s.campaign_id, s.spend_date, s.spend
)
SELECT (SELECT count(*) FROM refunds)::int AS refunded,
       (SELECT count(*) FROM voids)::int AS voided,
       (SELECT count(*) FROM logged)::int AS logged,
       (SELECT count(*) FROM credits)::int AS advertisers_credited,
       (SELECT coalesce(json_agg(json_build_object(
           'campaign_id', campaign_id, 'spend_date', spend_date::text, 'spend', spend::text)), '[]'::json)
          FROM restored) AS spend`;

/**
 * Builds the compensation handler (`compensation-events`, group `compensation-processor`):
 * refunds duplicate clicks exactly once, by what was charged, whatever the arrival order of the
 * click and its compensation.
 */
export function createCompensationHandler(deps: WorkerDeps): (event: unknown) => Promise<InvocationSummary> {
  return async (event) => {
    const summary = emptySummary(COMPENSATION_HANDLER);
    watchCache(deps, summary);
    return instrumentInvocation(deps.observability, summary, 'batch failed; nothing applied, Lambda will redeliver it', () =>
      refundDuplicates(deps, event, deps.now?.() ?? Date.now(), summary),
    );
  };
}

async function refundDuplicates(deps: WorkerDeps, event: unknown, now: number, summary: InvocationSummary): Promise<void> {
  const records = decodeKafkaEvent(event);
  summary.records = records.length;
  const { accepted: compensations, deadLetters } = sortBatch(
    records,
    (record) => {
      const compensation = parseContractRecord(compensationEventContract, record.value);
      checkEventTime('duplicate_event_ts', compensation.duplicate_event_ts, now);
      checkEventTime('original_event_ts', compensation.original_event_ts, now);
      if (compensation.refund_amount != null) {
        const problem = checkInformationalAmount(compensation.refund_amount);
        if (problem) throw new KafkaRecordError('ABSURD_AMOUNT', `refund_amount ${problem}`);
      }
      return compensation;
    },
    (compensation) => compensation.compensation_id,
  );
  if (compensations.length === 0 && deadLetters.length === 0) {
    summary.skipped = summary.records;
    return;
  }

  const { result, roundTrips } = await withTransaction(deps.pool, 'refunding duplicate clicks', async (client) => {
    let refund: RefundResult = { refunded: 0, voided: 0, logged: 0, spend: [] };
    if (compensations.length > 0) {
      const campaigns = await client.query<{ campaign_id: string; advertiser_id: string }>(LOCK_AND_LOAD_CAMPAIGNS, [
        [...new Set(compensations.map((c) => c.event.advertiser_id))],
        [...new Set(compensations.map((c) => c.event.campaign_id))],
        compensations.map((c) => c.event.duplicate_event_id),
      ]);
      const ownerOf = new Map(campaigns.rows.map((row) => [Number(row.campaign_id), row.advertiser_id]));
      const valid = compensations.filter((c) => {
        const owner = ownerOf.get(c.event.campaign_id);
        if (owner === String(c.event.advertiser_id)) return true;
        deadLetters.push(
          deadLetterFor(
            owner === undefined
              ? new KafkaRecordError('UNKNOWN_CAMPAIGN', `campaign ${c.event.campaign_id} does not exist`)
              : new KafkaRecordError('ADVERTISER_MISMATCH', `campaign ${c.event.campaign_id} belongs to advertiser ${owner}, not ${c.event.advertiser_id}`),
            c.coordinates,
            c.rawValue,
          ),
        );
        return false;
      });
      if (valid.length > 0) {
        const e = valid.map((c) => c.event);
        const rows = await client.query<RefundResult>(REFUND_DUPLICATES, [
          e.map((c) => c.compensation_id),
          e.map((c) => c.duplicate_event_id),
          e.map((c) => c.original_event_id),
          e.map((c) => c.advertiser_id),
          e.map((c) => c.campaign_id),
          e.map((c) => c.ad_id),
          e.map((c) => c.device_id),
          e.map((c) => c.duplicate_event_ts),
          e.map((c) => c.original_event_ts),
          e.map((c) => c.refund_amount ?? null),
        ]);
        refund = rows.rows[0];
      }
    }
    await recordDeadLetters(client, COMPENSATION_HANDLER, deadLetters);
    return refund;
  });

  summary.dbRoundTrips = roundTrips;
  summary.refunded = result.refunded;
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
