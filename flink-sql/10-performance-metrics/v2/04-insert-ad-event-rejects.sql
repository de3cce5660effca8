-- Every ad event 03 counts without its amount because the decimal string does not parse.
INSERT INTO `ad-event-rejects`
SELECT
  `event_id`,
  `event_type`,
  'actual_price' AS `field`,
  `actual_price` AS `bad_value`,
  `event_ts`
FROM `ad-events`
WHERE `event_type` = 'CLICK' AND `actual_price` IS NOT NULL AND TRY_CAST(`actual_price` AS DECIMAL(18, 2)) IS NULL
UNION ALL
SELECT
  `event_id`,
  `event_type`,
  'revenue_amount' AS `field`,
  `revenue_amount` AS `bad_value`,
  `event_ts`
FROM `ad-events`
WHERE `event_type` = 'CONVERSION' AND `revenue_amount` IS NOT NULL AND TRY_CAST(`revenue_amount` AS DECIMAL(18, 2)) IS NULL
