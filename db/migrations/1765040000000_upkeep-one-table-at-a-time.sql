-- Up Migration

-- The partition upkeep, one history table per call and so per transaction, giving way after 2 s.
-- adstream_maintain_history(today, ahead, retention, expired) keeps all five tables in one
-- transaction: the ACCESS EXCLUSIVE lock it takes on each parent to create or detach a day stays
-- held until it returns. A charge locks the voids before the ledger; the upkeep took the ledger
-- first. When the upkeep waited for the ledger (a charge or a reader holding it), a charge
-- arriving meanwhile took the voids and queued behind it; the upkeep, once it had the ledger,
-- waited for the voids: a deadlock, and one of the two was aborted (ledger-history.test.ts ›
-- "the daily upkeep never deadlocks with a charge …"). That happened on the first run of every
-- day under traffic. One table per transaction holds one table's locks at a time, parent before
-- partitions as every statement takes them, so there is no cycle.
-- The lock_timeout bounds how long charges queue behind the upkeep's lock request when a long
-- reader (a reconciliation) holds a table: the call fails with lock_not_available, budget-reset
-- logs the table as postponed and the next hourly run tries again (partitions are made days ahead).
-- The four-argument function stays as it was, for manual runs on a quiet database.
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure);
  old_header text := 'adstream_maintain_history(today date, ahead_days integer, retention_days integer, expired text)';
  old_settings text := E' SET search_path TO ''public''\n';
  old_declare text := E'DECLARE\n  tbl text;\n';
  old_loop text := $q$FOREACH tbl IN ARRAY ARRAY['ad_balance_histories', 'click_voids', 'duplicate_clicks', 'dead_letters', 'outbox'] LOOP$q$;
  old_end text := E'  END LOOP;\nEND';
  new_def text;
BEGIN
  IF (length(old_def) - length(replace(old_def, old_header, ''))) / length(old_header) <> 1
     OR (length(old_def) - length(replace(old_def, old_settings, ''))) / length(old_settings) <> 1
     OR (length(old_def) - length(replace(old_def, old_declare, ''))) / length(old_declare) <> 1
     OR (length(old_def) - length(replace(old_def, old_loop, ''))) / length(old_loop) <> 1
     OR (length(old_def) - length(replace(old_def, old_end, ''))) / length(old_end) <> 1 THEN
    RAISE EXCEPTION 'adstream_maintain_history() must contain "%", "%", "%", "%" and "%" exactly once',
      old_header, old_settings, old_declare, old_loop, old_end;
  END IF;
  new_def := replace(old_def, old_header, replace(old_header, 'expired text)', 'expired text, only_table text)'));
  new_def := replace(new_def, old_settings, old_settings || E' SET lock_timeout TO ''2s''\n');
  new_def := replace(new_def, old_declare, old_declare || E'  matched boolean := false;\n');
  new_def := replace(new_def, old_loop, old_loop || E'\n'
    || E'    -- Only the table asked for (1765040000000): one table per call, so per transaction.\n'
    || E'    CONTINUE WHEN tbl IS DISTINCT FROM only_table;\n'
    || E'    matched := true;');
  new_def := replace(new_def, old_end, E'  END LOOP;\n'
    || E'  IF NOT matched THEN\n'
    || E'    RAISE EXCEPTION ''% is not a history table the upkeep keeps'', only_table;\n'
    || E'  END IF;\nEND');
  EXECUTE new_def;
END $$;
REVOKE ALL ON FUNCTION adstream_maintain_history(date, integer, integer, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adstream_maintain_history(date, integer, integer, text, text) TO adstream_budget_reset;

-- Down Migration

DROP FUNCTION adstream_maintain_history(date, integer, integer, text, text);
