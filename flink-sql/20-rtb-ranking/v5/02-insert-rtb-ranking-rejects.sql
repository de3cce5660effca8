-- v5: unchanged from v4's 02 (v4's INSERTs stop when v5 runs); re-reading from the earliest offset, it
-- reports each malformed record once more on the append-only topic when v5 starts.
-- v4: unchanged from v3's 04.
-- Every source record the ranking (01) skips for a malformed decimal string, as it arrives (append-only):
-- a campaign event whose bid_price, or a catalogue entry whose price, is present but does not
-- parse as DECIMAL(18, 2). The operator's view of what the ranking ignored (flink-sql/README.md).
INSERT INTO `rtb-ranking-rejects`
SELECT
  'campaign-events' AS `source_topic`,
  `campaign_id` AS `source_id`,
  'bid_price' AS `field`,
  `bid_price` AS `bad_value`,
  `event_ts` AS `source_ts`
FROM `campaign-events`
WHERE `bid_price` IS NOT NULL AND TRY_CAST(`bid_price` AS DECIMAL(18, 2)) IS NULL
UNION ALL
SELECT
  'product-catalog' AS `source_topic`,
  `product_id` AS `source_id`,
  'price' AS `field`,
  `price` AS `bad_value`,
  `updated_ts` AS `source_ts`
FROM `product-catalog`
WHERE `price` IS NOT NULL AND TRY_CAST(`price` AS DECIMAL(18, 2)) IS NULL
