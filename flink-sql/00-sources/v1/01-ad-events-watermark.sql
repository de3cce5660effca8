-- Event time of ad-events is the ad server's event_ts (not the Kafka append time). Every
-- consumer of the table shares this watermark: windows, interval joins and OVER windows
-- close 30 seconds after the highest event_ts seen, and rows behind it are dropped.
ALTER TABLE `ad-events` MODIFY WATERMARK FOR `event_ts` AS `event_ts` - INTERVAL '30' SECOND
