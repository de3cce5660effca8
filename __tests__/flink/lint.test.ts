import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contractTables, FlinkTableSchema, parseCreateTable, tableOfCreate } from '../../constructs/flink/catalog';
import { FlinkLintRuleId, lintFlinkSql } from '../../constructs/flink/lint';
import { splitStatements } from '../../constructs/flink/sql-text';

const contracts = (): Map<string, FlinkTableSchema> => new Map(contractTables().map((t) => [t.name, t]));

function withTables(...ddl: string[]): Map<string, FlinkTableSchema> {
  const tables = contracts();
  for (const sql of ddl) {
    const created = parseCreateTable(sql);
    if (created) tables.set(created.table, tableOfCreate(created));
  }
  return tables;
}

const UPSERT_SINK =
  "CREATE TABLE `clicks-per-campaign` (`campaign_id` BIGINT NOT NULL, `clicks` BIGINT NOT NULL, PRIMARY KEY (`campaign_id`) NOT ENFORCED) DISTRIBUTED BY (`campaign_id`) INTO 6 BUCKETS WITH ('changelog.mode' = 'upsert', 'value.format' = 'json-registry')";
const APPEND_SINK =
  "CREATE TABLE `clicks-per-window` (`campaign_id` BIGINT NOT NULL, `window_start` TIMESTAMP(3) NOT NULL, `window_end` TIMESTAMP(3) NOT NULL, `clicks` BIGINT NOT NULL) WITH ('changelog.mode' = 'append')";

function rules(sql: string, tables = withTables(UPSERT_SINK, APPEND_SINK), properties?: Record<string, string>): FlinkLintRuleId[] {
  return lintFlinkSql({ sql, tables, properties }).map((f) => f.rule);
}

describe('Confluent dialect lint', () => {
  describe('single-statement', () => {
    it('rejects two statements in one file', () => {
      expect(rules("ALTER TABLE `ad-events` MODIFY WATERMARK FOR `event_ts` AS `event_ts` - INTERVAL '5' SECOND; SELECT 1")).toContain('single-statement');
    });
    it('accepts one statement with a trailing semicolon and a ; inside a literal', () => {
      expect(
        rules("INSERT INTO `clicks-per-campaign` SELECT `campaign_id`, COUNT(*) AS `clicks` FROM `ad-events` WHERE `ad_id` <> ';' GROUP BY `campaign_id`;"),
      ).not.toContain('single-statement');
    });
  });

  describe('with-options', () => {
    it.each(["'connector' = 'kafka'", "'topic' = 'x'", "'format' = 'json'", "'properties.bootstrap.servers' = 'b:9092'"])('rejects %s', (option) => {
      expect(rules(`CREATE TABLE \`x\` (\`a\` STRING) WITH (${option})`)).toContain('with-options');
    });
    it('accepts Confluent table options', () => {
      expect(
        rules("CREATE TABLE `x` (`a` STRING) WITH ('changelog.mode' = 'append', 'value.format' = 'json-registry', 'kafka.retention.time' = '7 d')"),
      ).toEqual([]);
    });
  });

  describe('statement-properties', () => {
    it.each(['execution.checkpointing.interval', 'parallelism.default', 'table.exec.state.ttl'])('rejects %s', (key) => {
      expect(rules('SELECT 1', contracts(), { [key]: '1' })).toContain('statement-properties');
    });
    it('accepts the sql.* allow-list', () => {
      expect(rules('SELECT 1', contracts(), { 'sql.state-ttl': '6 h', 'sql.current-catalog': 'c', 'sql.local-time-zone': 'UTC' })).toEqual([]);
    });
  });

  describe('window-bounds', () => {
    const windowed = (groupBy: string): string =>
      `INSERT INTO \`clicks-per-window\` SELECT \`campaign_id\`, \`window_start\`, \`window_end\`, COUNT(*) AS \`clicks\` FROM TABLE(TUMBLE(TABLE \`ad-events\`, DESCRIPTOR(\`event_ts\`), INTERVAL '5' MINUTE)) GROUP BY ${groupBy}`;
    it('rejects a window aggregation grouped by window_start only', () => {
      expect(rules(windowed('`campaign_id`, `window_start`'))).toContain('window-bounds');
    });
    it('rejects the legacy GROUP BY TUMBLE(...) syntax', () => {
      expect(rules("SELECT `campaign_id`, COUNT(*) AS `clicks` FROM `ad-events` GROUP BY `campaign_id`, TUMBLE(`event_ts`, INTERVAL '5' MINUTE)")).toContain(
        'window-bounds',
      );
    });
    it('accepts window_start and window_end', () => {
      expect(rules(windowed('`campaign_id`, `window_start`, `window_end`'))).toEqual([]);
    });
  });

  describe('upsert-primary-key', () => {
    it('rejects an upsert table without a primary key', () => {
      expect(rules("CREATE TABLE `x` (`a` STRING) WITH ('changelog.mode' = 'upsert')")).toContain('upsert-primary-key');
    });
    it('rejects an enforced primary key', () => {
      expect(rules("CREATE TABLE `x` (`a` STRING, PRIMARY KEY (`a`)) WITH ('changelog.mode' = 'upsert')")).toContain('upsert-primary-key');
    });
    it('rejects a bucket key different from the primary key', () => {
      expect(
        rules(
          "CREATE TABLE `x` (`a` STRING, `b` STRING, PRIMARY KEY (`a`) NOT ENFORCED) DISTRIBUTED BY (`b`) INTO 3 BUCKETS WITH ('changelog.mode' = 'upsert')",
        ),
      ).toContain('upsert-primary-key');
    });
    it('accepts PRIMARY KEY NOT ENFORCED with the same bucket key', () => {
      expect(rules(UPSERT_SINK, contracts())).toEqual([]);
    });
  });

  describe('nondeterministic-update', () => {
    it.each(['CURRENT_TIMESTAMP', 'NOW()', 'RAND()', 'UUID()'])('rejects %s in an updating aggregation', (fn) => {
      expect(rules(`SELECT \`campaign_id\`, COUNT(*) AS \`clicks\`, ${fn} AS \`at\` FROM \`ad-events\` GROUP BY \`campaign_id\``)).toContain(
        'nondeterministic-update',
      );
    });
    it('accepts event-time columns in the same query', () => {
      expect(rules('SELECT `campaign_id`, COUNT(*) AS `clicks`, MAX(`event_ts`) AS `at` FROM `ad-events` GROUP BY `campaign_id`')).toEqual([]);
    });
  });

  describe('source-columns', () => {
    it('rejects a column the contract does not have', () => {
      expect(rules('SELECT `campaign_id`, `cost_per_click` FROM `ad-events`')).toContain('source-columns');
    });
    it('rejects a qualified column the aliased table does not have', () => {
      expect(rules('SELECT `o`.`ad_id` FROM `conversion-events` AS `o`')).toContain('source-columns');
    });
    it('rejects a column of another table in a subquery (seed 3: ad_id read from a conversion)', () => {
      expect(
        rules(
          'SELECT `x`.`order_id` FROM (SELECT `order_id`, `ad_id` FROM `conversion-events`) AS `x` JOIN `ad-events` AS `a` ON `a`.`product_id` = `x`.`order_id`',
        ),
      ).toContain('source-columns');
    });
    it('rejects an unknown table', () => {
      expect(rules('SELECT `a` FROM `product_metrics_cache`')).toContain('unknown-table');
    });
    it('accepts the columns an alias column list names (CROSS JOIN UNNEST … AS `k` (`key`))', () => {
      expect(rules("SELECT `e`.`event_id`, `k`.`copy` AS `c`, `copy` FROM `ad-events` AS `e` CROSS JOIN UNNEST(ARRAY['a', 'b']) AS `k` (`copy`)")).toEqual([]);
      expect(rules("SELECT `e`.`event_id`, `other` FROM `ad-events` AS `e` CROSS JOIN UNNEST(ARRAY['a', 'b']) AS `k` (`copy`)")).toContain('source-columns');
    });
    it('accepts contract columns, aliases, $rowtime and window columns', () => {
      expect(
        rules(
          "SELECT `c`.`event_id`, `c`.`$rowtime`, `window_start`, `window_end` FROM TABLE(TUMBLE(TABLE `ad-events`, DESCRIPTOR(`event_ts`), INTERVAL '1' MINUTE)) AS `c`",
        ),
      ).toEqual([]);
    });
  });

  describe('sink-columns', () => {
    const compensation = (columns: string, select: string): string => `INSERT INTO \`compensation-events\` (${columns}) SELECT ${select} FROM \`ad-events\``;
    it('rejects an insert that leaves required contract fields empty', () => {
      expect(rules(compensation('`duplicate_event_id`', '`event_id` AS `duplicate_event_id`'))).toContain('sink-columns');
    });
    it('rejects output names out of the sink order', () => {
      expect(rules('INSERT INTO `clicks-per-campaign` SELECT COUNT(*) AS `clicks`, `campaign_id` FROM `ad-events` GROUP BY `campaign_id`')).toContain(
        'sink-columns',
      );
    });
    it('rejects a CREATE TABLE on a contract topic whose columns differ from the contract', () => {
      expect(rules("CREATE TABLE `refunds` (`amount` STRING) WITH ('topic' = 'compensation-events')")).toContain('sink-columns');
    });
    it('accepts output names equal to the sink columns, in order', () => {
      expect(rules('INSERT INTO `clicks-per-campaign` SELECT `campaign_id`, COUNT(*) AS `clicks` FROM `ad-events` GROUP BY `campaign_id`')).toEqual([]);
    });
  });

  describe('create-existing-topic', () => {
    it('rejects CREATE TABLE of a foundation topic', () => {
      expect(rules("CREATE TABLE `ad-events` (`event_id` STRING) WITH ('changelog.mode' = 'append')")).toContain('create-existing-topic');
    });
    it('accepts a new table name', () => {
      expect(rules("CREATE TABLE `ad-events-v2-copy` (`event_id` STRING) WITH ('changelog.mode' = 'append')")).toEqual([]);
    });
  });

  describe('shape rules', () => {
    it('rejects COLLECT (a MULTISET) and ORDER BY inside an aggregate', () => {
      expect(rules('SELECT `placement`, COLLECT(`campaign_id` ORDER BY `campaign_id`) AS `r` FROM `ad-events` GROUP BY `placement`')).toEqual(
        expect.arrayContaining(['collect-multiset', 'aggregate-order-by']),
      );
    });
    it('rejects ROW_NUMBER() without PARTITION BY', () => {
      expect(rules('SELECT `event_id`, ROW_NUMBER() OVER (ORDER BY `event_ts`) AS `n` FROM `ad-events`')).toContain('row-number-partition');
    });
    it('rejects an OR join', () => {
      expect(
        rules(
          "SELECT `c`.`event_id` FROM `conversion-events` AS `o` JOIN `ad-events` AS `c` ON (`c`.`device_id` = `o`.`device_id` OR `c`.`session_id` = `o`.`session_id`) AND `c`.`event_ts` BETWEEN `o`.`event_ts` - INTERVAL '24' HOUR AND `o`.`event_ts`",
        ),
      ).toContain('or-join');
    });
    it('accepts a partitioned ROW_NUMBER and an equality interval join', () => {
      expect(
        rules(
          "SELECT `c`.`event_id`, ROW_NUMBER() OVER (PARTITION BY `o`.`order_id` ORDER BY `c`.`event_ts` DESC) AS `n` FROM `conversion-events` AS `o` JOIN `ad-events` AS `c` ON `c`.`device_id` = `o`.`device_id` AND `c`.`event_ts` BETWEEN `o`.`event_ts` - INTERVAL '24' HOUR AND `o`.`event_ts`",
        ),
      ).toEqual([]);
    });
  });
});

describe('the seed statements (kept verbatim as fixtures) are rejected for their documented defects', () => {
  const fixture = (name: string): string => readFileSync(join(__dirname, 'fixtures', name), 'utf8');
  // The seed's Terraform gave these properties to every statement.
  const SEED_PROPERTIES = { 'execution.checkpointing.interval': '30s', 'parallelism.default': '4', 'table.exec.state.ttl': '25h' };
  // The seed deployed the statements in this order; later ones read tables the earlier ones declared.
  const tables = contracts();
  const lintSeed = (name: string): FlinkLintRuleId[] => {
    const sql = fixture(name);
    const found = lintFlinkSql({ sql, tables, properties: SEED_PROPERTIES }).map((f) => f.rule);
    for (const statement of splitStatements(sql)) {
      const created = parseCreateTable(statement);
      if (created) tables.set(created.table, tableOfCreate(created));
    }
    return found;
  };
  const COMMON: FlinkLintRuleId[] = ['statement-properties', 'single-statement', 'with-options', 'create-existing-topic'];

  it('1. RTB cache updater: COLLECT … ORDER BY, undefined joined tables and sink, CURRENT_TIMESTAMP in an updating query', () => {
    expect(lintSeed('seed-1-rtb-cache-updater.sql')).toEqual(
      expect.arrayContaining([...COMMON, 'aggregate-order-by', 'collect-multiset', 'unknown-table', 'nondeterministic-update']),
    );
  });
  it('2. performance aggregator: ROW_NUMBER without partition, GROUP BY without window_end, undefined sink', () => {
    expect(lintSeed('seed-2-performance-aggregator.sql')).toEqual(
      expect.arrayContaining([...COMMON, 'row-number-partition', 'window-bounds', 'unknown-table', 'nondeterministic-update']),
    );
  });
  it('3. conversion matcher: columns its source never declares, OR join, undefined sink', () => {
    expect(lintSeed('seed-3-conversion-matcher.sql')).toEqual(expect.arrayContaining([...COMMON, 'source-columns', 'or-join', 'unknown-table']));
  });
  it('4. duplicate detector: COLLECT multiset, compensation sink without the contract (no compensation_id)', () => {
    expect(lintSeed('seed-4-duplicate-detector.sql')).toEqual(expect.arrayContaining([...COMMON, 'collect-multiset', 'sink-columns']));
  });
});
