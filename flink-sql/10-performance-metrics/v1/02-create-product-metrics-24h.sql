-- The latest trailing-24-hour CTR and CVR of each product: the ranking's product metrics.
-- Upserted by product, so the newest hourly window replaces the previous one.
CREATE TABLE `product-metrics-24h` (
  `product_id` BIGINT NOT NULL,
  `window_start` TIMESTAMP(3) NOT NULL,
  `window_end` TIMESTAMP(3) NOT NULL,
  `impressions` BIGINT NOT NULL,
  `clicks` BIGINT NOT NULL,
  `conversions` BIGINT NOT NULL,
  `ctr` DOUBLE,
  `cvr` DOUBLE,
  PRIMARY KEY (`product_id`) NOT ENFORCED
)
DISTRIBUTED BY (`product_id`) INTO 6 BUCKETS
WITH (
  'changelog.mode' = 'upsert',
  'key.format' = 'json-registry',
  'value.format' = 'json-registry',
  'value.fields-include' = 'all',
  'kafka.cleanup-policy' = 'compact'
)
