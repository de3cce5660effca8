import {
  adEventContract,
  campaignEventContract,
  conversionEventContract,
  productCatalogContract,
  RTB_RANKING_REJECTS_TOPIC,
  RTB_RANKINGS_TOPIC,
  RTB_RANKINGS_V1_TOPIC,
} from '../../contracts';

/**
 * Tables (= topics) that the Flink DDL statements create with CREATE TABLE. The streaming
 * stack grants the runner DeveloperManage/Read/Write on exactly these topics and their
 * `-key`/`-value` subjects, so this list must match the CREATE TABLE statements in flink-sql/
 * (__tests__/flink/stack.test.ts checks that it does).
 */
export const FLINK_SINK_TABLES: readonly string[] = [
  RTB_RANKINGS_V1_TOPIC,
  RTB_RANKINGS_TOPIC,
  RTB_RANKING_REJECTS_TOPIC,
  'ad-performance-5m',
  'product-metrics-24h',
  'ad-event-rejects',
  'conversion-event-rejects',
  'conversion-attributions',
];

/**
 * Foundation tables that released Flink statements alter (`ALTER TABLE … MODIFY WATERMARK` /
 * `SET ('changelog.mode' = …)`): Confluent stores the change with the table's value schema, so
 * the streaming stack grants the runner write on their `-value` subjects. Must list every table
 * an ALTER TABLE of any released version touches (__tests__/flink/stack.test.ts checks it):
 * ad-events and conversion-events (source watermarks), campaign-events and product-catalog
 * (rtb-ranking v2).
 */
export const FLINK_ALTERED_TABLES: readonly string[] = [
  adEventContract.topic,
  conversionEventContract.topic,
  campaignEventContract.topic,
  productCatalogContract.topic,
];
