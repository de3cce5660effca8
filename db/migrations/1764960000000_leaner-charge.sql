-- Up Migration

-- The charge of a clean batch with less work per click (issue 14: the handler within 1.5× of
-- the floor). Same arguments, same result, same decisions as 1764920000000_charge-functions (as
-- bounded by 1764940000000_partitioned-voids-duplicates); what changed, measured in backend CPU
-- per batch of 100 (lambdas/PERFORMANCE.md):
--  * the advertisers are locked by the ids the clicks carry (one index probe per advertiser)
--    instead of through a lookup of every click's campaign: a click whose campaign belongs to
--    another advertiser makes the batch refused anyway, so in a batch that is charged the two
--    sets are the same, and the locks still come before anything is read;
--  * every campaign is read and priced once, not once per click;
--  * the voids and the DEDUCTs of the days around the batch are looked up for the whole batch in
--    one index scan per partition (`event_id = ANY(…)`) instead of one probe per click;
--  * the warning fired by this statement is read from the upserted row (`warned_at = now()`, the
--    transaction's start) instead of from a second read of every day-spend row before it;
--  * the pause check looks only at the campaigns that can pause (charged today at or over the
--    budget they were charged under, or in the batch without a charge today) instead of every
--    campaign of the batch, and reads today's spend of the latter by key, not by scanning the
--    day's rows of every campaign;
--  * the "neither charged nor voided" lookup runs only when some click was neither.
-- The definitions replaced are kept in adstream_replaced_functions for the down migration.

CREATE TABLE adstream_replaced_functions (
  migration  text NOT NULL,
  signature  text NOT NULL,
  definition text NOT NULL,
  PRIMARY KEY (migration, signature)
);
INSERT INTO adstream_replaced_functions (migration, signature, definition)
SELECT '1764960000000_leaner-charge', s, pg_get_functiondef(s::regprocedure)
  FROM unnest(ARRAY[
    'adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)',
    'adstream_charge_clicks(text[], bigint[], bigint[], bigint[], text, date, date, date)'
  ]) AS s;

-- Arguments and result: see 1764920000000_charge-functions. The caller holds the locks of the
-- advertisers (FOR UPDATE, in id order), taken in an earlier statement.
CREATE OR REPLACE FUNCTION adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)
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
  batch_voids AS (
    -- The voids of the batch's event ids in its days ± 1: one index scan per partition for the
    -- whole batch ($8/$9, the first and last budget day of the batch, prune the partitions).
    SELECT v.event_id, v.advertiser_id, v.campaign_id, v.spend_date FROM click_voids v
     WHERE v.event_id = ANY($1) AND v.spend_date BETWEEN $8::date - 1 AND $9::date + 1
    OFFSET 0
  ),
  voided AS (
    -- A void applies only to the click of its advertiser and campaign, in the click's day ± 1.
    SELECT i.event_id FROM input i
     WHERE EXISTS (SELECT 1 FROM batch_voids v
                    WHERE v.event_id = i.event_id AND v.advertiser_id = i.advertiser_id AND v.campaign_id = i.campaign_id
                      AND v.spend_date BETWEEN i.spend_date - 1 AND i.spend_date + 1)
  ),
  neighbour_deducts AS (
    -- The ledger is partitioned by day and its unique key includes the day: a copy of a click
    -- carrying another event_ts must not be charged again in the day before or after. The
    -- DEDUCTs of the batch's ids in the days next to the batch's days, one index scan per
    -- partition: a one-day batch reads only the day before and the day after (its own day is
    -- the unique key's; the second range is empty), a batch over several days every day from
    -- the one before its first to the one after its last (a middle day's neighbours are in the
    -- batch's span). Both ranges are pseudo-constant, so the partitions are pruned when the
    -- statement starts. A copy re-stamped further away is not looked for (lambdas/README.md).
    SELECT o.event_id, o.spend_date FROM ad_balance_histories o
     WHERE o.event_id = ANY($1) AND o.type = 'DEDUCT'
       AND (o.spend_date IN ($8::date - 1, $9::date + 1)
            OR o.spend_date BETWEEN $8::date + CASE WHEN $8::date = $9::date THEN 1 ELSE 0 END
                                AND $9::date - CASE WHEN $8::date = $9::date THEN 1 ELSE 0 END)
    OFFSET 0
  ),
  charged AS (
    INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
    SELECT i.event_id, 'DEDUCT', i.amount, i.advertiser_id, i.campaign_id, i.spend_date, to_timestamp(i.event_ms / 1000.0)
      FROM input i
     WHERE NOT EXISTS (SELECT 1 FROM voided v WHERE v.event_id = i.event_id)
       AND NOT EXISTS (SELECT 1 FROM neighbour_deducts o
                        WHERE o.event_id = i.event_id AND o.spend_date IN (i.spend_date - 1, i.spend_date + 1))
     -- In event_id order, so two batches racing for the same ids wait on each other in one order.
     ORDER BY i.event_id
    ON CONFLICT ON CONSTRAINT ad_balance_histories_event_type_key DO NOTHING
    RETURNING event_id, amount, advertiser_id, campaign_id, spend_date
  ),
  unaccounted AS (
    -- Neither charged nor voided: a replay of the same click (not reported), or an event id
    -- already charged to another advertiser or campaign, or one a concurrent batch inserted after
    -- this statement's snapshot (charged_* null: the caller looks again). Looked for only when
    -- some click was neither (the first condition is evaluated once, before any row).
    SELECT i.event_id, d.advertiser_id::text AS charged_advertiser_id, d.campaign_id::text AS charged_campaign_id
      FROM input i
      LEFT JOIN LATERAL (
        SELECT d.event_id, d.advertiser_id, d.campaign_id FROM ad_balance_histories d
         WHERE d.event_id = i.event_id AND d.type = 'DEDUCT'
           AND d.spend_date BETWEEN $8::date - 2 AND $9::date + 2 AND d.spend_date BETWEEN i.spend_date - 1 AND i.spend_date + 1
        OFFSET 0
      ) d ON true
     WHERE (SELECT count(*) FROM charged) + (SELECT count(*) FROM voided) < (SELECT count(*) FROM input)
       AND NOT EXISTS (SELECT 1 FROM charged c WHERE c.event_id = i.event_id)
       AND NOT EXISTS (SELECT 1 FROM voided v WHERE v.event_id = i.event_id)
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
    SELECT t.campaign_id, t.spend_date, t.amount, t.clicks, k.daily_budget, t.spend_date = $7::date AS is_today
      FROM (SELECT campaign_id, spend_date, sum(amount) AS amount, count(*) AS clicks FROM charged GROUP BY campaign_id, spend_date) t
      JOIN campaigns k ON k.campaign_id = t.campaign_id
  ),
  spend AS (
    -- warned_budget is the budget the warning last fired for: a raised budget re-arms it, and it
    -- fires again once the day's spend reaches 90 % of the new budget. exhausted_at is when the
    -- day's spend last reached the budget in force (informational; pausing reads spend and budget).
    -- warned_at is set to now() (the transaction's start) exactly when the warning fires, so
    -- `warned_now` tells this statement's warnings from earlier ones (a second batch in the same
    -- transaction sees the first one's as its own: the outbox key makes that one row).
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
    RETURNING s.campaign_id, s.spend_date, s.spend, s.daily_budget, s.warned_budget,
              s.warned_budget IS NOT NULL AND s.warned_at = now() AS warned_now
  ),
  warned AS (
    SELECT s.campaign_id, s.spend_date, s.spend, s.warned_budget FROM spend s WHERE s.warned_now
  ),
  today_spend AS (
    -- The campaigns of the batch that can pause, with their spend on the current budget day
    -- after this statement: those charged today now at or over the budget they were charged
    -- under, and (a replayed batch still enforces) those of the batch not charged today, read
    -- by key (snapshot before this statement). A budget lowered by a transaction that commits
    -- while this one runs is enforced by the next batch.
    SELECT s.campaign_id, s.spend FROM spend s WHERE s.spend_date = $7::date AND s.spend >= s.daily_budget
    UNION ALL
    SELECT b.campaign_id, COALESCE(d.spend, 0)
      FROM (SELECT DISTINCT campaign_id FROM input) b
      LEFT JOIN LATERAL (
        SELECT d.spend FROM campaign_daily_spend d WHERE d.campaign_id = b.campaign_id AND d.spend_date = $7::date
      ) d ON true
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

-- Arguments and result: see 1764920000000_charge-functions.
CREATE OR REPLACE FUNCTION adstream_charge_clicks(text[], bigint[], bigint[], bigint[], text, date, date, date)
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
  -- advertisers in id order before it reads anything. These are the advertisers the clicks
  -- name: a click of a campaign of another advertiser gets no price below, so the batch is
  -- refused (and charged the long way, under the owners' locks) before anything is written.
  PERFORM 1 FROM advertisers
    WHERE advertiser_id = ANY($3)
    ORDER BY advertiser_id
    FOR UPDATE;
  -- The price of each click is its campaign's CPC (beyond 6 fraction digits, trailing zeros
  -- trimmed), when it is a usable click price exactly as isClickPrice() in lambdas/shared/money.ts
  -- decides it: a plain decimal with at most 6 fraction digits, above 0, at most 10000000. Each
  -- campaign is read and priced once; a click gets its campaign's price only when it names the
  -- campaign's advertiser.
  WITH priced AS MATERIALIZED (
    SELECT c.campaign_id, c.advertiser_id, c.daily_budget,
           CASE WHEN c.price ~ '^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$'
                 AND c.price::numeric > 0 AND c.price::numeric <= 10000000
                THEN c.price::numeric END AS price
      FROM (SELECT k.campaign_id, k.advertiser_id, k.daily_budget,
                   (CASE WHEN scale(k.cpc) > 6 THEN trim_scale(k.cpc) ELSE k.cpc END)::text AS price
              FROM campaigns k WHERE k.campaign_id = ANY($2)) c
  )
  SELECT (SELECT array_agg(p.price ORDER BY t.ord)
            FROM unnest($2, $3) WITH ORDINALITY AS t(campaign_id, advertiser_id, ord)
            LEFT JOIN priced p ON p.campaign_id = t.campaign_id AND p.advertiser_id = t.advertiser_id),
         (SELECT coalesce(json_agg(json_build_object('campaign_id', p.campaign_id::text, 'daily_budget', p.daily_budget::text)), '[]'::json)
            FROM priced p)
    INTO amounts, loaded;
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

-- Down Migration

DO $$
DECLARE
  old record;
BEGIN
  FOR old IN SELECT definition FROM adstream_replaced_functions WHERE migration = '1764960000000_leaner-charge' LOOP
    EXECUTE old.definition;
  END LOOP;
  DELETE FROM adstream_replaced_functions WHERE migration = '1764960000000_leaner-charge';
END $$;
DROP TABLE adstream_replaced_functions;
