-- Up Migration

-- One body for the partition upkeep. 1765040000000 built the five-argument
-- adstream_maintain_history(…, only_table), which budget-reset calls once per table, from the text
-- of the four-argument one and left that one as it was: two copies of the same upkeep, and a later
-- change to one of them would silently not reach the other. The four-argument function (manual
-- runs, tests) now calls the five-argument one for each table in turn, in the order it always
-- kept them, and returns what each call returned. It still runs in one transaction; each table's
-- lock wait is now bounded by the five-argument function's lock_timeout (2 s), so on a busy
-- database a manual run fails with lock_not_available instead of queueing charges behind it.
-- The replaced definition is kept in adstream_replaced_functions for the down migration.
INSERT INTO adstream_replaced_functions (migration, signature, definition)
SELECT '1765060000000_upkeep-four-argument-wrapper', s, pg_get_functiondef(s::regprocedure)
  FROM unnest(ARRAY['adstream_maintain_history(date, integer, integer, text)']) AS s;

CREATE OR REPLACE FUNCTION adstream_maintain_history(today date, ahead_days integer, retention_days integer, expired text)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path TO 'public'
AS $fn$
DECLARE
  tbl text;
BEGIN
  FOREACH tbl IN ARRAY ARRAY['ad_balance_histories', 'click_voids', 'duplicate_clicks', 'dead_letters', 'outbox'] LOOP
    RETURN QUERY SELECT m.action, m.partition_name FROM adstream_maintain_history(today, ahead_days, retention_days, expired, tbl) AS m;
  END LOOP;
END
$fn$;

-- Down Migration

DO $$
DECLARE
  old record;
BEGIN
  FOR old IN SELECT definition FROM adstream_replaced_functions WHERE migration = '1765060000000_upkeep-four-argument-wrapper' LOOP
    EXECUTE old.definition;
  END LOOP;
  DELETE FROM adstream_replaced_functions WHERE migration = '1765060000000_upkeep-four-argument-wrapper';
END $$;
