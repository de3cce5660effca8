-- Up Migration

-- Re-driving dead letters (npm run redrive): a dead letter whose cause is fixed (a click
-- dead-lettered UNKNOWN_CAMPAIGN after the campaign appears) is fed through its handler again,
-- at most once. The re-drive marks the row in the transaction that applies the record, so the
-- mark and the money commit together; a second re-drive of the same row waits on the first's
-- row lock and then finds it marked. A row that still fails stays in place, with its current
-- reason and detail, and can be re-driven again once that is fixed. Additive only.
ALTER TABLE dead_letters ADD COLUMN redriven_at timestamptz;
-- What the re-drive did: CHARGED (a click charged now), REFUNDED (a duplicate refunded now), or
-- APPLIED (it went through without moving money: voided before its charge, settled already, a
-- ranking written, or applied meanwhile by a replay, idempotency leaving nothing to move).
ALTER TABLE dead_letters ADD COLUMN redrive_outcome text
  CHECK (redrive_outcome IN ('CHARGED', 'REFUNDED', 'APPLIED'));
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_redrive_check
  CHECK ((redriven_at IS NULL) = (redrive_outcome IS NULL));
-- Attempts that still failed, and when the last one ran; reason and detail are the latest cause,
-- first_reason the one it was dead-lettered with.
ALTER TABLE dead_letters ADD COLUMN redrive_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN last_redrive_at timestamptz;
ALTER TABLE dead_letters ADD COLUMN first_reason text;
CREATE INDEX dead_letters_pending_idx ON dead_letters (reason, id) WHERE redriven_at IS NULL;

-- Down Migration

DROP INDEX dead_letters_pending_idx;
ALTER TABLE dead_letters DROP COLUMN first_reason;
ALTER TABLE dead_letters DROP COLUMN last_redrive_at;
ALTER TABLE dead_letters DROP COLUMN redrive_attempts;
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_redrive_check;
ALTER TABLE dead_letters DROP COLUMN redrive_outcome;
ALTER TABLE dead_letters DROP COLUMN redriven_at;
