-- updated_ts becomes the event-time attribute of product-catalog (latest price per product by
-- event-time deduplication; see 02).
ALTER TABLE `product-catalog` MODIFY WATERMARK FOR `updated_ts` AS `updated_ts` - INTERVAL '1' MINUTE
