-- Up Migration

-- Fixes found by adversarial testing of the workers (issue 9). Written to apply to a database
-- that already holds data: only additive columns, a re-keyed primary key whose new columns were
-- already NOT NULL, constraints that existing rows satisfy or that are added NOT VALID.

-- Every status change the workers make (budget pause, budget resume) bumps the campaign's
-- status_seq; the outbox key and event id of the change carry it, so a second pause on the same
-- day (after a manual resume, or a raised budget and a resume) is announced too, exactly once.
ALTER TABLE campaigns ADD COLUMN status_seq bigint NOT NULL DEFAULT 0;

-- A price is charged in micro-units: at most 6 fraction digits. Trailing zeros are fine
-- (100.0000000 is 100), a real 7th digit (100/3.0) is refused when written, with this name.
-- NOT VALID first so a database holding such a legacy price still migrates; validated at once
-- when no row violates it. A legacy violating price is dead-lettered per click as NO_PRICE
-- with a detail naming the price, never silently.
ALTER TABLE campaigns ADD CONSTRAINT campaigns_cpc_micro_units CHECK (cpc = round(cpc, 6)) NOT VALID;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM campaigns WHERE cpc <> round(cpc, 6)) THEN
    ALTER TABLE campaigns VALIDATE CONSTRAINT campaigns_cpc_micro_units;
  END IF;
END $$;

-- The budget the 90 % warning fired for: raising the budget re-arms the warning of the day.
ALTER TABLE campaign_daily_spend ADD COLUMN warned_budget numeric;
UPDATE campaign_daily_spend SET warned_budget = daily_budget WHERE warned_at IS NOT NULL;

-- A void applies only to the click of the advertiser and campaign it names: a compensation
-- naming the wrong ones can no longer occupy the click's slot and hide the correct void.
ALTER TABLE click_voids DROP CONSTRAINT click_voids_pkey;
ALTER TABLE click_voids ADD CONSTRAINT click_voids_pkey PRIMARY KEY (event_id, advertiser_id, campaign_id);

-- The log is keyed by the compensation and the advertiser and campaign it names, for the same
-- reason: a bad copy of a compensation (same id, another advertiser or campaign) logged first
-- must not settle the correct one as a replay.
ALTER TABLE duplicate_clicks DROP CONSTRAINT duplicate_clicks_pkey;
ALTER TABLE duplicate_clicks ADD CONSTRAINT duplicate_clicks_pkey PRIMARY KEY (compensation_id, advertiser_id, campaign_id);

-- ORIGINAL_KEPT: the click named as a duplicate is the original of a duplicate already refunded
-- or voided (the same pair seen in the other order); refunding it too would leave its duplicate
-- group with no charge at all.
ALTER TABLE duplicate_clicks DROP CONSTRAINT duplicate_clicks_outcome_check;
ALTER TABLE duplicate_clicks ADD CONSTRAINT duplicate_clicks_outcome_check
  CHECK (outcome IN ('REFUNDED', 'VOIDED', 'ALREADY_SETTLED', 'ORIGINAL_KEPT'));
CREATE INDEX duplicate_clicks_original_event_idx ON duplicate_clicks (original_event_id);

-- Down Migration

DROP INDEX duplicate_clicks_original_event_idx;
ALTER TABLE duplicate_clicks DROP CONSTRAINT duplicate_clicks_outcome_check;
ALTER TABLE duplicate_clicks ADD CONSTRAINT duplicate_clicks_outcome_check
  CHECK (outcome IN ('REFUNDED', 'VOIDED', 'ALREADY_SETTLED'));
ALTER TABLE duplicate_clicks DROP CONSTRAINT duplicate_clicks_pkey;
ALTER TABLE duplicate_clicks ADD CONSTRAINT duplicate_clicks_pkey PRIMARY KEY (compensation_id);
ALTER TABLE click_voids DROP CONSTRAINT click_voids_pkey;
ALTER TABLE click_voids ADD CONSTRAINT click_voids_pkey PRIMARY KEY (event_id);
ALTER TABLE campaign_daily_spend DROP COLUMN warned_budget;
ALTER TABLE campaigns DROP CONSTRAINT campaigns_cpc_micro_units;
ALTER TABLE campaigns DROP COLUMN status_seq;
