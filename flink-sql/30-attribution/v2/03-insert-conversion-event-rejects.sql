-- Every conversion event 02 leaves out because its revenue_amount does not parse as
-- DECIMAL(18, 2), as it arrives (append-only): the operator's view of the orders
-- conversion-attributions is missing (flink-sql/README.md, "Attribution").
INSERT INTO `conversion-event-rejects`
SELECT
  `event_id`,
  `order_id`,
  'revenue_amount' AS `field`,
  `revenue_amount` AS `bad_value`,
  `event_ts`
FROM `conversion-events`
WHERE TRY_CAST(`revenue_amount` AS DECIMAL(18, 2)) IS NULL
