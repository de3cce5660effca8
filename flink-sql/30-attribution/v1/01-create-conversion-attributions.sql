-- Exactly one row per order: its last click, upserted by order_id.
CREATE TABLE `conversion-attributions` (
  `order_id` STRING NOT NULL,
  `conversion_event_id` STRING NOT NULL,
  `conversion_ts` TIMESTAMP_LTZ(3) NOT NULL,
  `product_id` BIGINT NOT NULL,
  `revenue_amount` STRING NOT NULL,
  `click_event_id` STRING NOT NULL,
  `click_ts` TIMESTAMP_LTZ(3) NOT NULL,
  `campaign_id` BIGINT NOT NULL,
  `advertiser_id` BIGINT NOT NULL,
  `ad_id` STRING NOT NULL,
  `matched_on` STRING NOT NULL,
  `seconds_to_conversion` BIGINT NOT NULL,
  PRIMARY KEY (`order_id`) NOT ENFORCED
)
DISTRIBUTED BY (`order_id`) INTO 6 BUCKETS
WITH (
  'changelog.mode' = 'upsert',
  'key.format' = 'json-registry',
  'value.format' = 'json-registry',
  'value.fields-include' = 'all',
  'kafka.cleanup-policy' = 'delete',
  'kafka.retention.time' = '30 d'
)
