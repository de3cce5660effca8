-- Source records the ranking cannot use: a campaign event or catalogue entry whose decimal
-- string (`bid_price`, `price`) does not parse as DECIMAL(18, 2). The ranking skips them
-- (TRY_CAST gives NULL; the previous valid definition or price stays in force) and 04 writes
-- each one here, so an operator sees what was ignored and why. Append-only, kept 30 days.
CREATE TABLE `rtb-ranking-rejects` (
  `source_topic` STRING NOT NULL,
  `source_id` BIGINT NOT NULL,
  `field` STRING NOT NULL,
  `bad_value` STRING NOT NULL,
  `source_ts` TIMESTAMP_LTZ(3) NOT NULL
)
WITH (
  'changelog.mode' = 'append',
  'value.format' = 'json-registry',
  'kafka.cleanup-policy' = 'delete',
  'kafka.retention.time' = '30 d'
)
