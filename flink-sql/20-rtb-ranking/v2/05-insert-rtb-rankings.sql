-- v2: v1's query over the append (event) tables of 01-04, writing the rtb-rankings table v1
-- created (v1 stays deployed, stopped, until v2 has caught up).
-- Latest state per campaign by event time (event-time deduplication on event_ts, keep last):
--   * status from the latest event of any kind; PAUSED / DELETED drop the campaign at once;
--   * definition (product, slot, bid) from the latest event that carries one (the workers
--     publish status-only CAMPAIGN_PAUSED / CAMPAIGN_RESUMED events with those fields null).
--   Two events of one campaign with the same event_ts: the later arrival wins (Flink's
--   event-time deduplication keeps the last row among equal timestamps).
-- Product metrics: the latest trailing-24h row of product-metrics-24h (defaults 0.01 / 0.005).
-- Price: the latest product-catalog entry by updated_ts; a missing price counts as 0.
-- Top ${RANKING_TOP_N} per (placement, category) by score, then bid, then campaign id (deterministic).
-- No TTL: state is bounded by the number of campaigns, products and slots, and a TTL would
-- silently drop a long-running campaign from the ranking.
INSERT INTO `rtb-rankings`
WITH
  `campaign_status` AS (
    SELECT `campaign_id`, `status`
    FROM (
      SELECT
        `campaign_id`,
        `status`,
        ROW_NUMBER() OVER (PARTITION BY `campaign_id` ORDER BY `event_ts` DESC) AS `row_no`
      FROM `campaign-events`
    )
    WHERE `row_no` = 1
  ),
  `campaign_definition` AS (
    SELECT `campaign_id`, `advertiser_id`, `product_id`, `placement`, `category`, `bid_price`
    FROM (
      SELECT
        `campaign_id`,
        `advertiser_id`,
        `product_id`,
        `placement`,
        `category`,
        CAST(`bid_price` AS DECIMAL(18, 2)) AS `bid_price`,
        ROW_NUMBER() OVER (PARTITION BY `campaign_id` ORDER BY `event_ts` DESC) AS `row_no`
      FROM `campaign-events`
      WHERE `product_id` IS NOT NULL
        AND `placement` IS NOT NULL
        AND `category` IS NOT NULL
        AND `bid_price` IS NOT NULL
    )
    WHERE `row_no` = 1
  ),
  `product_price` AS (
    SELECT `product_id`, `price`
    FROM (
      SELECT
        `product_id`,
        CAST(`price` AS DECIMAL(18, 2)) AS `price`,
        ROW_NUMBER() OVER (PARTITION BY `product_id` ORDER BY `updated_ts` DESC) AS `row_no`
      FROM `product-catalog`
    )
    WHERE `row_no` = 1
  ),
  `scored` AS (
    SELECT
      `d`.`placement`,
      `d`.`category`,
      `d`.`campaign_id`,
      `d`.`advertiser_id`,
      `d`.`product_id`,
      `d`.`bid_price`,
      CAST(`d`.`bid_price` AS DOUBLE) * COALESCE(`m`.`ctr`, 0.01)
        + 0.1 * COALESCE(`m`.`ctr`, 0.01) * COALESCE(`m`.`cvr`, 0.005) * COALESCE(CAST(`p`.`price` AS DOUBLE), 0.0) AS `score`
    FROM `campaign_definition` AS `d`
    JOIN `campaign_status` AS `s` ON `s`.`campaign_id` = `d`.`campaign_id`
    LEFT JOIN `product-metrics-24h` AS `m` ON `m`.`product_id` = `d`.`product_id`
    LEFT JOIN `product_price` AS `p` ON `p`.`product_id` = `d`.`product_id`
    WHERE `s`.`status` = 'ACTIVE'
  ),
  `ranked` AS (
    SELECT `placement`, `category`, `campaign_id`, `advertiser_id`, `product_id`, `bid_price`, `score`, `rank_no`
    FROM (
      SELECT
        `placement`,
        `category`,
        `campaign_id`,
        `advertiser_id`,
        `product_id`,
        `bid_price`,
        `score`,
        ROW_NUMBER() OVER (PARTITION BY `placement`, `category` ORDER BY `score` DESC, `bid_price` DESC, `campaign_id` ASC) AS `rank_no`
      FROM `scored`
    )
    WHERE `rank_no` <= ${RANKING_TOP_N}
  )
SELECT
  `placement`,
  `category`,
  ARRAY_AGG(
    CAST(
      ROW(`rank_no`, `campaign_id`, `advertiser_id`, `product_id`, CAST(`bid_price` AS STRING), `score`)
      AS ROW<`rank_no` BIGINT, `campaign_id` BIGINT, `advertiser_id` BIGINT, `product_id` BIGINT, `bid_price` STRING, `score` DOUBLE>
    )
  ) AS `ranking`
FROM `ranked`
GROUP BY `placement`, `category`
