-- v3 of the duplicate-click rule: v2 with the guard v1 had, that a click is never the duplicate
-- of itself. The same record delivered twice (a producer retry) is two rows with one event_id
-- and one event_ts, and a click sent again with a later event_ts (re-stamped) is two rows with
-- one event_id: v2 named the second copy a duplicate of the first, and its compensation (id
-- SHA-256 of that event_id) refunded the click's only charge, or took the id of the click's real
-- compensation (flink-sql/scenarios/duplicate-clicks/redelivered-click.json). Copies of one
-- click are the click-balance worker's business: it charges an event_id once.
-- The rule otherwise as in v2 (v1: a same-millisecond pair was judged in arrival order):
-- a CLICK is a duplicate when an earlier CLICK of the same (device, campaign, ad) happened less
-- than 5 minutes before it, or when a CLICK with a smaller event_id happened in the same
-- millisecond. Two steps, both event-time OVER windows (append-only: each click judged once):
--   1. per millisecond: MIN(event_id) over the clicks of that exact event_ts (RANGE of 0, all
--      peers included whatever their arrival order). Every click but the smallest id of its
--      millisecond is a duplicate of that smallest one;
--   2. across milliseconds: LAG over the first click of each millisecond only; a previous row
--      of the same event_id (another copy of the click) is no original.
-- compensation_id is SHA-256 of the duplicate's event_id (as in v1 and v2: a click judged a
-- duplicate by several versions gets one id, and the worker refunds once). Timestamps are
-- cast to TIMESTAMP_LTZ(3) so no time attribute reaches the sink.
-- State: one millisecond of clicks per key (step 1, closed by the watermark) and one previous
-- click per key (step 2), expired by sql.state-ttl (flink.stateTtl.duplicateClicksHours).
INSERT INTO `compensation-events` (
  `compensation_id`,
  `duplicate_event_id`,
  `original_event_id`,
  `advertiser_id`,
  `campaign_id`,
  `ad_id`,
  `device_id`,
  `duplicate_event_ts`,
  `original_event_ts`,
  `refund_amount`,
  `reason`,
  `compensation_type`
)
WITH
  `clicks` AS (
    SELECT
      `event_id`,
      `event_ts`,
      `advertiser_id`,
      `campaign_id`,
      `ad_id`,
      `device_id`,
      `actual_price`,
      MIN(`event_id`) OVER (
        PARTITION BY `device_id`, `campaign_id`, `ad_id`
        ORDER BY `event_ts`
        RANGE BETWEEN INTERVAL '0' SECOND PRECEDING AND CURRENT ROW
      ) AS `first_event_id`
    FROM `ad-events`
    WHERE `event_type` = 'CLICK'
  ),
  `first_clicks` AS (
    SELECT
      `event_id`,
      `event_ts`,
      `advertiser_id`,
      `campaign_id`,
      `ad_id`,
      `device_id`,
      `actual_price`,
      LAG(`event_id`) OVER (PARTITION BY `device_id`, `campaign_id`, `ad_id` ORDER BY `event_ts`) AS `previous_event_id`,
      LAG(`event_ts`) OVER (PARTITION BY `device_id`, `campaign_id`, `ad_id` ORDER BY `event_ts`) AS `previous_event_ts`
    FROM `clicks`
    WHERE `event_id` = `first_event_id`
  )
SELECT
  SHA256(CONCAT('duplicate-click:', `event_id`)) AS `compensation_id`,
  `event_id` AS `duplicate_event_id`,
  `first_event_id` AS `original_event_id`,
  `advertiser_id`,
  `campaign_id`,
  `ad_id`,
  `device_id`,
  CAST(`event_ts` AS TIMESTAMP_LTZ(3)) AS `duplicate_event_ts`,
  CAST(`event_ts` AS TIMESTAMP_LTZ(3)) AS `original_event_ts`,
  `actual_price` AS `refund_amount`,
  'DUPLICATE_CLICK_DETECTED' AS `reason`,
  'BALANCE_REFUND' AS `compensation_type`
FROM `clicks`
WHERE `event_id` <> `first_event_id`
UNION ALL
SELECT
  SHA256(CONCAT('duplicate-click:', `event_id`)) AS `compensation_id`,
  `event_id` AS `duplicate_event_id`,
  `previous_event_id` AS `original_event_id`,
  `advertiser_id`,
  `campaign_id`,
  `ad_id`,
  `device_id`,
  CAST(`event_ts` AS TIMESTAMP_LTZ(3)) AS `duplicate_event_ts`,
  CAST(`previous_event_ts` AS TIMESTAMP_LTZ(3)) AS `original_event_ts`,
  `actual_price` AS `refund_amount`,
  'DUPLICATE_CLICK_DETECTED' AS `reason`,
  'BALANCE_REFUND' AS `compensation_type`
FROM `first_clicks`
WHERE `previous_event_id` IS NOT NULL
  AND `previous_event_id` <> `event_id`
  AND `event_ts` < `previous_event_ts` + INTERVAL '5' MINUTE
