-- Up Migration

-- dead_letters and outbox partitioned by day (issue 14, item 2), the last two append-only tables,
-- the way 1764940000000_partitioned-voids-duplicates partitioned the voids and the duplicate log:
-- rename, create partitioned, copy every row (ids kept, sequences carried over) and every grant,
-- drop; daily partitions created ahead and expired days detached or dropped by
-- adstream_maintain_history() with the ledger's retention (config `database.history`), a default
-- partition for days no daily partition covers. Neither table expires a day that still holds
-- work: an outbox day with a row not published, a dead-letter day with a row not re-driven.
--
-- dead_letters: partition key record_day, the budget day (BUDGET_TIME_ZONE) of the Kafka record's
-- own timestamp, which the row now keeps (kafka_timestamp). A redelivered bad record carries the
-- same timestamp, so it computes the same day and meets its row in
--   UNIQUE (topic, kafka_partition, kafka_offset, handler, record_day)
-- A record without a usable timestamp (absent, negative, beyond what a date can hold) gets the
-- fixed day 1970-01-01: the same record always maps to the same key, in the default partition,
-- which maintenance never expires. recordDeadLetters() also looks for the same coordinates in the
-- day before and after (a row migrated here with the day of its created_at, or recorded under
-- another zone), so such a record is not recorded a second time either.
--
-- outbox: partition key spend_date, the budget day every idempotency key already carries
-- (BUDGET_WARNING:<campaign>:<day>:<budget>, CAMPAIGN_PAUSED|RESUMED:<campaign>:<day>:<seq>),
-- read from the key by adstream_outbox_key_day(); a check keeps the two equal, so
--   UNIQUE (idempotency_key, spend_date)
-- is exactly as strict as the old UNIQUE (idempotency_key). Both writers (the charge function,
-- budget-reset's resume statement) take the day from the key the same way.
--
-- Existing rows: a dead letter's day is that of its created_at (the record's timestamp was not
-- kept; kafka_timestamp stays null), an outbox row's the day in its key (else its created_at's).
-- The zone is the session setting adstream.budget_time_zone when set, else Asia/Seoul, the
-- BUDGET_TIME_ZONE default (as 1764940000000).

CREATE OR REPLACE FUNCTION pg_temp.adstream_budget_zone() RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(nullif(current_setting('adstream.budget_time_zone', true), ''), 'Asia/Seoul')
$$;

-- The budget day named by an outbox idempotency key (its third ':' field), or null for a key
-- that names none. make_date, not a text cast: immutable, whatever the DateStyle.
CREATE FUNCTION adstream_outbox_key_day(idempotency_key text) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN split_part(idempotency_key, ':', 3) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
              THEN make_date(substr(split_part(idempotency_key, ':', 3), 1, 4)::int,
                             substr(split_part(idempotency_key, ':', 3), 6, 2)::int,
                             substr(split_part(idempotency_key, ':', 3), 9, 2)::int)
         END
$$;
GRANT EXECUTE ON FUNCTION adstream_outbox_key_day(text) TO PUBLIC;

ALTER TABLE dead_letters RENAME TO dead_letters_unpartitioned;
ALTER TABLE dead_letters_unpartitioned RENAME CONSTRAINT dead_letters_pkey TO dead_letters_unpartitioned_pkey;
ALTER TABLE dead_letters_unpartitioned RENAME CONSTRAINT dead_letters_coordinates_key TO dead_letters_unpartitioned_coordinates_key;
ALTER TABLE dead_letters_unpartitioned RENAME CONSTRAINT dead_letters_redrive_check TO dead_letters_unpartitioned_redrive_check;
ALTER TABLE dead_letters_unpartitioned RENAME CONSTRAINT dead_letters_redrive_outcome_check TO dead_letters_unpartitioned_redrive_outcome_check;
ALTER INDEX dead_letters_created_idx RENAME TO dead_letters_unpartitioned_created_idx;
ALTER INDEX dead_letters_pending_idx RENAME TO dead_letters_unpartitioned_pending_idx;
ALTER SEQUENCE dead_letters_id_seq OWNED BY NONE;

ALTER TABLE outbox RENAME TO outbox_unpartitioned;
ALTER TABLE outbox_unpartitioned RENAME CONSTRAINT outbox_pkey TO outbox_unpartitioned_pkey;
ALTER TABLE outbox_unpartitioned RENAME CONSTRAINT outbox_idempotency_key_key TO outbox_unpartitioned_idempotency_key_key;
ALTER TABLE outbox_unpartitioned RENAME CONSTRAINT outbox_kind_check TO outbox_unpartitioned_kind_check;
ALTER INDEX outbox_sns_pending_idx RENAME TO outbox_unpartitioned_sns_pending_idx;
ALTER INDEX outbox_kafka_pending_idx RENAME TO outbox_unpartitioned_kafka_pending_idx;
ALTER SEQUENCE outbox_id_seq OWNED BY NONE;

-- Records no handler could apply, with their Kafka coordinates; a redelivered bad record is
-- recorded once (see above for the day).
CREATE TABLE dead_letters (
  id               bigint NOT NULL DEFAULT nextval('dead_letters_id_seq'),
  handler          text NOT NULL,
  topic            text NOT NULL,
  kafka_partition  integer NOT NULL,
  kafka_offset     bigint NOT NULL,
  reason           text NOT NULL,
  detail           text,
  raw_key          bytea,
  raw_value        bytea,
  raw_value_bytes  integer,
  created_at       timestamptz NOT NULL DEFAULT now(),
  redriven_at      timestamptz,
  redrive_outcome  text CONSTRAINT dead_letters_redrive_outcome_check CHECK (redrive_outcome IN ('CHARGED', 'REFUNDED', 'APPLIED')),
  redrive_attempts integer NOT NULL DEFAULT 0,
  last_redrive_at  timestamptz,
  first_reason     text,
  -- The Kafka record's timestamp (epoch ms) when it had a usable one; re-drives deliver it again.
  kafka_timestamp  bigint,
  -- Budget day of kafka_timestamp, 1970-01-01 without one.
  record_day       date NOT NULL,
  CONSTRAINT dead_letters_pkey PRIMARY KEY (id, record_day),
  CONSTRAINT dead_letters_coordinates_key UNIQUE (topic, kafka_partition, kafka_offset, handler, record_day),
  CONSTRAINT dead_letters_redrive_check CHECK ((redriven_at IS NULL) = (redrive_outcome IS NULL))
) PARTITION BY RANGE (record_day);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);
CREATE INDEX dead_letters_pending_idx ON dead_letters (reason, id) WHERE redriven_at IS NULL;
ALTER SEQUENCE dead_letters_id_seq OWNED BY dead_letters.id;

-- Transactional outbox: written in the money transaction, published after commit.
CREATE TABLE outbox (
  id                 bigint NOT NULL DEFAULT nextval('outbox_id_seq'),
  kind               text NOT NULL CONSTRAINT outbox_kind_check CHECK (kind IN ('BUDGET_WARNING', 'CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED')),
  idempotency_key    text NOT NULL,
  payload            jsonb NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  -- Set once every destination the kind goes to has it.
  published_at       timestamptz,
  sns_published_at   timestamptz,
  kafka_published_at timestamptz,
  attempts           integer NOT NULL DEFAULT 0,
  last_error         text,
  -- The budget day named in idempotency_key.
  spend_date         date NOT NULL,
  CONSTRAINT outbox_pkey PRIMARY KEY (id, spend_date),
  CONSTRAINT outbox_idempotency_key_key UNIQUE (idempotency_key, spend_date),
  CONSTRAINT outbox_spend_date_check CHECK (spend_date = coalesce(adstream_outbox_key_day(idempotency_key), spend_date))
) PARTITION BY RANGE (spend_date);
CREATE INDEX outbox_sns_pending_idx ON outbox (id) WHERE sns_published_at IS NULL;
CREATE INDEX outbox_kafka_pending_idx ON outbox (id)
  WHERE kafka_published_at IS NULL AND kind IN ('CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED');
ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id;

CREATE TABLE dead_letters_default PARTITION OF dead_letters DEFAULT;
CREATE TABLE outbox_default PARTITION OF outbox DEFAULT;
DO $$
DECLARE
  tbl text;
  day date;
BEGIN
  FOREACH tbl IN ARRAY ARRAY['dead_letters', 'outbox'] LOOP
    FOR day IN SELECT generate_series(current_date - 7, current_date + 7, interval '1 day')::date LOOP
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                     tbl || '_p' || to_char(day, 'YYYYMMDD'), tbl, day, day + 1);
    END LOOP;
  END LOOP;
END $$;

INSERT INTO dead_letters (id, handler, topic, kafka_partition, kafka_offset, reason, detail, raw_key, raw_value, raw_value_bytes,
                          created_at, redriven_at, redrive_outcome, redrive_attempts, last_redrive_at, first_reason, record_day)
SELECT id, handler, topic, kafka_partition, kafka_offset, reason, detail, raw_key, raw_value, raw_value_bytes,
       created_at, redriven_at, redrive_outcome, redrive_attempts, last_redrive_at, first_reason,
       (created_at AT TIME ZONE pg_temp.adstream_budget_zone())::date
  FROM dead_letters_unpartitioned;

INSERT INTO outbox (id, kind, idempotency_key, payload, created_at, published_at, sns_published_at, kafka_published_at, attempts, last_error, spend_date)
SELECT id, kind, idempotency_key, payload, created_at, published_at, sns_published_at, kafka_published_at, attempts, last_error,
       coalesce(adstream_outbox_key_day(idempotency_key), (created_at AT TIME ZONE pg_temp.adstream_budget_zone())::date)
  FROM outbox_unpartitioned;

-- Every grant of the old tables carries over (the function roles, the reconcile role);
-- adstream_copy_table_grants() is 1764940000000's.
SELECT adstream_copy_table_grants(t || '_unpartitioned', t) FROM unnest(ARRAY['dead_letters', 'outbox']) AS t;

DROP TABLE dead_letters_unpartitioned;
DROP TABLE outbox_unpartitioned;

-- The charge function's outbox insert: its rows carry the day of their key, and the conflict
-- target is the new key. Only the insert's column list and its ON CONFLICT line are replaced
-- (each must occur exactly once): the rows it selects are wrapped in a subquery that adds the
-- day, so the SELECT lists feeding it stay as they are.
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)'::regprocedure);
  old_insert text := 'INSERT INTO outbox (kind, idempotency_key, payload)';
  old_conflict text := 'ON CONFLICT (idempotency_key) DO NOTHING';
  new_def text;
BEGIN
  IF (length(old_def) - length(replace(old_def, old_insert, ''))) / length(old_insert) <> 1 THEN
    RAISE EXCEPTION 'adstream_charge_priced_clicks() must contain "%" exactly once', old_insert;
  END IF;
  IF (length(old_def) - length(replace(old_def, old_conflict, ''))) / length(old_conflict) <> 1 THEN
    RAISE EXCEPTION 'adstream_charge_priced_clicks() must contain "%" exactly once', old_conflict;
  END IF;
  new_def := replace(old_def, old_insert,
    'INSERT INTO outbox (kind, idempotency_key, payload, spend_date)'
    || E'\n    SELECT r.kind, r.idempotency_key, r.payload, adstream_outbox_key_day(r.idempotency_key) FROM (');
  new_def := replace(new_def, old_conflict,
    ') AS r (kind, idempotency_key, payload)'
    || E'\n    ON CONFLICT ON CONSTRAINT outbox_idempotency_key_key DO NOTHING');
  EXECUTE new_def;
END $$;

-- adstream_maintain_history() keeps these two tables too, with the one retention, but never
-- expires a day that still holds work: an outbox day with a row not published, a dead-letter day
-- with a row not re-driven is kept and reported ('kept-pending'), and looked at again the next
-- day. The check runs under the partition's ACCESS EXCLUSIVE lock (taken before the detach
-- would take it anyway), so no row of that day is published or marked meanwhile.
CREATE FUNCTION adstream_history_day_pending(tbl text, part text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  pending boolean := false;
BEGIN
  IF tbl IN ('dead_letters', 'outbox') THEN
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', part);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I IS NULL)', part,
                   CASE tbl WHEN 'outbox' THEN 'published_at' ELSE 'redriven_at' END)
      INTO pending;
  END IF;
  RETURN pending;
END $$;
REVOKE ALL ON FUNCTION adstream_history_day_pending(text, text) FROM PUBLIC;

-- The function of 1764940000000 is changed in place by two checked replacements (each fragment
-- must occur exactly once): the tables it keeps, and the check before a day is detached.
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure);
  old_tables text := $q$ARRAY['ad_balance_histories', 'click_voids', 'duplicate_clicks']$q$;
  old_detach text := $q$EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', tbl, part.relname);$q$;
BEGIN
  IF (length(old_def) - length(replace(old_def, old_tables, ''))) / length(old_tables) <> 1
     OR (length(old_def) - length(replace(old_def, old_detach, ''))) / length(old_detach) <> 1 THEN
    RAISE EXCEPTION 'adstream_maintain_history() must contain "%" and "%" exactly once', old_tables, old_detach;
  END IF;
  EXECUTE replace(replace(old_def, old_tables, $q$ARRAY['ad_balance_histories', 'click_voids', 'duplicate_clicks', 'dead_letters', 'outbox']$q$),
                  old_detach,
                  $q$IF adstream_history_day_pending(tbl, part.relname) THEN
          partition_name := part.relname;
          action := 'kept-pending';
          RETURN NEXT;
          CONTINUE;
        END IF;
        $q$ || old_detach);
END $$;

-- Down Migration

-- Back to one table each, every row kept (a dead letter whose coordinates two days now share
-- keeps the oldest row: the old key allowed one; outbox keys are unique across days already).
-- Partitions detached as archived_* stay as they are. The charge function and
-- adstream_maintain_history() get back their text of before, to the byte.
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)'::regprocedure);
  new_insert text := 'INSERT INTO outbox (kind, idempotency_key, payload, spend_date)'
    || E'\n    SELECT r.kind, r.idempotency_key, r.payload, adstream_outbox_key_day(r.idempotency_key) FROM (';
  new_conflict text := ') AS r (kind, idempotency_key, payload)'
    || E'\n    ON CONFLICT ON CONSTRAINT outbox_idempotency_key_key DO NOTHING';
BEGIN
  IF strpos(old_def, new_insert) = 0 OR strpos(old_def, new_conflict) = 0 THEN
    RAISE EXCEPTION 'adstream_charge_priced_clicks() has no day-keyed outbox insert to restore';
  END IF;
  EXECUTE replace(replace(old_def, new_insert, 'INSERT INTO outbox (kind, idempotency_key, payload)'),
                  new_conflict, 'ON CONFLICT (idempotency_key) DO NOTHING');
END $$;

DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure);
  new_tables text := $q$ARRAY['ad_balance_histories', 'click_voids', 'duplicate_clicks', 'dead_letters', 'outbox']$q$;
  new_check text := $q$IF adstream_history_day_pending(tbl, part.relname) THEN
          partition_name := part.relname;
          action := 'kept-pending';
          RETURN NEXT;
          CONTINUE;
        END IF;
        $q$;
BEGIN
  IF strpos(old_def, new_tables) = 0 OR strpos(old_def, new_check) = 0 THEN
    RAISE EXCEPTION 'adstream_maintain_history() has no dead-letter and outbox retention to restore';
  END IF;
  EXECUTE replace(replace(old_def, new_tables, $q$ARRAY['ad_balance_histories', 'click_voids', 'duplicate_clicks']$q$), new_check, '');
END $$;
DROP FUNCTION adstream_history_day_pending(text, text);

ALTER TABLE dead_letters RENAME TO dead_letters_partitioned;
ALTER TABLE dead_letters_partitioned RENAME CONSTRAINT dead_letters_pkey TO dead_letters_partitioned_pkey;
ALTER TABLE dead_letters_partitioned RENAME CONSTRAINT dead_letters_coordinates_key TO dead_letters_partitioned_coordinates_key;
ALTER TABLE dead_letters_partitioned RENAME CONSTRAINT dead_letters_redrive_check TO dead_letters_partitioned_redrive_check;
ALTER TABLE dead_letters_partitioned RENAME CONSTRAINT dead_letters_redrive_outcome_check TO dead_letters_partitioned_redrive_outcome_check;
ALTER INDEX dead_letters_created_idx RENAME TO dead_letters_partitioned_created_idx;
ALTER INDEX dead_letters_pending_idx RENAME TO dead_letters_partitioned_pending_idx;
ALTER SEQUENCE dead_letters_id_seq OWNED BY NONE;
ALTER TABLE outbox RENAME TO outbox_partitioned;
ALTER TABLE outbox_partitioned RENAME CONSTRAINT outbox_pkey TO outbox_partitioned_pkey;
ALTER TABLE outbox_partitioned RENAME CONSTRAINT outbox_idempotency_key_key TO outbox_partitioned_idempotency_key_key;
ALTER TABLE outbox_partitioned RENAME CONSTRAINT outbox_kind_check TO outbox_partitioned_kind_check;
ALTER TABLE outbox_partitioned RENAME CONSTRAINT outbox_spend_date_check TO outbox_partitioned_spend_date_check;
ALTER INDEX outbox_sns_pending_idx RENAME TO outbox_partitioned_sns_pending_idx;
ALTER INDEX outbox_kafka_pending_idx RENAME TO outbox_partitioned_kafka_pending_idx;
ALTER SEQUENCE outbox_id_seq OWNED BY NONE;

CREATE TABLE dead_letters (
  id               bigint NOT NULL DEFAULT nextval('dead_letters_id_seq') CONSTRAINT dead_letters_pkey PRIMARY KEY,
  handler          text NOT NULL,
  topic            text NOT NULL,
  kafka_partition  integer NOT NULL,
  kafka_offset     bigint NOT NULL,
  reason           text NOT NULL,
  detail           text,
  raw_key          bytea,
  raw_value        bytea,
  raw_value_bytes  integer,
  created_at       timestamptz NOT NULL DEFAULT now(),
  redriven_at      timestamptz,
  redrive_outcome  text CONSTRAINT dead_letters_redrive_outcome_check CHECK (redrive_outcome IN ('CHARGED', 'REFUNDED', 'APPLIED')),
  redrive_attempts integer NOT NULL DEFAULT 0,
  last_redrive_at  timestamptz,
  first_reason     text,
  CONSTRAINT dead_letters_coordinates_key UNIQUE (topic, kafka_partition, kafka_offset, handler),
  CONSTRAINT dead_letters_redrive_check CHECK ((redriven_at IS NULL) = (redrive_outcome IS NULL))
);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);
CREATE INDEX dead_letters_pending_idx ON dead_letters (reason, id) WHERE redriven_at IS NULL;
ALTER SEQUENCE dead_letters_id_seq OWNED BY dead_letters.id;

CREATE TABLE outbox (
  id                 bigint NOT NULL DEFAULT nextval('outbox_id_seq') CONSTRAINT outbox_pkey PRIMARY KEY,
  kind               text NOT NULL CONSTRAINT outbox_kind_check CHECK (kind IN ('BUDGET_WARNING', 'CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED')),
  idempotency_key    text NOT NULL CONSTRAINT outbox_idempotency_key_key UNIQUE,
  payload            jsonb NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  published_at       timestamptz,
  sns_published_at   timestamptz,
  kafka_published_at timestamptz,
  attempts           integer NOT NULL DEFAULT 0,
  last_error         text
);
CREATE INDEX outbox_sns_pending_idx ON outbox (id) WHERE sns_published_at IS NULL;
CREATE INDEX outbox_kafka_pending_idx ON outbox (id)
  WHERE kafka_published_at IS NULL AND kind IN ('CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED');
ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id;

INSERT INTO dead_letters (id, handler, topic, kafka_partition, kafka_offset, reason, detail, raw_key, raw_value, raw_value_bytes,
                          created_at, redriven_at, redrive_outcome, redrive_attempts, last_redrive_at, first_reason)
SELECT id, handler, topic, kafka_partition, kafka_offset, reason, detail, raw_key, raw_value, raw_value_bytes,
       created_at, redriven_at, redrive_outcome, redrive_attempts, last_redrive_at, first_reason
  FROM dead_letters_partitioned
 ORDER BY created_at, id
ON CONFLICT DO NOTHING;
INSERT INTO outbox (id, kind, idempotency_key, payload, created_at, published_at, sns_published_at, kafka_published_at, attempts, last_error)
SELECT id, kind, idempotency_key, payload, created_at, published_at, sns_published_at, kafka_published_at, attempts, last_error
  FROM outbox_partitioned
 ORDER BY id
ON CONFLICT DO NOTHING;

SELECT adstream_copy_table_grants(t || '_partitioned', t) FROM unnest(ARRAY['dead_letters', 'outbox']) AS t;

DROP TABLE dead_letters_partitioned;
DROP TABLE outbox_partitioned;
DROP FUNCTION adstream_outbox_key_day(text);
