-- Up Migration

-- What an expired ledger day contributed, so the reconciliation still balances once the day is
-- gone. adstream_maintain_history() detaches (or drops) a ledger day after the retention, but the
-- balances keep every charge, refund, top-up and adjustment of that day, and campaign_daily_spend
-- keeps the day's spend: the reconciliation, which reads only the partitions attached, reported
-- every advertiser and every campaign day with expired history as drift from the first expiry
-- on (dev: 35 days; prod: 400), for good, hiding any real drift behind it (ledger.test.ts).
-- The day's nets are recorded here, per advertiser and campaign, in the transaction that expires
-- it, under the partition's ACCESS EXCLUSIVE lock (taken by adstream_history_day_pending()
-- before the detach): nothing is written into the day between the sums and the detach.
CREATE TABLE ledger_expired_totals (
  spend_date    date NOT NULL,
  advertiser_id bigint NOT NULL,
  -- null: the advertiser's top-ups and adjustments of the day.
  campaign_id   bigint,
  -- Σ signed amounts (DEDUCT −; REFUND, TOPUP +; ADJUSTMENT signed), as the balance check sums them.
  balance_net   numeric NOT NULL,
  -- Σ DEDUCT − Σ REFUND, as the spend check sums them (0 for top-ups and adjustments).
  spend_net     numeric NOT NULL,
  entries       bigint NOT NULL,
  expired_at    timestamptz NOT NULL DEFAULT now()
);
-- A day expires once: a second expiry of the same day would count it twice, so it fails. A null
-- campaign_id (the advertiser's own rows) compares as one value: coalesce, not UNIQUE NULLS NOT
-- DISTINCT, which Postgres 14 (accepted by database.engineVersion) does not have.
CREATE UNIQUE INDEX ledger_expired_totals_key ON ledger_expired_totals (spend_date, advertiser_id, coalesce(campaign_id, -1));
GRANT SELECT ON ledger_expired_totals TO adstream_reconcile;

-- The detach of adstream_maintain_history() (1764990000000), preceded by the record of the
-- ledger day's nets (the fragment must occur exactly once). The definition replaced is kept in
-- adstream_replaced_functions (1764960000000) for the down migration.
INSERT INTO adstream_replaced_functions (migration, signature, definition)
VALUES ('1765020000000_expired-ledger-totals', 'adstream_maintain_history(date, integer, integer, text)',
        pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure));
DO $$
DECLARE
  old_def text := pg_get_functiondef('adstream_maintain_history(date, integer, integer, text)'::regprocedure);
  old_detach text := $q$EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', tbl, part.relname);$q$;
BEGIN
  IF (length(old_def) - length(replace(old_def, old_detach, ''))) / length(old_detach) <> 1 THEN
    RAISE EXCEPTION 'adstream_maintain_history() must contain "%" exactly once', old_detach;
  END IF;
  EXECUTE replace(old_def, old_detach,
    $q$IF tbl = 'ad_balance_histories' THEN
          -- What the day contributed to the balances and the spend (1765020000000).
          EXECUTE format($f$INSERT INTO ledger_expired_totals (spend_date, advertiser_id, campaign_id, balance_net, spend_net, entries)
            SELECT spend_date, advertiser_id, campaign_id,
                   sum(CASE WHEN type = 'DEDUCT' THEN -amount ELSE amount END),
                   sum(CASE type WHEN 'DEDUCT' THEN amount WHEN 'REFUND' THEN -amount ELSE 0 END), count(*)
              FROM %I GROUP BY spend_date, advertiser_id, campaign_id$f$, part.relname);
        END IF;
        $q$ || old_detach);
END $$;

-- Down Migration

DO $$
BEGIN
  EXECUTE (SELECT definition FROM adstream_replaced_functions WHERE migration = '1765020000000_expired-ledger-totals');
END $$;
DELETE FROM adstream_replaced_functions WHERE migration = '1765020000000_expired-ledger-totals';
DROP TABLE ledger_expired_totals;
