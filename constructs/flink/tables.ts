import { RTB_RANKING_REJECTS_TOPIC, RTB_RANKINGS_TOPIC, RTB_RANKINGS_V1_TOPIC } from '../../contracts';

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
  'conversion-attributions',
];
