/**
 * The RTB ranking cache row, written by the ranking Flink statement to the compacted upsert
 * topic `rtb-rankings` and turned into one Redis key per (placement, category) by the
 * ranking-cache worker. Flink registers this topic's key and value schemas itself (CREATE TABLE).
 */

/** Kafka topic of the ranking rows (created by the ranking statement's DDL). */
export const RTB_RANKINGS_TOPIC = 'rtb-rankings';

/** Key of a ranking row: the partition of the top-N. */
export interface RankingKey {
  /** Slot the ranking is for. */
  readonly placement: string;
  /** Category the ranking is for. */
  readonly category: string;
}

/** One ranked campaign. Scores are informational for the bidder, never money. */
export interface RankedCampaign {
  /** 1-based rank within (placement, category); `ARRAY_AGG` has no order, so this orders it. */
  readonly rank_no: number;
  /** Ranked campaign. */
  readonly campaign_id: number;
  /** Owner of the campaign. */
  readonly advertiser_id: number;
  /** Advertised product. */
  readonly product_id: number;
  /** Bid per click, as Flink serialises DECIMAL (number or string). */
  readonly bid_price: number | string;
  /** Ranking score `bid * ctr + 0.1 * ctr * cvr * price`. */
  readonly score: number | string;
}

/** Value of a ranking row; a tombstone (null value) means the ranking is empty. */
export interface RankingRow extends RankingKey {
  /** Top-N campaigns, in any order; sort by `rank_no`. */
  readonly ranking: readonly RankedCampaign[];
}

/** Redis key that holds the ranking for one (placement, category). */
export function rankingCacheKey(key: RankingKey): string {
  return `rtb:ranking:${key.placement}:${key.category}`;
}
