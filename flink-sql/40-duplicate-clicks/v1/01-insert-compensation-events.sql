-- A CLICK is a duplicate when the previous CLICK of the same (device, campaign, ad) happened
-- less than 5 minutes earlier in event time. LAG over an event-time OVER window sees the
-- previous click wherever window boundaries fall (10:04:59 / 10:05:01 is caught), and the
-- OVER output is append-only: every click is judged once, so each duplicate yields exactly
-- one compensation event. compensation_id is SHA-256 of the duplicate's event_id: a replay or
-- a new statement version re-emits the same id and the worker refunds once.
-- refund_amount is the quoted price, informational: the worker refunds what it charged.
-- The self-comparison guard covers clicks with the same millisecond (OVER peers).
-- State: one previous click per key, expired by sql.state-ttl (flink.stateTtl.duplicateClicksHours).
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
SELECT
  SHA256(CONCAT('duplicate-click:', `event_id`)) AS `compensation_id`,
  `event_id` AS `duplicate_event_id`,
  `previous_event_id` AS `original_event_id`,
  `advertiser_id`,
  `campaign_id`,
  `ad_id`,
  `device_id`,
  `event_ts` AS `duplicate_event_ts`,
  `previous_event_ts` AS `original_event_ts`,
  `actual_price` AS `refund_amount`,
  'DUPLICATE_CLICK_DETECTED' AS `reason`,
  'BALANCE_REFUND' AS `compensation_type`
FROM (
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
  FROM `ad-events`
  WHERE `event_type` = 'CLICK'
)
WHERE `previous_event_id` IS NOT NULL
  AND `previous_event_id` <> `event_id`
  AND `event_ts` < `previous_event_ts` + INTERVAL '5' MINUTE
