-- v2: v1 with TRY_CAST on the two decimal strings it reads: a malformed actual_price or
-- revenue_amount counts as 0 in gross_spend / revenue instead of failing the statement at run
-- time (CAST throws); 04 reports the event on ad-event-rejects. Writes the table v1 created.
-- 5-minute tumbling windows on event time, closed by the ad-events watermark.
-- gross_spend sums the quoted price of every CLICK, duplicates included: refunds of duplicate
-- clicks travel separately on compensation-events and the ledger (Postgres) is the billing truth.
-- Conversions count in the window they happen in, not in their click's window.
-- Ratios are NULL when their denominator is zero; nothing is defaulted to 0.
INSERT INTO `ad-performance-5m`
SELECT
  `campaign_id`,
  `product_id`,
  `placement`,
  `window_start`,
  `window_end`,
  `impressions`,
  `clicks`,
  `conversions`,
  CAST(`gross_spend` AS STRING) AS `gross_spend`,
  CAST(`revenue` AS STRING) AS `revenue`,
  CASE WHEN `impressions` > 0 THEN CAST(`clicks` AS DOUBLE) * 100 / `impressions` END AS `ctr_pct`,
  CASE WHEN `clicks` > 0 THEN CAST(`conversions` AS DOUBLE) * 100 / `clicks` END AS `cvr_pct`,
  CASE WHEN `gross_spend` > 0 THEN CAST(`revenue` AS DOUBLE) / CAST(`gross_spend` AS DOUBLE) END AS `roas`
FROM (
  SELECT
    `campaign_id`,
    `product_id`,
    `placement`,
    `window_start`,
    `window_end`,
    COUNT(CASE WHEN `event_type` = 'IMPRESSION' THEN 1 END) AS `impressions`,
    COUNT(CASE WHEN `event_type` = 'CLICK' THEN 1 END) AS `clicks`,
    COUNT(CASE WHEN `event_type` = 'CONVERSION' THEN 1 END) AS `conversions`,
    CAST(SUM(CASE WHEN `event_type` = 'CLICK' THEN COALESCE(TRY_CAST(`actual_price` AS DECIMAL(18, 2)), 0) ELSE 0 END) AS DECIMAL(20, 2)) AS `gross_spend`,
    CAST(SUM(CASE WHEN `event_type` = 'CONVERSION' THEN COALESCE(TRY_CAST(`revenue_amount` AS DECIMAL(18, 2)), 0) ELSE 0 END) AS DECIMAL(20, 2)) AS `revenue`
  FROM TABLE(TUMBLE(TABLE `ad-events`, DESCRIPTOR(`event_ts`), INTERVAL '5' MINUTE))
  GROUP BY `campaign_id`, `product_id`, `placement`, `window_start`, `window_end`
)
