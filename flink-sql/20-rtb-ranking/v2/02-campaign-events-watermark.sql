-- event_ts becomes the event-time attribute of campaign-events, so "latest event per campaign"
-- is Flink's event-time deduplication (keep the row with the highest event_ts). v1's
-- ROW_NUMBER ordered by (event_ts, event_id) is a top-1 on ordinary columns, which Apache Flink
-- 2.1+ plans as insert-only on an append table (FLINK-40368): the retraction of a superseded
-- state is lost and the campaign is ranked twice. The watermark does not drop late campaign
-- events (deduplication compares event_ts only); it lags 1 minute so it never runs ahead of
-- a slightly reordered partition.
ALTER TABLE `campaign-events` MODIFY WATERMARK FOR `event_ts` AS `event_ts` - INTERVAL '1' MINUTE
