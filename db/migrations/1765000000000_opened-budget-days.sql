-- Up Migration

-- The budget days budget-reset has opened. Once the reset has opened a day, that day is the
-- current budget day for every charge, whatever the charging handler's clock says:
--  * a click batch whose clock still read the old day (read just before midnight, or the
--    schedule fired up to SCHEDULE_CLOCK_SKEW_MS early) no longer pauses a campaign for the old
--    day after the reset resumed it: that pause lasted the whole new day, nothing resumed it;
--  * the reset opens a day once: the same schedule delivered again (EventBridge delivers at
--    least once; Lambda retries a run that threw after its commit) changes no campaign, so a
--    campaign paused that day and brought back under its budget by a refund stays paused
--    until the next day, as a refund alone never resumes one.
-- The reset and the charges are serialized on one advisory lock (the two-key form, a space the
-- event-id locks' one-key form never meets): the reset takes it exclusively after its advertiser
-- locks, every charge shared after its advertiser locks and before its event-id locks. A charge
-- that took it first commits before the reset reads the campaigns (the reset sees its pause and
-- resumes it); one that comes later waits for the reset to commit and then sees the day opened.
-- Neither holds the lock while waiting for a lock the other holds, so they cannot deadlock.
CREATE TABLE budget_days_opened (
  budget_day date PRIMARY KEY,
  opened_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON budget_days_opened TO adstream_click_balance;
GRANT SELECT, INSERT ON budget_days_opened TO adstream_budget_reset;

-- Opens `day` for budget-reset, which holds the locks of the advertisers it may change: true
-- when it is newly opened (the reset then resumes and pauses campaigns), false when that day or
-- a later one was opened already (the reset changes nothing).
CREATE FUNCTION adstream_open_budget_day(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(1764990000, 1);
  IF EXISTS (SELECT 1 FROM budget_days_opened WHERE budget_day >= day) THEN
    RETURN false;
  END IF;
  INSERT INTO budget_days_opened (budget_day) VALUES (day);
  RETURN true;
END $$;
REVOKE ALL ON FUNCTION adstream_open_budget_day(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adstream_open_budget_day(date) TO adstream_budget_reset;

-- The charge: its current budget day is $7 (the handler's clock) or the last day opened, if
-- later, read under the shared lock. Its CAMPAIGN_PAUSED events are stamped with the clock when
-- the row is written (clock_timestamp(), after every lock), as budget-reset's are: a change that
-- undoes another saw it committed, so it carries the later event_ts, which consumers keep (a
-- transaction's start, now(), can precede the change it undoes when the transaction waited). Changed in place by checked replacements (each fragment
-- must occur as often as said); the definition replaced is kept in adstream_replaced_functions
-- (1764960000000_leaner-charge) for the down migration.
INSERT INTO adstream_replaced_functions (migration, signature, definition)
SELECT '1765000000000_opened-budget-days', s, pg_get_functiondef(s::regprocedure)
  FROM unnest(ARRAY['adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)']) AS s;

DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_charge_priced_clicks(text[], bigint[], bigint[], numeric[], bigint[], text, date, date, date)'::regprocedure);
  old_declare text := E'DECLARE\n  result json;\n';
  old_locks text := E'  PERFORM pg_advisory_xact_lock(k.key)\n';
  old_comment text := '-- $7 is the current budget day (of the handler''s clock).';
  old_today text := '$7::date';
  old_stamp text := $q$'event_ts', floor(extract(epoch FROM now()) * 1000)::bigint$q$;
  new_def text;
BEGIN
  IF (length(old_def) - length(replace(old_def, old_declare, ''))) / length(old_declare) <> 1
     OR (length(old_def) - length(replace(old_def, old_locks, ''))) / length(old_locks) <> 1
     OR (length(old_def) - length(replace(old_def, old_comment, ''))) / length(old_comment) <> 1
     OR (length(old_def) - length(replace(old_def, old_today, ''))) / length(old_today) <> 8
     OR (length(old_def) - length(replace(old_def, old_stamp, ''))) / length(old_stamp) <> 1
     OR strpos(old_def, 'budget_today') > 0 THEN
    RAISE EXCEPTION 'adstream_charge_priced_clicks() must contain "%", "%", "%" and "%" once and "%" 8 times',
      old_declare, old_locks, old_comment, old_stamp, old_today;
  END IF;
  new_def := replace(old_def, old_today, 'budget_today');
  new_def := replace(new_def, old_stamp, $q$'event_ts', floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint$q$);
  new_def := replace(new_def, old_comment,
    '-- budget_today is the current budget day: $7 (the handler''s clock), or the last day' || E'\n'
    || '    -- budget-reset opened if later (the old day is over once the reset opened the new one).');
  new_def := replace(new_def, old_declare, old_declare || E'  budget_today date;\n');
  new_def := replace(new_def, old_locks,
    '  -- Shared with every charge, exclusive to budget-reset opening a day (1765000000000): the day' || E'\n'
    || '  -- read next is the one the reset opened, or the reset waits for this charge to commit.' || E'\n'
    || E'  PERFORM pg_advisory_xact_lock_shared(1764990000, 1);\n'
    || E'  SELECT greatest($7, max(o.budget_day)) INTO budget_today FROM budget_days_opened o;\n'
    || old_locks);
  EXECUTE new_def;
END $$;

-- Down Migration

DO $$
BEGIN
  EXECUTE (SELECT definition FROM adstream_replaced_functions WHERE migration = '1765000000000_opened-budget-days');
END $$;
DELETE FROM adstream_replaced_functions WHERE migration = '1765000000000_opened-budget-days';
DROP FUNCTION adstream_open_budget_day(date);
DROP TABLE budget_days_opened;
