-- v2: v1 with TRY_CAST on revenue_amount: an order whose amount does not parse as
-- DECIMAL(18, 2) is left out (v1's CAST failed the statement at run time) and 03 reports it on
-- conversion-event-rejects. Writes the table v1 created (v1 stays deployed, stopped, for it).
-- Last-click attribution. Two interval joins, one per identity (same device, same session),
-- each an equality join on (identity, product) bounded to clicks in [order - 24 h, order):
-- a click after the purchase can never match. UNION ALL combines them; ROW_NUMBER per order
-- keeps the latest click (ties: click event_id, then DEVICE before SESSION), so each order gets
-- exactly one row, upserted by order_id.
-- State: the joins keep 24 h of clicks plus the watermark delay; the per-order ranking is
-- bounded by sql.state-ttl (config flink.stateTtl.attributionHours, at least 25 h).
INSERT INTO `conversion-attributions`
WITH
  `clicks` AS (
    SELECT `event_id`, `event_ts`, `campaign_id`, `advertiser_id`, `product_id`, `ad_id`, `device_id`, `session_id`
    FROM `ad-events`
    WHERE `event_type` = 'CLICK'
  ),
  `orders` AS (
    SELECT `event_id`, `event_ts`, `order_id`, `product_id`, `device_id`, `session_id`, TRY_CAST(`revenue_amount` AS DECIMAL(18, 2)) AS `revenue_amount`
    FROM `conversion-events`
    WHERE TRY_CAST(`revenue_amount` AS DECIMAL(18, 2)) IS NOT NULL
  ),
  `candidates` AS (
    SELECT
      `o`.`order_id`,
      `o`.`event_id` AS `conversion_event_id`,
      CAST(`o`.`event_ts` AS TIMESTAMP_LTZ(3)) AS `conversion_ts`,
      `o`.`product_id`,
      `o`.`revenue_amount`,
      `c`.`event_id` AS `click_event_id`,
      CAST(`c`.`event_ts` AS TIMESTAMP_LTZ(3)) AS `click_ts`,
      `c`.`campaign_id`,
      `c`.`advertiser_id`,
      `c`.`ad_id`,
      'DEVICE' AS `matched_on`
    FROM `orders` AS `o`
    JOIN `clicks` AS `c`
      ON `c`.`device_id` = `o`.`device_id`
      AND `c`.`product_id` = `o`.`product_id`
      AND `c`.`event_ts` >= `o`.`event_ts` - INTERVAL '24' HOUR
      AND `c`.`event_ts` < `o`.`event_ts`
    UNION ALL
    SELECT
      `o`.`order_id`,
      `o`.`event_id` AS `conversion_event_id`,
      CAST(`o`.`event_ts` AS TIMESTAMP_LTZ(3)) AS `conversion_ts`,
      `o`.`product_id`,
      `o`.`revenue_amount`,
      `c`.`event_id` AS `click_event_id`,
      CAST(`c`.`event_ts` AS TIMESTAMP_LTZ(3)) AS `click_ts`,
      `c`.`campaign_id`,
      `c`.`advertiser_id`,
      `c`.`ad_id`,
      'SESSION' AS `matched_on`
    FROM `orders` AS `o`
    JOIN `clicks` AS `c`
      ON `c`.`session_id` = `o`.`session_id`
      AND `c`.`product_id` = `o`.`product_id`
      AND `c`.`event_ts` >= `o`.`event_ts` - INTERVAL '24' HOUR
      AND `c`.`event_ts` < `o`.`event_ts`
  ),
  `latest_click` AS (
    SELECT *
    FROM (
      SELECT
        `order_id`, `conversion_event_id`, `conversion_ts`, `product_id`, `revenue_amount`,
        `click_event_id`, `click_ts`, `campaign_id`, `advertiser_id`, `ad_id`, `matched_on`,
        ROW_NUMBER() OVER (PARTITION BY `order_id` ORDER BY `click_ts` DESC, `click_event_id` DESC, `matched_on` ASC) AS `row_no`
      FROM `candidates`
    )
    WHERE `row_no` = 1
  )
SELECT
  `order_id`,
  `conversion_event_id`,
  `conversion_ts`,
  `product_id`,
  CAST(`revenue_amount` AS STRING) AS `revenue_amount`,
  `click_event_id`,
  `click_ts`,
  `campaign_id`,
  `advertiser_id`,
  `ad_id`,
  `matched_on`,
  CAST(TIMESTAMPDIFF(SECOND, `click_ts`, `conversion_ts`) AS BIGINT) AS `seconds_to_conversion`
FROM `latest_click`
