-- Ranking rows, second schema (pipeline v3): v1's row plus `as_of`. Two kinds of row:
--  * a slot's ranking (placement, category non-empty): `ranking` holds its top-N, `as_of` is
--    NULL; emitted when the ranking changes, a tombstone when the slot becomes empty;
--  * the heartbeat under the reserved key ('', ''): `as_of` is the start (epoch ms, UTC) of the
--    5-minute bucket of the newest ad event the statement has read, `ranking` is NULL.
-- The ranking-cache worker writes rankings without expiry and turns the heartbeat into the
-- freshness key the bidder checks (contracts/rankings.ts). A new schema is a new table:
-- rtb-rankings (written by v1 and v2) keeps its rows.
CREATE TABLE `rtb-rankings-v2` (
  `placement` STRING NOT NULL,
  `category` STRING NOT NULL,
  `as_of` BIGINT,
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
