-- Ad events whose decimal string (`actual_price` of a CLICK, `revenue_amount` of a CONVERSION)
-- does not parse as DECIMAL(18, 2). 03 counts the event without the amount (TRY_CAST gives
-- NULL, summed as 0) instead of failing the statement, and 04 writes each one here, so an
-- operator sees which events the money columns of ad-performance-5m left out. Append-only,
-- kept 30 days. (The click-balance worker validates the same field and dead-letters the click.)
CREATE TABLE `ad-event-rejects` (
  `event_id` STRING NOT NULL,
  `event_type` STRING NOT NULL,
  `field` STRING NOT NULL,
  `bad_value` STRING NOT NULL,
  `event_ts` TIMESTAMP_LTZ(3) NOT NULL
)
WITH (
  'changelog.mode' = 'append',
  'value.format' = 'json-registry',
  'kafka.cleanup-policy' = 'delete',
  'kafka.retention.time' = '30 d'
)
