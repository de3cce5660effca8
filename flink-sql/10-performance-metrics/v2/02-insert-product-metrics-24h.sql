-- v2: unchanged from v1 (the rollup reads no decimal string); rebuilt beside the new 03.
-- Pipeline 2 rolled up to the product: trailing 24-hour windows sliding every hour, per product.
-- HOP aggregation shares hourly slices, so an event is stored once, not 24 times.
-- CTR and CVR are fractions (the ranking's defaults 0.01 / 0.005 apply when they are NULL).
INSERT INTO `product-metrics-24h`
SELECT
  `product_id`,
  `window_start`,
  `window_end`,
  `impressions`,
  `clicks`,
  `conversions`,
  CASE WHEN `impressions` > 0 THEN CAST(`clicks` AS DOUBLE) / `impressions` END AS `ctr`,
  CASE WHEN `clicks` > 0 THEN CAST(`conversions` AS DOUBLE) / `clicks` END AS `cvr`
FROM (
  SELECT
    `product_id`,
    `window_start`,
    `window_end`,
    COUNT(CASE WHEN `event_type` = 'IMPRESSION' THEN 1 END) AS `impressions`,
    COUNT(CASE WHEN `event_type` = 'CLICK' THEN 1 END) AS `clicks`,
    COUNT(CASE WHEN `event_type` = 'CONVERSION' THEN 1 END) AS `conversions`
  FROM TABLE(HOP(TABLE `ad-events`, DESCRIPTOR(`event_ts`), INTERVAL '1' HOUR, INTERVAL '24' HOUR))
  GROUP BY `product_id`, `window_start`, `window_end`
)
