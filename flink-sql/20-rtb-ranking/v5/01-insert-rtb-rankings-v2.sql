-- v5: v4's ranking, with the heartbeat written under 64 keys instead of one. v4's one heartbeat
-- row ('', '') lands on one partition of rtb-rankings-v2, so the worker's freshness key kept
-- moving while it was stuck on or lagging behind another partition, and the bidder read that
-- partition's stale slots as fresh. v5 emits the heartbeat group once per heartbeat key:
-- placement '' (reserved: no slot has an empty placement) and category '#00'..'#63'. Kafka hashes
-- each key onto a partition, so every partition gets heartbeats unless all 64 miss one
-- (probability 6 * (5/6)^64, about 5e-5, fixed per environment by the key bytes); the worker takes
-- the oldest of the partitions' newest heartbeats as freshness (contracts/rankings.ts). The 64
-- rows go through the same GROUP BY (placement, category) as the slots, read ad-events
-- through a stateless CROSS JOIN UNNEST of the distinct buckets of ad-events, and are emitted
-- when their bucket changes: 64 rows and 64 aggregate updates per 5 minutes of event time (each
-- ad event costs one lookup of its bucket, as v4's one heartbeat group did). Everything else is v4's, unchanged: the
-- slot rows, their as_of, the table (rtb-rankings-v2, created by v3; v3 stays deployed, stopped,
-- for it).
-- v4's description follows.
-- v4: v3's ranking, with a version on every slot row. v3 wrote slot rows with `as_of` NULL, so
-- the ranking-cache worker could not tell a superseded row (a redelivery, a replay, a rebuild
-- re-emitting history) from a current one. v4 writes `as_of` on slot rows too: the newest event
-- time (epoch ms) among the source records that bear on the slot, which never decreases:
--  * every source record "touches" the slots it can change: a campaign event every slot the
--    campaign was ever defined in (status-only events and moves included), a catalogue entry or
--    a product-metrics-24h row every slot of a campaign advertising the product;
--  * the touches go into the same GROUP BY (placement, category) as the ranked campaigns, with
--    no element; `as_of` = MAX of their event times. The per-campaign / per-product clocks only
--    grow and the (campaign, slot) pairs are never removed, so a settled row's `as_of` never goes
--    back; a row Flink emits between the retraction of an old clock and the insertion of the new
--    one can be lower, and the worker ignores it as superseded. A ranking changed only by the
--    metrics clock (ageing) keeps the version of the row before it (the worker applies an equal
--    version).
--  * the touches also keep the group alive when no campaign is ranked: the slot gets a row with
--    `ranking` NULL and a version instead of a tombstone (the worker treats both as "empty").
-- Writes rtb-rankings-v2, created by v3 (v3 stays deployed, stopped, for it; see flink-sql/README.md).
-- v3's description follows.
-- v3: v2's latest-state ranking (over the append event tables v2's 01-04 declare; v2 stays
-- deployed, stopped, for them) with four changes (flink-sql/README.md, "RTB ranking cache"):
--  * Freshness: a heartbeat row tells the worker how far the statement has read, so a healthy
--    pipeline refreshes the bidder's freshness key every 5 minutes of event time even when no
--    ranking changes. Rankings themselves are emitted only when they change; the heartbeat is its own
--    row under the reserved key ('', '') (no real slot has an empty placement), with `as_of` =
--    the start (epoch ms, UTC) of the 5-minute bucket of the newest ad event read, emitted
--    when the bucket changes. The worker turns it into the freshness key the bidder checks
--    (contracts/rankings.ts). Both go through one GROUP BY (placement, category), whose key is
--    the sink's key: updates reach the topic as upserts, never as a tombstone plus an insert
--    (a UNION after the aggregation would add an upsert materializer that turns each update
--    into a delete and an insert). The heartbeat group reads ad-events append-only, so it is
--    never retracted.
--  * Metrics the score can trust: CTR and CVR are smoothed toward the defaults,
--      ctr = (clicks + 1) / (impressions + 100)      (prior 0.01 = 1 click in 100 impressions)
--      cvr = (conversions + 1) / (clicks + 200)      (prior 0.005 = 1 order in 200 clicks)
--    so a small sample barely moves a product, a measured zero sinks only with the sample
--    behind it, and no data is exactly the default.
--  * Ageing: a product's 24-hour row counts only while it belongs to the latest hour of
--    product-metrics-24h (window_end at most 1 hour behind the newest window_end of any
--    product); a product without events for 24 h falls back to the defaults within 25 h.
--  * Decimal strings are read with TRY_CAST: a malformed bid_price or price never fails the
--    statement; the record is skipped (the previous valid value stays) and 02 reports it.
-- Top ${RANKING_TOP_N} per (placement, category) by score, then bid, then campaign id (deterministic).
INSERT INTO `rtb-rankings-v2`
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
        TRY_CAST(`bid_price` AS DECIMAL(18, 2)) AS `bid_price`,
        ROW_NUMBER() OVER (PARTITION BY `campaign_id` ORDER BY `event_ts` DESC) AS `row_no`
      FROM `campaign-events`
      WHERE `product_id` IS NOT NULL
        AND `placement` IS NOT NULL
        AND `category` IS NOT NULL
        AND TRY_CAST(`bid_price` AS DECIMAL(18, 2)) IS NOT NULL
    )
    WHERE `row_no` = 1
  ),
  `product_price` AS (
    SELECT `product_id`, `price`
    FROM (
      SELECT
        `product_id`,
        TRY_CAST(`price` AS DECIMAL(18, 2)) AS `price`,
        ROW_NUMBER() OVER (PARTITION BY `product_id` ORDER BY `updated_ts` DESC) AS `row_no`
      FROM `product-catalog`
      WHERE TRY_CAST(`price` AS DECIMAL(18, 2)) IS NOT NULL
    )
    WHERE `row_no` = 1
  ),
  `metrics_clock` AS (
    SELECT MAX(`window_end`) AS `latest_window_end`
    FROM `product-metrics-24h`
  ),
  `product_metrics` AS (
    SELECT `m`.`product_id`, `m`.`impressions`, `m`.`clicks`, `m`.`conversions`
    FROM `product-metrics-24h` AS `m`
    JOIN `metrics_clock` AS `c` ON `m`.`window_end` >= `c`.`latest_window_end` - INTERVAL '1' HOUR
  ),
  `scored` AS (
    SELECT
      `d`.`placement`,
      `d`.`category`,
      `d`.`campaign_id`,
      `d`.`advertiser_id`,
      `d`.`product_id`,
      `d`.`bid_price`,
      (CAST(COALESCE(`m`.`clicks`, 0) AS DOUBLE) + 1.0) / (CAST(COALESCE(`m`.`impressions`, 0) AS DOUBLE) + 100.0) AS `ctr`,
      (CAST(COALESCE(`m`.`conversions`, 0) AS DOUBLE) + 1.0) / (CAST(COALESCE(`m`.`clicks`, 0) AS DOUBLE) + 200.0) AS `cvr`,
      COALESCE(CAST(`p`.`price` AS DOUBLE), 0.0) AS `price`
    FROM `campaign_definition` AS `d`
    JOIN `campaign_status` AS `s` ON `s`.`campaign_id` = `d`.`campaign_id`
    LEFT JOIN `product_metrics` AS `m` ON `m`.`product_id` = `d`.`product_id`
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
      FROM (
        SELECT
          `placement`,
          `category`,
          `campaign_id`,
          `advertiser_id`,
          `product_id`,
          `bid_price`,
          CAST(`bid_price` AS DOUBLE) * `ctr` + 0.1 * `ctr` * `cvr` * `price` AS `score`
        FROM `scored`
      )
    )
    WHERE `rank_no` <= ${RANKING_TOP_N}
  ),
  `campaign_slots` AS (
    SELECT DISTINCT `campaign_id`, `product_id`, `placement`, `category`
    FROM `campaign-events`
    WHERE `product_id` IS NOT NULL AND `placement` IS NOT NULL AND `category` IS NOT NULL
  ),
  `campaign_clock` AS (
    SELECT
      `campaign_id`,
      MAX(CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', CAST(`event_ts` AS TIMESTAMP(3))) AS BIGINT) * 1000 + MOD(CAST(EXTRACT(MILLISECOND FROM CAST(`event_ts` AS TIMESTAMP(3))) AS BIGINT), 1000)) AS `touched`
    FROM `campaign-events`
    GROUP BY `campaign_id`
  ),
  `product_clock` AS (
    SELECT `product_id`, MAX(`touched`) AS `touched`
    FROM (
      SELECT
        `product_id`,
        CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', CAST(`updated_ts` AS TIMESTAMP(3))) AS BIGINT) * 1000 + MOD(CAST(EXTRACT(MILLISECOND FROM CAST(`updated_ts` AS TIMESTAMP(3))) AS BIGINT), 1000) AS `touched`
      FROM `product-catalog`
      UNION ALL
      SELECT
        `product_id`,
        CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', CAST(`window_end` AS TIMESTAMP(3))) AS BIGINT) * 1000 AS `touched`
      FROM `product-metrics-24h`
    )
    GROUP BY `product_id`
  ),
  `slot_touches` AS (
    SELECT `s`.`placement`, `s`.`category`, `c`.`touched`
    FROM `campaign_slots` AS `s`
    JOIN `campaign_clock` AS `c` ON `c`.`campaign_id` = `s`.`campaign_id`
    UNION ALL
    SELECT `s`.`placement`, `s`.`category`, `p`.`touched`
    FROM `campaign_slots` AS `s`
    JOIN `product_clock` AS `p` ON `p`.`product_id` = `s`.`product_id`
  ),
  `slot_rows` AS (
    SELECT
      `placement`,
      `category`,
      CAST(
        ROW(`rank_no`, `campaign_id`, `advertiser_id`, `product_id`, CAST(`bid_price` AS STRING), `score`)
        AS ROW<`rank_no` BIGINT, `campaign_id` BIGINT, `advertiser_id` BIGINT, `product_id` BIGINT, `bid_price` STRING, `score` DOUBLE>
      ) AS `element`,
      CAST(NULL AS BIGINT) AS `touched`,
      CAST(NULL AS BIGINT) AS `heartbeat_bucket`
    FROM `ranked`
    UNION ALL
    SELECT
      `placement`,
      `category`,
      CAST(NULL AS ROW<`rank_no` BIGINT, `campaign_id` BIGINT, `advertiser_id` BIGINT, `product_id` BIGINT, `bid_price` STRING, `score` DOUBLE>) AS `element`,
      `touched`,
      CAST(NULL AS BIGINT) AS `heartbeat_bucket`
    FROM `slot_touches`
    UNION ALL
    SELECT
      '' AS `placement`,
      `k`.`heartbeat_key` AS `category`,
      CAST(NULL AS ROW<`rank_no` BIGINT, `campaign_id` BIGINT, `advertiser_id` BIGINT, `product_id` BIGINT, `bid_price` STRING, `score` DOUBLE>) AS `element`,
      CAST(NULL AS BIGINT) AS `touched`,
      `k`.`heartbeat_bucket`
    FROM (
      -- One row per bucket, emitted when the bucket's first ad event is read (an unchanged
      -- DISTINCT row is not emitted again): 64 heartbeat rows per 5 minutes, not per ad event.
      -- State: one row per bucket seen, like the heartbeat group's own MAX.
      SELECT DISTINCT CAST(TIMESTAMPDIFF(MINUTE, TIMESTAMP '1970-01-01 00:00:00', CAST(`event_ts` AS TIMESTAMP(3))) AS BIGINT) / 5 AS `bucket`
      FROM `ad-events`
    ) AS `e`
    -- Each element names the bucket row's own bucket, so the UNNEST is correlated and planned as
    -- a stateless Correlate. A constant ARRAY['#00', …] is planned as a regular join with a 64-row
    -- constant: it keeps every input row in state (no TTL here) and emitted the heartbeats out of
    -- order on the local engine.
    CROSS JOIN UNNEST(
      ARRAY[
        ROW('#00', `e`.`bucket`), ROW('#01', `e`.`bucket`), ROW('#02', `e`.`bucket`), ROW('#03', `e`.`bucket`),
        ROW('#04', `e`.`bucket`), ROW('#05', `e`.`bucket`), ROW('#06', `e`.`bucket`), ROW('#07', `e`.`bucket`),
        ROW('#08', `e`.`bucket`), ROW('#09', `e`.`bucket`), ROW('#10', `e`.`bucket`), ROW('#11', `e`.`bucket`),
        ROW('#12', `e`.`bucket`), ROW('#13', `e`.`bucket`), ROW('#14', `e`.`bucket`), ROW('#15', `e`.`bucket`),
        ROW('#16', `e`.`bucket`), ROW('#17', `e`.`bucket`), ROW('#18', `e`.`bucket`), ROW('#19', `e`.`bucket`),
        ROW('#20', `e`.`bucket`), ROW('#21', `e`.`bucket`), ROW('#22', `e`.`bucket`), ROW('#23', `e`.`bucket`),
        ROW('#24', `e`.`bucket`), ROW('#25', `e`.`bucket`), ROW('#26', `e`.`bucket`), ROW('#27', `e`.`bucket`),
        ROW('#28', `e`.`bucket`), ROW('#29', `e`.`bucket`), ROW('#30', `e`.`bucket`), ROW('#31', `e`.`bucket`),
        ROW('#32', `e`.`bucket`), ROW('#33', `e`.`bucket`), ROW('#34', `e`.`bucket`), ROW('#35', `e`.`bucket`),
        ROW('#36', `e`.`bucket`), ROW('#37', `e`.`bucket`), ROW('#38', `e`.`bucket`), ROW('#39', `e`.`bucket`),
        ROW('#40', `e`.`bucket`), ROW('#41', `e`.`bucket`), ROW('#42', `e`.`bucket`), ROW('#43', `e`.`bucket`),
        ROW('#44', `e`.`bucket`), ROW('#45', `e`.`bucket`), ROW('#46', `e`.`bucket`), ROW('#47', `e`.`bucket`),
        ROW('#48', `e`.`bucket`), ROW('#49', `e`.`bucket`), ROW('#50', `e`.`bucket`), ROW('#51', `e`.`bucket`),
        ROW('#52', `e`.`bucket`), ROW('#53', `e`.`bucket`), ROW('#54', `e`.`bucket`), ROW('#55', `e`.`bucket`),
        ROW('#56', `e`.`bucket`), ROW('#57', `e`.`bucket`), ROW('#58', `e`.`bucket`), ROW('#59', `e`.`bucket`),
        ROW('#60', `e`.`bucket`), ROW('#61', `e`.`bucket`), ROW('#62', `e`.`bucket`), ROW('#63', `e`.`bucket`)
      ]
    ) AS `k` (`heartbeat_key`, `heartbeat_bucket`)
  )
SELECT
  `placement`,
  `category`,
  COALESCE(MAX(`heartbeat_bucket`) * 300000, MAX(`touched`)) AS `as_of`,
  ARRAY_AGG(`element`) FILTER (WHERE `element` IS NOT NULL) AS `ranking`
FROM `slot_rows`
GROUP BY `placement`, `category`
