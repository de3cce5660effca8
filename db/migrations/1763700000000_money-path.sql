-- Up Migration

-- Money is NUMERIC everywhere: pg hands it to the workers as strings, never as JS floats.

CREATE TABLE advertisers (
  advertiser_id bigint PRIMARY KEY,
  name          text,
  -- May go negative: clicks already served are charged even when the balance is used up.
  balance       numeric NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
  campaign_id   bigint PRIMARY KEY,
  advertiser_id bigint NOT NULL REFERENCES advertisers (advertiser_id),
  status        text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'PAUSED', 'DELETED')),
  daily_budget  numeric CHECK (daily_budget >= 0),
  cpc           numeric CHECK (cpc > 0),
  paused_reason text,
  -- The campaign's definition, so CAMPAIGN_PAUSED / CAMPAIGN_RESUMED events can carry it.
  product_id    bigint,
  placement     text,
  category      text,
  bid_price     numeric CHECK (bid_price >= 0),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_advertiser_idx ON campaigns (advertiser_id);
CREATE INDEX campaigns_budget_paused_idx ON campaigns (campaign_id)
  WHERE status = 'PAUSED' AND paused_reason = 'BUDGET_EXHAUSTED';

-- The ledger. UNIQUE (event_id, type) is the idempotency key of every charge and refund:
-- a redelivered click inserts nothing, a second compensation for the same click refunds nothing.
-- No foreign keys on this hot table on purpose: the handlers check campaign and advertiser in the
-- same transaction, under the advertiser lock, and campaigns are never deleted (status DELETED);
-- a foreign key would add a lookup and a KEY SHARE lock on the campaign row per charged click.
CREATE TABLE ad_balance_histories (
  id              bigserial PRIMARY KEY,
  event_id        text NOT NULL,
  type            text NOT NULL CHECK (type IN ('DEDUCT', 'REFUND')),
  amount          numeric NOT NULL CHECK (amount > 0),
  advertiser_id   bigint NOT NULL,
  campaign_id     bigint NOT NULL,
  -- Budget day of the click (calendar day of its event_ts in BUDGET_TIME_ZONE); a refund
  -- restores the spend of the same day the charge went to.
  spend_date      date NOT NULL,
  event_ts        timestamptz,
  compensation_id text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ad_balance_histories_event_type_key UNIQUE (event_id, type)
);
-- Only the indexes the money path needs: every extra index is paid on each charged click. Add
-- reporting indexes (e.g. (advertiser_id, created_at)) in a later migration if statements need them.

-- Spend per campaign and budget day; warned_at / exhausted_at make each threshold fire once a day.
-- (No foreign key, for the same reason as ad_balance_histories.)
CREATE TABLE campaign_daily_spend (
  campaign_id  bigint NOT NULL,
  spend_date   date NOT NULL,
  spend        numeric NOT NULL DEFAULT 0,
  clicks       bigint NOT NULL DEFAULT 0,
  daily_budget numeric,
  warned_at    timestamptz,
  exhausted_at timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, spend_date)
);

-- A compensation that arrived before the click it refunds: the click is never charged.
CREATE TABLE click_voids (
  event_id        text PRIMARY KEY,
  compensation_id text NOT NULL,
  advertiser_id   bigint NOT NULL,
  campaign_id     bigint NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- The duplicate-click log; its primary key makes each compensation idempotent.
CREATE TABLE duplicate_clicks (
  compensation_id      text PRIMARY KEY,
  duplicate_event_id   text NOT NULL,
  original_event_id    text NOT NULL,
  advertiser_id        bigint NOT NULL,
  campaign_id          bigint NOT NULL,
  ad_id                text NOT NULL,
  device_id            text NOT NULL,
  duplicate_event_ts   timestamptz NOT NULL,
  original_event_ts    timestamptz NOT NULL,
  quoted_refund_amount numeric,
  -- REFUNDED: the charge was returned now; VOIDED: not charged yet, the charge will be skipped;
  -- ALREADY_SETTLED: another compensation already refunded or voided that click.
  outcome              text NOT NULL CHECK (outcome IN ('REFUNDED', 'VOIDED', 'ALREADY_SETTLED')),
  refunded_amount      numeric NOT NULL DEFAULT 0,
  created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX duplicate_clicks_duplicate_event_idx ON duplicate_clicks (duplicate_event_id);
CREATE INDEX duplicate_clicks_created_idx ON duplicate_clicks (created_at);

-- Transactional outbox: written in the money transaction, published after commit.
CREATE TABLE outbox (
  id                 bigserial PRIMARY KEY,
  kind               text NOT NULL CHECK (kind IN ('BUDGET_WARNING', 'CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED')),
  idempotency_key    text NOT NULL UNIQUE,
  payload            jsonb NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  -- Set once every destination the kind goes to has it.
  published_at       timestamptz,
  sns_published_at   timestamptz,
  kafka_published_at timestamptz,
  attempts           integer NOT NULL DEFAULT 0,
  last_error         text
);
CREATE INDEX outbox_sns_pending_idx ON outbox (id) WHERE sns_published_at IS NULL;
-- One row per destination; a drain holds its row (FOR UPDATE SKIP LOCKED) while it publishes, so
-- one drain at a time sends to a destination and rows go out in id order. A row lock rather than
-- an advisory lock: advisory-lock functions pin RDS Proxy connections.
CREATE TABLE outbox_publishers (
  destination text PRIMARY KEY CHECK (destination IN ('sns', 'kafka'))
);
INSERT INTO outbox_publishers (destination) VALUES ('sns'), ('kafka');
CREATE INDEX outbox_kafka_pending_idx ON outbox (id)
  WHERE kafka_published_at IS NULL AND kind IN ('CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED');

-- Records no handler could apply, with their Kafka coordinates; a redelivered bad record is
-- recorded once.
CREATE TABLE dead_letters (
  id              bigserial PRIMARY KEY,
  handler         text NOT NULL,
  topic           text NOT NULL,
  kafka_partition integer NOT NULL,
  kafka_offset    bigint NOT NULL,
  reason          text NOT NULL,
  detail          text,
  raw_key         bytea,
  raw_value       bytea,
  raw_value_bytes integer,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT dead_letters_coordinates_key UNIQUE (topic, kafka_partition, kafka_offset, handler)
);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);

-- Down Migration

DROP TABLE dead_letters;
DROP TABLE outbox_publishers;
DROP TABLE outbox;
DROP TABLE duplicate_clicks;
DROP TABLE click_voids;
DROP TABLE campaign_daily_spend;
DROP TABLE ad_balance_histories;
DROP TABLE campaigns;
DROP TABLE advertisers;
