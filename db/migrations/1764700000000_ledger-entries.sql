-- Up Migration

-- Top-ups and manual adjustments are ledger entries, so that every balance is explained by the
-- ledger: per advertiser, balance = Σ signed amounts (DEDUCT negative; REFUND, TOPUP positive;
-- ADJUSTMENT signed). Written to apply to a database that already holds data.

ALTER TABLE ad_balance_histories DROP CONSTRAINT ad_balance_histories_type_check;
ALTER TABLE ad_balance_histories ADD CONSTRAINT ad_balance_histories_type_check
  CHECK (type IN ('DEDUCT', 'REFUND', 'TOPUP', 'ADJUSTMENT'));
-- A top-up or an adjustment belongs to the advertiser, not to a campaign; a charge or refund
-- always names its campaign.
ALTER TABLE ad_balance_histories ALTER COLUMN campaign_id DROP NOT NULL;
ALTER TABLE ad_balance_histories ADD CONSTRAINT ad_balance_histories_campaign_check
  CHECK (campaign_id IS NOT NULL OR type IN ('TOPUP', 'ADJUSTMENT'));
-- Adjustments are signed (a correction may take money back); everything else is positive.
ALTER TABLE ad_balance_histories DROP CONSTRAINT ad_balance_histories_amount_check;
ALTER TABLE ad_balance_histories ADD CONSTRAINT ad_balance_histories_amount_check
  CHECK (amount <> 0 AND (type = 'ADJUSTMENT' OR amount > 0));

-- The idempotency of a top-up or adjustment: one row per external reference (the payment id,
-- the ticket), inserted in the transaction that writes the ledger entry and moves the balance.
-- Deliberately not a unique index of the ledger: the ledger is partitioned by budget day, and a
-- unique index of a partitioned table must contain the partition key.
CREATE TABLE ledger_entry_refs (
  external_ref  text PRIMARY KEY CHECK (length(external_ref) BETWEEN 1 AND 200),
  advertiser_id bigint NOT NULL,
  type          text NOT NULL CHECK (type IN ('TOPUP', 'ADJUSTMENT')),
  amount        numeric NOT NULL CHECK (amount <> 0 AND (type = 'ADJUSTMENT' OR amount > 0)),
  -- event_id of the ledger entry written for it (`ledger:<external_ref>`).
  event_id      text NOT NULL,
  reason        text,
  recorded_by   text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entry_refs_advertiser_idx ON ledger_entry_refs (advertiser_id);

-- Balances that predate the ledger: one opening ADJUSTMENT per advertiser for what the ledger
-- does not explain (balance − Σ charges and refunds so far), so balance = Σ ledger holds from
-- here on. One statement: a charge committing concurrently is either in its snapshot (balance
-- and DEDUCT row both) or not at all. Its day is the UTC day of the migration.
WITH ledger AS (
  SELECT advertiser_id,
         sum(CASE WHEN type = 'DEDUCT' THEN -amount ELSE amount END) AS net
    FROM ad_balance_histories GROUP BY advertiser_id
), opening AS (
  SELECT a.advertiser_id, a.balance - coalesce(l.net, 0) AS amount
    FROM advertisers a LEFT JOIN ledger l USING (advertiser_id)
   WHERE a.balance - coalesce(l.net, 0) <> 0
), refs AS (
  INSERT INTO ledger_entry_refs (external_ref, advertiser_id, type, amount, event_id, reason, recorded_by)
  SELECT 'opening:' || advertiser_id, advertiser_id, 'ADJUSTMENT', amount, 'ledger:opening:' || advertiser_id,
         'opening balance: balance not explained by the ledger before top-ups were recorded', 'migration 1764700000000'
    FROM opening
)
INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
SELECT 'ledger:opening:' || advertiser_id, 'ADJUSTMENT', amount, advertiser_id, NULL, (now() AT TIME ZONE 'UTC')::date, now()
  FROM opening;

-- The reconciliation reads everything and writes nothing.
DO $$
BEGIN
  BEGIN
    CREATE ROLE adstream_reconcile LOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO adstream_reconcile', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO adstream_reconcile;
GRANT SELECT ON advertisers, campaigns, ad_balance_histories, campaign_daily_spend, click_voids, duplicate_clicks,
  outbox, dead_letters, ledger_entry_refs TO adstream_reconcile;
-- No worker function writes top-ups: the ledger command runs as the migration (master) user.

-- Down Migration

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM adstream_reconcile;
REVOKE USAGE ON SCHEMA public FROM adstream_reconcile;
DELETE FROM ad_balance_histories WHERE type IN ('TOPUP', 'ADJUSTMENT');
DROP TABLE ledger_entry_refs;
ALTER TABLE ad_balance_histories DROP CONSTRAINT ad_balance_histories_amount_check;
ALTER TABLE ad_balance_histories ADD CONSTRAINT ad_balance_histories_amount_check CHECK (amount > 0);
ALTER TABLE ad_balance_histories DROP CONSTRAINT ad_balance_histories_campaign_check;
ALTER TABLE ad_balance_histories ALTER COLUMN campaign_id SET NOT NULL;
ALTER TABLE ad_balance_histories DROP CONSTRAINT ad_balance_histories_type_check;
ALTER TABLE ad_balance_histories ADD CONSTRAINT ad_balance_histories_type_check CHECK (type IN ('DEDUCT', 'REFUND'));
