-- Up Migration

-- click_voids and duplicate_clicks partitioned by budget day (issue 14, item 2), the way
-- 1764800000000_partitioned-ledger partitioned the ledger: daily partitions created ahead by
-- adstream_maintain_history(), expired days detached (archived_<partition>) or dropped whole
-- with the ledger's retention (config `database.history`), a default partition for days no
-- daily partition covers.
--
-- The partition key of both is spend_date, the budget day of the duplicate click as the
-- compensation names it: the calendar day of duplicate_event_ts in BUDGET_TIME_ZONE. It comes
-- from the event itself, so a redelivered compensation (same record, same duplicate_event_ts)
-- computes the same day and its keys conflict exactly as before:
--   click_voids      UNIQUE (event_id, advertiser_id, campaign_id, spend_date)
--   duplicate_clicks UNIQUE (compensation_id, advertiser_id, campaign_id, spend_date)
-- The lookups by the old keys (without the day) are bounded to the named day and the day
-- before and after, as the ledger's probe for a re-stamped click is (see lambdas/README.md):
-- compensation looks for the compensation, the void of the click and the reverse pair in those
-- partitions, and click-balance's charge function looks for a click's void in the partitions of
-- the click's day ± 1. Flink's duplicate detector copies the click's own event_ts into
-- duplicate_event_ts, so a correct compensation's void is in the click's day exactly; the ± 1
-- covers a row migrated here under another zone than the deployed one (below).
--
-- Existing rows: a log row's day is computed from its duplicate_event_ts; a void's from the
-- duplicate_event_ts of the log row of the same compensation (written in the same statement),
-- else from its created_at. The zone is the session setting adstream.budget_time_zone when set
-- (PGOPTIONS='-c adstream.budget_time_zone=Europe/Paris' npm run db:migrate), else Asia/Seoul,
-- the BUDGET_TIME_ZONE default; another zone moves a day by at most one, inside the ± 1 window.

CREATE FUNCTION pg_temp.adstream_budget_zone() RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(nullif(current_setting('adstream.budget_time_zone', true), ''), 'Asia/Seoul')
$$;

ALTER TABLE click_voids RENAME TO click_voids_unpartitioned;
ALTER TABLE click_voids_unpartitioned RENAME CONSTRAINT click_voids_pkey TO click_voids_unpartitioned_pkey;
ALTER TABLE duplicate_clicks RENAME TO duplicate_clicks_unpartitioned;
ALTER TABLE duplicate_clicks_unpartitioned RENAME CONSTRAINT duplicate_clicks_pkey TO duplicate_clicks_unpartitioned_pkey;
ALTER TABLE duplicate_clicks_unpartitioned RENAME CONSTRAINT duplicate_clicks_outcome_check TO duplicate_clicks_unpartitioned_outcome_check;
ALTER INDEX duplicate_clicks_duplicate_event_idx RENAME TO duplicate_clicks_unpartitioned_duplicate_event_idx;
ALTER INDEX duplicate_clicks_original_event_idx RENAME TO duplicate_clicks_unpartitioned_original_event_idx;
ALTER INDEX duplicate_clicks_created_idx RENAME TO duplicate_clicks_unpartitioned_created_idx;

-- A compensation that arrived before the click it refunds: the click is never charged.
CREATE TABLE click_voids (
  event_id        text NOT NULL,
  compensation_id text NOT NULL,
  advertiser_id   bigint NOT NULL,
  campaign_id     bigint NOT NULL,
  -- Budget day of the voided click as the compensation names it (its duplicate_event_ts).
  spend_date      date NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT click_voids_pkey PRIMARY KEY (event_id, advertiser_id, campaign_id, spend_date)
) PARTITION BY RANGE (spend_date);

-- The duplicate-click log; its primary key makes each compensation idempotent.
CREATE TABLE duplicate_clicks (
  compensation_id      text NOT NULL,
  duplicate_event_id   text NOT NULL,
  original_event_id    text NOT NULL,
  advertiser_id        bigint NOT NULL,
  campaign_id          bigint NOT NULL,
  ad_id                text NOT NULL,
  device_id            text NOT NULL,
  duplicate_event_ts   timestamptz NOT NULL,
  original_event_ts    timestamptz NOT NULL,
  quoted_refund_amount numeric,
  outcome              text NOT NULL CONSTRAINT duplicate_clicks_outcome_check
                         CHECK (outcome IN ('REFUNDED', 'VOIDED', 'ALREADY_SETTLED', 'ORIGINAL_KEPT')),
  refunded_amount      numeric NOT NULL DEFAULT 0,
  created_at           timestamptz NOT NULL DEFAULT now(),
  -- Budget day of duplicate_event_ts.
  spend_date           date NOT NULL,
  CONSTRAINT duplicate_clicks_pkey PRIMARY KEY (compensation_id, advertiser_id, campaign_id, spend_date)
) PARTITION BY RANGE (spend_date);
CREATE INDEX duplicate_clicks_duplicate_event_idx ON duplicate_clicks (duplicate_event_id);
CREATE INDEX duplicate_clicks_original_event_idx ON duplicate_clicks (original_event_id);
CREATE INDEX duplicate_clicks_created_idx ON duplicate_clicks (created_at);

CREATE TABLE click_voids_default PARTITION OF click_voids DEFAULT;
CREATE TABLE duplicate_clicks_default PARTITION OF duplicate_clicks DEFAULT;
DO $$
DECLARE
  tbl text;
  day date;
BEGIN
  FOREACH tbl IN ARRAY ARRAY['click_voids', 'duplicate_clicks'] LOOP
    FOR day IN SELECT generate_series(current_date - 7, current_date + 7, interval '1 day')::date LOOP
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                     tbl || '_p' || to_char(day, 'YYYYMMDD'), tbl, day, day + 1);
    END LOOP;
  END LOOP;
END $$;

INSERT INTO duplicate_clicks (compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
                              duplicate_event_ts, original_event_ts, quoted_refund_amount, outcome, refunded_amount, created_at, spend_date)
SELECT compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
       duplicate_event_ts, original_event_ts, quoted_refund_amount, outcome, refunded_amount, created_at,
       (duplicate_event_ts AT TIME ZONE pg_temp.adstream_budget_zone())::date
  FROM duplicate_clicks_unpartitioned;

INSERT INTO click_voids (event_id, compensation_id, advertiser_id, campaign_id, spend_date, created_at)
SELECT v.event_id, v.compensation_id, v.advertiser_id, v.campaign_id,
       coalesce((SELECT (d.duplicate_event_ts AT TIME ZONE pg_temp.adstream_budget_zone())::date
                   FROM duplicate_clicks_unpartitioned d
                  WHERE d.compensation_id = v.compensation_id AND d.advertiser_id = v.advertiser_id
                    AND d.campaign_id = v.campaign_id AND d.duplicate_event_id = v.event_id),
                (v.created_at AT TIME ZONE pg_temp.adstream_budget_zone())::date),
       v.created_at
  FROM click_voids_unpartitioned v;

-- Every grant of the old tables carries over (the function roles, the reconcile role). The
-- helper is dropped by the down migration, which uses it the other way round.
CREATE FUNCTION adstream_copy_table_grants(from_table text, to_table text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT grantee, string_agg(privilege_type, ', ') AS privileges
      FROM information_schema.role_table_grants
     WHERE table_schema = current_schema() AND table_name = from_table
       AND grantee <> (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = from_table)
     GROUP BY grantee
  LOOP
    EXECUTE format('GRANT %s ON %I TO %I', g.privileges, to_table, g.grantee);
  END LOOP;
END $$;
REVOKE ALL ON FUNCTION adstream_copy_table_grants(text, text) FROM PUBLIC;
SELECT adstream_copy_table_grants(t || '_unpartitioned', t) FROM unnest(ARRAY['click_voids', 'duplicate_clicks']) AS t;

DROP TABLE click_voids_unpartitioned;
DROP TABLE duplicate_clicks_unpartitioned;

-- The charge function looks for a click's void in the partitions of the click's day ± 1 only
-- (plan-time pruning on the batch's days, run-time pruning per click), instead of in every
-- retained partition. Its body is otherwise unchanged: the one line is replaced in place.
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)'::regprocedure);
  old_join text := 'JOIN click_voids v ON v.event_id = i.event_id AND v.advertiser_id = i.advertiser_id AND v.campaign_id = i.campaign_id';
BEGIN
  IF strpos(old_def, old_join) = 0 THEN
    RAISE EXCEPTION 'adstream_charge_priced_clicks() has no void lookup to bound';
  END IF;
  EXECUTE replace(old_def, old_join, old_join
    || E'\n       AND v.spend_date BETWEEN $8::date - 1 AND $9::date + 1 AND v.spend_date BETWEEN i.spend_date - 1 AND i.spend_date + 1');
END $$;

-- Keeps the partitions of every history table (the ledger, the voids, the duplicate log): the
-- same contract as before (1764800000000_partitioned-ledger), now for each table in turn with
-- the one retention (a void must outlive every replay of its click, the log every refund).
CREATE OR REPLACE FUNCTION adstream_maintain_history(today date, ahead_days integer, retention_days integer, expired text)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
AS $$
DECLARE
  tbl text;
  day date;
  part record;
  part_day date;
BEGIN
  IF retention_days IS NULL OR retention_days < 35 THEN
    RAISE EXCEPTION 'ledger retention must be at least 35 days, got %', retention_days;
  END IF;
  IF ahead_days IS NULL OR ahead_days < 2 OR ahead_days > 60 THEN
    RAISE EXCEPTION 'ahead_days must be between 2 and 60, got %', ahead_days;
  END IF;
  IF expired IS NULL OR expired NOT IN ('detach', 'drop') THEN
    RAISE EXCEPTION 'expired must be detach or drop, got %', expired;
  END IF;
  FOREACH tbl IN ARRAY ARRAY['ad_balance_histories', 'click_voids', 'duplicate_clicks'] LOOP
    -- A table not partitioned (yet, or again after a down migration) is left alone.
    CONTINUE WHEN (SELECT relkind FROM pg_class WHERE oid = to_regclass(tbl)) IS DISTINCT FROM 'p';
    FOR day IN SELECT generate_series(today, today + ahead_days, interval '1 day')::date LOOP
      partition_name := tbl || '_p' || to_char(day, 'YYYYMMDD');
      IF to_regclass(partition_name) IS NULL THEN
        BEGIN
          EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', partition_name, tbl, day, day + 1);
          action := 'created';
          RETURN NEXT;
        EXCEPTION WHEN check_violation THEN
          -- The default partition already holds rows of that day: they stay there.
          action := 'kept-in-default';
          RETURN NEXT;
        END;
      END IF;
    END LOOP;
    FOR part IN
      SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = tbl::regclass AND c.relname ~ ('^' || tbl || '_p[0-9]{8}$')
       ORDER BY c.relname
    LOOP
      part_day := to_date(substring(part.relname from '[0-9]{8}$'), 'YYYYMMDD');
      IF part_day < today - retention_days THEN
        EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', tbl, part.relname);
        IF expired = 'drop' THEN
          EXECUTE format('DROP TABLE %I', part.relname);
          action := 'dropped';
        ELSE
          EXECUTE format('ALTER TABLE %I RENAME TO %I', part.relname, 'archived_' || part.relname);
          action := 'detached';
        END IF;
        partition_name := part.relname;
        RETURN NEXT;
      END IF;
    END LOOP;
  END LOOP;
END $$;

-- Down Migration

-- Back to one table each, every row kept (a key of the old shape that two days now share keeps
-- the oldest row: the old key allowed one). Partitions detached as archived_* stay as they are.
-- adstream_maintain_history() stays: it skips a table that is not partitioned.
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)'::regprocedure);
  bound text := E'\n       AND v.spend_date BETWEEN $8::date - 1 AND $9::date + 1 AND v.spend_date BETWEEN i.spend_date - 1 AND i.spend_date + 1';
BEGIN
  IF strpos(old_def, bound) = 0 THEN
    RAISE EXCEPTION 'adstream_charge_priced_clicks() has no bounded void lookup to restore';
  END IF;
  EXECUTE replace(old_def, bound, '');
END $$;

ALTER TABLE click_voids RENAME TO click_voids_partitioned;
ALTER TABLE click_voids_partitioned RENAME CONSTRAINT click_voids_pkey TO click_voids_partitioned_pkey;
ALTER TABLE duplicate_clicks RENAME TO duplicate_clicks_partitioned;
ALTER TABLE duplicate_clicks_partitioned RENAME CONSTRAINT duplicate_clicks_pkey TO duplicate_clicks_partitioned_pkey;
ALTER TABLE duplicate_clicks_partitioned RENAME CONSTRAINT duplicate_clicks_outcome_check TO duplicate_clicks_partitioned_outcome_check;
ALTER INDEX duplicate_clicks_duplicate_event_idx RENAME TO duplicate_clicks_partitioned_duplicate_event_idx;
ALTER INDEX duplicate_clicks_original_event_idx RENAME TO duplicate_clicks_partitioned_original_event_idx;
ALTER INDEX duplicate_clicks_created_idx RENAME TO duplicate_clicks_partitioned_created_idx;

CREATE TABLE click_voids (
  event_id        text NOT NULL,
  compensation_id text NOT NULL,
  advertiser_id   bigint NOT NULL,
  campaign_id     bigint NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT click_voids_pkey PRIMARY KEY (event_id, advertiser_id, campaign_id)
);
CREATE TABLE duplicate_clicks (
  compensation_id      text NOT NULL,
  duplicate_event_id   text NOT NULL,
  original_event_id    text NOT NULL,
  advertiser_id        bigint NOT NULL,
  campaign_id          bigint NOT NULL,
  ad_id                text NOT NULL,
  device_id            text NOT NULL,
  duplicate_event_ts   timestamptz NOT NULL,
  original_event_ts    timestamptz NOT NULL,
  quoted_refund_amount numeric,
  outcome              text NOT NULL CONSTRAINT duplicate_clicks_outcome_check
                         CHECK (outcome IN ('REFUNDED', 'VOIDED', 'ALREADY_SETTLED', 'ORIGINAL_KEPT')),
  refunded_amount      numeric NOT NULL DEFAULT 0,
  created_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT duplicate_clicks_pkey PRIMARY KEY (compensation_id, advertiser_id, campaign_id)
);
CREATE INDEX duplicate_clicks_duplicate_event_idx ON duplicate_clicks (duplicate_event_id);
CREATE INDEX duplicate_clicks_original_event_idx ON duplicate_clicks (original_event_id);
CREATE INDEX duplicate_clicks_created_idx ON duplicate_clicks (created_at);

INSERT INTO click_voids (event_id, compensation_id, advertiser_id, campaign_id, created_at)
SELECT event_id, compensation_id, advertiser_id, campaign_id, created_at FROM click_voids_partitioned
 ORDER BY created_at, spend_date
ON CONFLICT DO NOTHING;
INSERT INTO duplicate_clicks (compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
                              duplicate_event_ts, original_event_ts, quoted_refund_amount, outcome, refunded_amount, created_at)
SELECT compensation_id, duplicate_event_id, original_event_id, advertiser_id, campaign_id, ad_id, device_id,
       duplicate_event_ts, original_event_ts, quoted_refund_amount, outcome, refunded_amount, created_at
  FROM duplicate_clicks_partitioned
 ORDER BY created_at, spend_date
ON CONFLICT DO NOTHING;

SELECT adstream_copy_table_grants(t || '_partitioned', t) FROM unnest(ARRAY['click_voids', 'duplicate_clicks']) AS t;
DROP FUNCTION adstream_copy_table_grants(text, text);

DROP TABLE click_voids_partitioned;
DROP TABLE duplicate_clicks_partitioned;
