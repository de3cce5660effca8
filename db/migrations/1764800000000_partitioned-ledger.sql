-- Up Migration

-- The ledger partitioned by budget day (issue 14): charging writes into the partition of today
-- (or of the click's day), whose indexes stay small and cached however much history the table
-- holds, and expired days are detached or dropped whole by adstream_maintain_history() instead
-- of being deleted row by row.
--
-- Written for a database that already holds data, whether or not 1764700000000_ledger-entries
-- ran before it: the ledger is recreated with exactly the constraints that migration sets
-- (types DEDUCT/REFUND/TOPUP/ADJUSTMENT, campaign_id required except for TOPUP/ADJUSTMENT, a
-- signed non-zero amount only for ADJUSTMENT), every row is copied with its id, the id sequence
-- and every grant of the old table carry over, and the old table is dropped.
--
-- Idempotency: a unique key on a partitioned table must contain the partition key, so the key is
-- now UNIQUE (event_id, type, spend_date), all three derived from the event itself (spend_date
-- is the budget day of event_ts). A copy of a click carrying another event_ts, hence another
-- day, is refused by the charge statement, which looks for a DEDUCT of the same event_id in the
-- other partitions (index on event_id leading) under the advertiser lock.

ALTER TABLE ad_balance_histories RENAME TO ad_balance_histories_unpartitioned;
ALTER TABLE ad_balance_histories_unpartitioned RENAME CONSTRAINT ad_balance_histories_event_type_key TO ad_balance_histories_unpartitioned_event_type_key;
ALTER TABLE ad_balance_histories_unpartitioned RENAME CONSTRAINT ad_balance_histories_pkey TO ad_balance_histories_unpartitioned_pkey;
ALTER SEQUENCE ad_balance_histories_id_seq OWNED BY NONE;

CREATE TABLE ad_balance_histories (
  id              bigint NOT NULL DEFAULT nextval('ad_balance_histories_id_seq'),
  event_id        text NOT NULL,
  type            text NOT NULL CONSTRAINT ad_balance_histories_type_check
                    CHECK (type IN ('DEDUCT', 'REFUND', 'TOPUP', 'ADJUSTMENT')),
  amount          numeric NOT NULL CONSTRAINT ad_balance_histories_amount_check
                    CHECK (amount <> 0 AND (type = 'ADJUSTMENT' OR amount > 0)),
  advertiser_id   bigint NOT NULL,
  campaign_id     bigint CONSTRAINT ad_balance_histories_campaign_check
                    CHECK (campaign_id IS NOT NULL OR type IN ('TOPUP', 'ADJUSTMENT')),
  -- Budget day of the click (calendar day of its event_ts in BUDGET_TIME_ZONE); a refund
  -- restores the spend of the same day the charge went to, and lands in the same partition.
  spend_date      date NOT NULL,
  event_ts        timestamptz,
  compensation_id text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ad_balance_histories_pkey PRIMARY KEY (id, spend_date),
  CONSTRAINT ad_balance_histories_event_type_key UNIQUE (event_id, type, spend_date)
) PARTITION BY RANGE (spend_date);
ALTER SEQUENCE ad_balance_histories_id_seq OWNED BY ad_balance_histories.id;

-- Days no daily partition covers (legacy rows older than the first partition, a click dated
-- beyond the partitions created ahead) land here rather than failing a batch.
CREATE TABLE ad_balance_histories_default PARTITION OF ad_balance_histories DEFAULT;

-- The daily partitions around today; adstream_maintain_history() keeps them ahead every day.
DO $$
DECLARE
  day date;
BEGIN
  FOR day IN SELECT generate_series(current_date - 7, current_date + 7, interval '1 day')::date LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF ad_balance_histories FOR VALUES FROM (%L) TO (%L)',
                   'ad_balance_histories_p' || to_char(day, 'YYYYMMDD'), day, day + 1);
  END LOOP;
END $$;

INSERT INTO ad_balance_histories (id, event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts, compensation_id, created_at)
SELECT id, event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts, compensation_id, created_at
  FROM ad_balance_histories_unpartitioned;

-- Whoever could read or write the old ledger can do the same on the new one (the function roles
-- of 1764500000000, and any role a later migration granted, such as a reconcile role).
DO $$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT grantee, string_agg(privilege_type, ', ') AS privileges
      FROM information_schema.role_table_grants
     WHERE table_schema = current_schema() AND table_name = 'ad_balance_histories_unpartitioned'
       AND grantee <> (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'ad_balance_histories_unpartitioned')
     GROUP BY grantee
  LOOP
    EXECUTE format('GRANT %s ON ad_balance_histories TO %I', g.privileges, g.grantee);
  END LOOP;
END $$;

DROP TABLE ad_balance_histories_unpartitioned;

-- Keeps the partitions of the history tables: creates the daily partitions of the next
-- `ahead_days` days, and detaches (p_expired = 'detach': the table stays, renamed
-- archived_<name>, for export) or drops (p_expired = 'drop') the daily partitions whose day is
-- older than `retention_days` before `today`. Idempotent; returns what it did. Called every day
-- by budget-reset with the environment's retention (config `history`). Refuses a retention
-- below 35 days: a refund needs the charge it returns, and a replayed click must still find it.
-- SECURITY DEFINER so the budget-reset role runs it without owning the tables.
CREATE FUNCTION adstream_maintain_history(today date, ahead_days integer, retention_days integer, expired text)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
AS $$
DECLARE
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
  FOR day IN SELECT generate_series(today, today + ahead_days, interval '1 day')::date LOOP
    partition_name := 'ad_balance_histories_p' || to_char(day, 'YYYYMMDD');
    IF to_regclass(partition_name) IS NULL THEN
      BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF ad_balance_histories FOR VALUES FROM (%L) TO (%L)', partition_name, day, day + 1);
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
     WHERE i.inhparent = 'ad_balance_histories'::regclass AND c.relname ~ '^ad_balance_histories_p[0-9]{8}$'
     ORDER BY c.relname
  LOOP
    part_day := to_date(substring(part.relname from '[0-9]{8}$'), 'YYYYMMDD');
    IF part_day < today - retention_days THEN
      EXECUTE format('ALTER TABLE ad_balance_histories DETACH PARTITION %I', part.relname);
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
END $$;
REVOKE ALL ON FUNCTION adstream_maintain_history(date, integer, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adstream_maintain_history(date, integer, integer, text) TO adstream_budget_reset;

-- Down Migration

DROP FUNCTION adstream_maintain_history(date, integer, integer, text);
ALTER TABLE ad_balance_histories RENAME TO ad_balance_histories_partitioned;
ALTER TABLE ad_balance_histories_partitioned RENAME CONSTRAINT ad_balance_histories_event_type_key TO ad_balance_histories_partitioned_event_type_key;
ALTER TABLE ad_balance_histories_partitioned RENAME CONSTRAINT ad_balance_histories_pkey TO ad_balance_histories_partitioned_pkey;
ALTER SEQUENCE ad_balance_histories_id_seq OWNED BY NONE;
CREATE TABLE ad_balance_histories (LIKE ad_balance_histories_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE ad_balance_histories ADD CONSTRAINT ad_balance_histories_pkey PRIMARY KEY (id);
ALTER TABLE ad_balance_histories ADD CONSTRAINT ad_balance_histories_event_type_key UNIQUE (event_id, type);
ALTER SEQUENCE ad_balance_histories_id_seq OWNED BY ad_balance_histories.id;
INSERT INTO ad_balance_histories SELECT * FROM ad_balance_histories_partitioned;
GRANT SELECT, INSERT ON ad_balance_histories TO adstream_click_balance, adstream_compensation;
DROP TABLE ad_balance_histories_partitioned;
