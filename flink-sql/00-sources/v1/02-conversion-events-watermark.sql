-- Event time of conversion-events is the shop's event_ts. Orders may reach Kafka minutes
-- after they were placed, so the watermark trails by 5 minutes; later rows are dropped.
ALTER TABLE `conversion-events` MODIFY WATERMARK FOR `event_ts` AS `event_ts` - INTERVAL '5' MINUTE
