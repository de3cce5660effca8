-- One row per (campaign, product, placement, 5-minute window), upserted by that natural key.
-- Money columns are decimal strings ("120.50"), like every amount on our topics.
CREATE TABLE `ad-performance-5m` (
  `campaign_id` BIGINT NOT NULL,
  `product_id` BIGINT NOT NULL,
  `placement` STRING NOT NULL,
  `window_start` TIMESTAMP(3) NOT NULL,
  `window_end` TIMESTAMP(3) NOT NULL,
  `impressions` BIGINT NOT NULL,
  `clicks` BIGINT NOT NULL,
  `conversions` BIGINT NOT NULL,
  `gross_spend` STRING NOT NULL,
  `revenue` STRING NOT NULL,
  `ctr_pct` DOUBLE,
  `cvr_pct` DOUBLE,
  `roas` DOUBLE,
  PRIMARY KEY (`campaign_id`, `product_id`, `placement`, `window_start`) NOT ENFORCED
)
DISTRIBUTED BY (`campaign_id`, `product_id`, `placement`, `window_start`) INTO 6 BUCKETS
WITH (
  'changelog.mode' = 'upsert',
  'key.format' = 'json-registry',
  'value.format' = 'json-registry',
  'value.fields-include' = 'all',
  'kafka.cleanup-policy' = 'delete',
  'kafka.retention.time' = '30 d'
)
