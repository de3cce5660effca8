import { campaignEventContract } from '../../contracts';
import { inferredSourceTable } from '../../constructs/flink/catalog';
import { FlinkTranslationError } from '../../constructs/flink/errors';
import { inferredTableDdl, localJob, SynthesizedStatement, translateStatement } from '../../constructs/flink/local-engine';

const CATALOG = { 'sql.current-catalog': 'adstream-dev', 'sql.current-database': 'adstream-dev' };
const ddl = (sql: string, properties: Record<string, string> = CATALOG): SynthesizedStatement => ({
  name: 'adstream-dev-x-v1-01',
  sql,
  properties,
  kind: 'ddl',
  source: 'x/v1/01-x.sql',
});
const dml = (sql: string, properties: Record<string, string> = CATALOG): SynthesizedStatement => ({ ...ddl(sql, properties), kind: 'dml' });

describe('inferred source tables', () => {
  it('infers a compacted topic as an upsert table keyed by the raw message key', () => {
    const table = inferredSourceTable(campaignEventContract, 'compact');
    expect(table).toMatchObject({ changelogMode: 'upsert', primaryKey: ['key'], keyColumn: { name: 'key', type: 'BYTES' } });
    const sql = inferredTableDdl(table);
    expect(sql).toContain('`key` BYTES NOT NULL');
    expect(sql).toContain('PRIMARY KEY (`key`) NOT ENFORCED');
    expect(sql).toContain("'changelog.mode' = 'upsert'");
  });
  it('infers a delete-policy topic as an append table; required fields NOT NULL, optional ones nullable, $rowtime from the record timestamp', () => {
    const sql = inferredTableDdl(inferredSourceTable(campaignEventContract, 'delete'));
    expect(sql).toContain("'changelog.mode' = 'append'");
    expect(sql).not.toContain('PRIMARY KEY');
    expect(sql).toContain('`campaign_id` BIGINT NOT NULL');
    expect(sql).toMatch(/`bid_price` STRING,/);
    expect(sql).toContain("`$rowtime` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL");
    expect(sql).toContain('WATERMARK FOR `$rowtime` AS `$rowtime`');
  });
  it('takes the cleanup policy from the environment and refuses a topic without one', () => {
    expect(() => localJob([ddl('ALTER TABLE `ad-events` MODIFY WATERMARK FOR `event_ts` AS `event_ts`')], { 'ad-events': 'delete' })).toThrow(
      FlinkTranslationError,
    );
  });
});

describe('statement translation', () => {
  it('adds the local connector and the $rowtime system column to our CREATE TABLE, keeping the rest as written', () => {
    const sql =
      "CREATE TABLE `t` (\n  `a` STRING NOT NULL,\n  PRIMARY KEY (`a`) NOT ENFORCED\n)\nDISTRIBUTED BY (`a`) INTO 6 BUCKETS\nWITH (\n  'changelog.mode' = 'upsert',\n  'value.format' = 'json-registry'\n)";
    const out = translateStatement(ddl(sql)).sql;
    expect(out).toContain("'connector' = 'adstream-topic',\n  'topic' = 't',");
    expect(out).toContain("`$rowtime` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL");
    expect(out).toContain('DISTRIBUTED BY (`a`) INTO 6 BUCKETS');
    expect(out).toContain("'changelog.mode' = 'upsert'");
  });
  it('fails on a table option it has no local meaning for, naming the statement and the option', () => {
    expect(() => translateStatement(ddl("CREATE TABLE `t` (`a` STRING) WITH ('kafka.consumer.isolation-level' = 'read-committed')"))).toThrow(
      /adstream-dev-x-v1-01: CREATE TABLE `t` option 'kafka.consumer.isolation-level' has no local equivalent/,
    );
    expect(() => translateStatement(ddl("CREATE TABLE `t` (`a` STRING) WITH ('value.fields-include' = 'except-key')"))).toThrow(
      /'value.fields-include' = 'except-key' is not understood locally/,
    );
  });
  it('maps sql.state-ttl and sql.local-time-zone, and fails on any other property', () => {
    const t = translateStatement(dml('INSERT INTO `t` SELECT 1', { ...CATALOG, 'sql.state-ttl': '6 h', 'sql.local-time-zone': 'UTC' }));
    expect(t.config).toEqual({ 'table.exec.state.ttl': '6 h', 'table.local-time-zone': 'UTC' });
    expect(t.sql).toBe('INSERT INTO `t` SELECT 1');
    expect(() => translateStatement(dml('INSERT INTO `t` SELECT 1', { ...CATALOG, 'sql.tables.scan.startup.mode': 'latest-offset' }))).toThrow(
      /statement property 'sql.tables.scan.startup.mode' has no local equivalent/,
    );
  });
  it('passes ALTER TABLE … MODIFY WATERMARK and SET changelog.mode unchanged, and refuses other ALTER TABLE options', () => {
    const watermark = "ALTER TABLE `ad-events` MODIFY WATERMARK FOR `event_ts` AS `event_ts` - INTERVAL '30' SECOND";
    expect(translateStatement(ddl(watermark)).sql).toBe(watermark);
    expect(translateStatement(ddl("ALTER TABLE `x` SET ('changelog.mode' = 'append')")).sql).toBe("ALTER TABLE `x` SET ('changelog.mode' = 'append')");
    expect(() => translateStatement(ddl("ALTER TABLE `x` SET ('kafka.retention.time' = '1 d')"))).toThrow(
      /ALTER TABLE … SET option 'kafka.retention.time' has no local equivalent/,
    );
  });
  it('refuses statement kinds it does not translate', () => {
    expect(() => translateStatement(dml('SELECT 1'))).toThrow(/statement kind "SELECT" is not translated/);
  });
});
