-- Conversion events whose `revenue_amount` does not parse as DECIMAL(18, 2). The attribution
-- (02) leaves such an order out instead of failing the statement at run time (v1's CAST threw;
-- TRY_CAST gives NULL), and 03 writes each one here, so an operator sees which orders
-- conversion-attributions is missing and why. Append-only, kept 30 days.
CREATE TABLE `conversion-event-rejects` (
  `event_id` STRING NOT NULL,
  `order_id` STRING NOT NULL,
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
