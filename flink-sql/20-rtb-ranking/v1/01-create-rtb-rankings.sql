-- One row per (placement, category) holding its top-N campaigns, upserted into a compacted
-- topic; a tombstone means the ranking became empty. The value shape is contracts/rankings.ts:
-- ARRAY_AGG keeps no order, so every element carries its rank_no.
CREATE TABLE `rtb-rankings` (
  `placement` STRING NOT NULL,
  `category` STRING NOT NULL,
  `ranking` ARRAY<ROW<`rank_no` BIGINT, `campaign_id` BIGINT, `advertiser_id` BIGINT, `product_id` BIGINT, `bid_price` STRING, `score` DOUBLE>>,
  PRIMARY KEY (`placement`, `category`) NOT ENFORCED
)
DISTRIBUTED BY (`placement`, `category`) INTO 6 BUCKETS
WITH (
  'changelog.mode' = 'upsert',
  'key.format' = 'json-registry',
  'value.format' = 'json-registry',
  'value.fields-include' = 'all',
  'kafka.cleanup-policy' = 'compact'
)
