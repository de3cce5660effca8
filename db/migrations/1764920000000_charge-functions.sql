-- Up Migration

-- Charging in one round trip (issue 14). The charge statement of click-balance moves into
-- adstream_charge_priced_clicks(), so its plan is cached by the session instead of being planned
-- on every batch; adstream_charge_clicks() is the whole charge of a clean batch in one call: it
-- locks the advertisers, prices every click at its campaign's CPC, charges, and (called outside
-- an explicit transaction) commits, all in one round trip. It refuses, with SQLSTATE AS001 and
-- nothing applied, any batch it cannot account for entirely (an unknown campaign, a campaign of
-- another advertiser, an unusable CPC, an event id charged to another click or by a concurrent
-- batch after its snapshot): the handler then charges that batch the long way (lock, price in
-- TypeScript, adstream_charge_priced_clicks(), dead letters, COMMIT), which records a dead letter
-- with its reason for each of those clicks.

-- One batch of priced clicks: $1 event ids, $2 campaigns, $3 advertisers, $4 amounts (the
-- database CPC of each click's campaign), $5 event times (epoch ms), $6 the budget time zone, $7
-- the current budget day, $8/$9 the first and last budget day of the batch. The caller holds the
-- locks of the advertisers (FOR UPDATE, in id order) and took them in an earlier statement, so
-- this statement's snapshot sees every committed charge, refund and void of those clicks.
--
-- Set-based so its cost does not grow in round trips with the batch: DEDUCT rows keyed by
-- event_id (a replay inserts nothing), inserted in event_id order (so two batches racing for the
-- same ids wait on each other in one order and cannot deadlock), voided clicks skipped (a void
-- applies only to the click of its advertiser and campaign), balances decreased by exactly the
-- inserted amounts, day spend upserted, the 90 % warning evaluated once per budget it is reached
-- for, every campaign of the batch whose spend on the current budget day has reached its budget
-- paused if it is ACTIVE, outbox rows written (the CAMPAIGN_PAUSED columns are those of
-- campaignStatusOutboxColumns() in lambdas/shared/outbox.ts; a test compares them).
--
-- Returns {charged, voided, outbox_written, advertisers_debited, spend: [{campaign_id,
-- spend_date, spend, daily_budget}], unaccounted: [{event_id, charged_advertiser_id,
-- charged_campaign_id}]}.
--
-- Its plan is made once per session and kept (force_generic_plan), so its shape must not depend
-- on how big the tables were at that moment: a plan made on the empty partition of a new day
-- would otherwise sort and merge the whole partition on every batch once it holds millions of
-- rows. Without sequential scans and merge joins, every lookup of the ledger, the voids, the
-- campaigns and the day spend is an index probe per row of the batch, whatever the table size.
CREATE FUNCTION adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)
RETURNS json
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_mergejoin = off
AS $fn$
DECLARE
  result json;
BEGIN
  -- One lock per event id (transaction advisory lock on its 64-bit hash), in key order, after the
  -- advertiser locks and before the charge's snapshot: two batches carrying the same event id
  -- on other days and other advertisers (so neither the unique key, which includes the day, nor
  -- an advertiser lock meets them) charge it one after the other, and the second sees the
  -- first's DEDUCT in the day before or after. Key order cannot deadlock: every charge takes
  -- these locks last, in the same order.
  PERFORM pg_advisory_xact_lock(k.key)
     FROM (SELECT DISTINCT hashtextextended(e, 0) AS key FROM unnest($1) AS e ORDER BY 1 OFFSET 0) k;
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
                          -- Run-time pruning per click: only the partitions of those two days.
                          AND o.spend_date IN (i.spend_date - 1, i.spend_date + 1)
                        -- OFFSET 0 keeps this a probe per click (never a join over whole partitions).
                        OFFSET 0)
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
      LEFT JOIN LATERAL (
        SELECT d.event_id, d.advertiser_id, d.campaign_id FROM ad_balance_histories d
         WHERE d.event_id = i.event_id AND d.type = 'DEDUCT'
           AND d.spend_date BETWEEN $8::date - 2 AND $9::date + 2 AND d.spend_date BETWEEN i.spend_date - 1 AND i.spend_date + 1
        OFFSET 0
      ) d ON true
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
    -- spend on the current budget day after this statement. The table is read (snapshot before
    -- this statement) only for a campaign this statement did not charge today.
    SELECT s.campaign_id, s.spend FROM spend s WHERE s.spend_date = $7::date
    UNION ALL
    SELECT b.campaign_id, COALESCE(d.spend, 0)
      FROM (SELECT DISTINCT campaign_id FROM input) b
      LEFT JOIN campaign_daily_spend d ON d.campaign_id = b.campaign_id AND d.spend_date = $7::date
     WHERE NOT EXISTS (SELECT 1 FROM spend s WHERE s.campaign_id = b.campaign_id AND s.spend_date = $7::date)
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
    SELECT 'CAMPAIGN_PAUSED',
           'CAMPAIGN_PAUSED:' || p.campaign_id || ':' || p.spend_date || ':' || p.status_seq,
           jsonb_build_object(
             'event_id', 'campaign-paused-' || p.campaign_id || '-' || to_char(p.spend_date, 'YYYYMMDD') || '-' || p.status_seq,
             'event_type', 'CAMPAIGN_PAUSED',
             'event_ts', floor(extract(epoch FROM now()) * 1000)::bigint,
             'campaign_id', p.campaign_id, 'advertiser_id', p.advertiser_id, 'status', 'PAUSED',
             'product_id', p.product_id, 'placement', p.placement, 'category', p.category,
             'bid_price', round(p.bid_price, 2)::text, 'reason', 'BUDGET_EXHAUSTED')
      FROM paused p
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING kind
  )
  SELECT json_build_object(
           'charged', (SELECT count(*) FROM charged),
           'charged_amount', (SELECT coalesce(sum(amount), 0) FROM charged)::text,
           'voided', (SELECT count(*) FROM voided),
           'outbox_written', (SELECT count(*) FROM outbox_rows),
           'advertisers_debited', (SELECT count(*) FROM debits),
           'spend', (SELECT coalesce(json_agg(json_build_object(
               'campaign_id', s.campaign_id, 'spend_date', s.spend_date::text,
               'spend', s.spend::text, 'daily_budget', s.daily_budget::text)), '[]'::json) FROM spend s),
           'unaccounted', (SELECT coalesce(json_agg(u), '[]'::json) FROM unaccounted u))
    INTO result
  ;
  RETURN result;
END
$fn$;

-- The charge of a clean batch in one call: $1 event ids (one copy per id), $2 campaigns, $3
-- advertisers, $4 event times (epoch ms), $5 the budget time zone, $6 the current budget day,
-- $7/$8 the first and last budget day of the batch. Every statement of a VOLATILE function takes
-- a new snapshot, so the charge sees everything committed before the locks were granted.
-- Returns {charge: <adstream_charge_priced_clicks()>, campaigns: [{campaign_id, daily_budget}]}.
CREATE FUNCTION adstream_charge_clicks(text[], bigint[], bigint[], bigint[], text, date, date, date)
RETURNS json
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_mergejoin = off
AS $fn$
DECLARE
  amounts numeric[];
  loaded json;
  charge json;
BEGIN
  -- Every writer of an advertiser's money (click-balance, compensation, budget-reset) locks the
  -- advertisers in id order before it reads anything.
  PERFORM 1 FROM advertisers
    WHERE advertiser_id IN (SELECT advertiser_id FROM campaigns WHERE campaign_id = ANY($2))
    ORDER BY advertiser_id
    FOR UPDATE;
  -- The price of each click is its campaign's CPC (beyond 6 fraction digits, trailing zeros
  -- trimmed), when it is a usable click price exactly as isClickPrice() in lambdas/shared/money.ts
  -- decides it: a plain decimal with at most 6 fraction digits, above 0, at most 10000000.
  SELECT array_agg(CASE WHEN c.advertiser_id = t.advertiser_id
                         AND c.price ~ '^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$'
                         AND c.price::numeric > 0 AND c.price::numeric <= 10000000
                        THEN c.price::numeric END ORDER BY t.ord),
         (SELECT coalesce(json_agg(json_build_object('campaign_id', k.campaign_id::text, 'daily_budget', k.daily_budget::text)), '[]'::json)
            FROM campaigns k WHERE k.campaign_id = ANY($2))
    INTO amounts, loaded
    FROM unnest($2, $3) WITH ORDINALITY AS t(campaign_id, advertiser_id, ord)
    LEFT JOIN LATERAL (
      SELECT k.advertiser_id, (CASE WHEN scale(k.cpc) > 6 THEN trim_scale(k.cpc) ELSE k.cpc END)::text AS price
        FROM campaigns k WHERE k.campaign_id = t.campaign_id
    ) c ON true;
  IF array_position(amounts, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'a click of the batch cannot be priced' USING ERRCODE = 'AS001';
  END IF;
  charge := adstream_charge_priced_clicks($1, $2, $3, amounts, $4, $5, $6, $7, $8);
  IF json_array_length(charge -> 'unaccounted') > 0 THEN
    RAISE EXCEPTION 'an event id of the batch is held by another click or a concurrent batch' USING ERRCODE = 'AS001';
  END IF;
  RETURN json_build_object('charge', charge, 'campaigns', loaded);
END
$fn$;

REVOKE ALL ON FUNCTION adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION adstream_charge_clicks(text[], bigint[], bigint[], bigint[], text, date, date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date) TO adstream_click_balance;
GRANT EXECUTE ON FUNCTION adstream_charge_clicks(text[], bigint[], bigint[], bigint[], text, date, date, date) TO adstream_click_balance;

-- Down Migration

DROP FUNCTION adstream_charge_clicks(text[], bigint[], bigint[], bigint[], text, date, date, date);
DROP FUNCTION adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date);
