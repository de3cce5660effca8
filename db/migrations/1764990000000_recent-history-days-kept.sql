-- Up Migration

-- A day of the ledger, the voids or the duplicate log is expired only once nothing was written
-- into it within the retention. adstream_maintain_history() expired a day by its date alone, and
-- the date of a row is the budget day of the event's own time, not of when it was written: a
-- late click (event_ts up to years back is charged to its own day) charged into a day one day
-- inside the retention was detached with its DEDUCT a day or two later, while its Kafka record
-- could still be delivered again for the whole topic retention; the replay found no DEDUCT and
-- charged the click a second time (ledger-history.test.ts). The same holds for a late void or
-- refund log row and the replay of its compensation. The retention is longer than the topics'
-- (config), so a day whose rows were all written a retention ago has no replay left to meet.
--
-- The day is checked under its partition's ACCESS EXCLUSIVE lock, taken before the detach would
-- take it anyway: no charge writes into it between the check and the detach. A day kept is
-- reported 'kept-pending', like an outbox or dead-letter day still holding work, and looked at
-- again the next day. One more day than the retention is allowed, so the session's time zone,
-- in which `written_since` becomes a time, cannot make a difference.
CREATE FUNCTION adstream_history_day_pending(tbl text, part text, written_since date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  recent boolean := false;
BEGIN
  IF tbl IN ('ad_balance_histories', 'click_voids', 'duplicate_clicks') THEN
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', part);
    IF tbl = 'ad_balance_histories' THEN
      -- The row written last (the highest id, through the primary key) rather than a scan of
      -- the day's rows: ids follow the order of the inserts.
      EXECUTE format('SELECT coalesce((SELECT created_at >= %L::date FROM %I ORDER BY id DESC LIMIT 1), false)', written_since, part)
        INTO recent;
    ELSE
      EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE created_at >= %L::date)', part, written_since)
        INTO recent;
    END IF;
  END IF;
  RETURN recent OR adstream_history_day_pending(tbl, part);
END $$;
REVOKE ALL ON FUNCTION adstream_history_day_pending(text, text, date) FROM PUBLIC;

-- The check of 1764980000000 before a day is detached, replaced by the one above (the fragment
-- must occur exactly once). The definition replaced is kept in adstream_replaced_functions
-- (1764960000000) for the down migration.
INSERT INTO adstream_replaced_functions (migration, signature, definition)
VALUES ('1764990000000_recent-history-days-kept', 'adstream_maintain_history(date, integer, integer, text)',
        pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure));
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure);
  old_check text := 'IF adstream_history_day_pending(tbl, part.relname) THEN';
BEGIN
  IF (length(old_def) - length(replace(old_def, old_check, ''))) / length(old_check) <> 1 THEN
    RAISE EXCEPTION 'adstream_maintain_history() must contain "%" exactly once', old_check;
  END IF;
  EXECUTE replace(old_def, old_check, 'IF adstream_history_day_pending(tbl, part.relname, today - retention_days - 1) THEN');
END $$;

-- Down Migration

DO $$
BEGIN
  EXECUTE (SELECT definition FROM adstream_replaced_functions WHERE migration = '1764990000000_recent-history-days-kept');
END $$;
DELETE FROM adstream_replaced_functions WHERE migration = '1764990000000_recent-history-days-kept';
DROP FUNCTION adstream_history_day_pending(text, text, date);
