import { appendFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Testing } from 'cdktf';
import { defaultFlinkConfig } from '../../config/flink';
import { isAllowedStatementProperty } from '../../constructs/flink/lint';
import { FLINK_ALTERED_TABLES, FLINK_SINK_TABLES } from '../../constructs/flink/tables';
import { FlinkStack } from '../../stacks/flink-stack';
import { copyOfSqlRoot, flinkStack } from './helpers';

interface SynthStatement {
  statement_name: string;
  statement: string;
  properties: Record<string, string>;
  stopped?: boolean;
  depends_on?: string[];
  lifecycle?: { prevent_destroy?: boolean };
  credentials?: unknown;
}

function statementsOf(stack: FlinkStack): Record<string, SynthStatement> {
  const json = JSON.parse(Testing.synth(stack)) as { resource: Record<string, Record<string, SynthStatement>> };
  return json.resource.confluent_flink_statement;
}

function byName(statements: Record<string, SynthStatement>): Map<string, SynthStatement & { address: string }> {
  return new Map(Object.entries(statements).map(([id, s]) => [s.statement_name, { ...s, address: `confluent_flink_statement.${id}` }]));
}

const isDml = (s: SynthStatement): boolean => /^\s*INSERT\b/i.test(s.statement);

describe('FlinkStack (dev)', () => {
  const stack = flinkStack();
  const statements = byName(statementsOf(stack));

  it('deploys every SQL file as its own versioned statement', () => {
    expect([...statements.keys()].sort()).toEqual([
      'adstream-dev-attribution-v1-01',
      'adstream-dev-attribution-v1-02',
      'adstream-dev-attribution-v2-01',
      'adstream-dev-attribution-v2-02',
      'adstream-dev-attribution-v2-03',
      'adstream-dev-duplicate-clicks-v1-01',
      'adstream-dev-duplicate-clicks-v2-01',
      'adstream-dev-duplicate-clicks-v3-01',
      'adstream-dev-performance-metrics-v1-01',
      'adstream-dev-performance-metrics-v1-02',
      'adstream-dev-performance-metrics-v1-03',
      'adstream-dev-performance-metrics-v1-04',
      'adstream-dev-performance-metrics-v2-01',
      'adstream-dev-performance-metrics-v2-02',
      'adstream-dev-performance-metrics-v2-03',
      'adstream-dev-performance-metrics-v2-04',
      'adstream-dev-rtb-ranking-v1-01',
      'adstream-dev-rtb-ranking-v1-02',
      'adstream-dev-rtb-ranking-v2-01',
      'adstream-dev-rtb-ranking-v2-02',
      'adstream-dev-rtb-ranking-v2-03',
      'adstream-dev-rtb-ranking-v2-04',
      'adstream-dev-rtb-ranking-v2-05',
      'adstream-dev-rtb-ranking-v3-01',
      'adstream-dev-rtb-ranking-v3-02',
      'adstream-dev-rtb-ranking-v3-03',
      'adstream-dev-rtb-ranking-v3-04',
      'adstream-dev-rtb-ranking-v4-01',
      'adstream-dev-rtb-ranking-v4-02',
      'adstream-dev-rtb-ranking-v5-01',
      'adstream-dev-rtb-ranking-v5-02',
      'adstream-dev-sources-v1-01',
      'adstream-dev-sources-v1-02',
    ]);
  });

  it('makes every DML depend on the DDL creating its tables and the watermarks of its sources', () => {
    const address = (name: string): string => (statements.get(name) as { address: string }).address;
    const deps = (name: string): string[] => (statements.get(name)?.depends_on ?? []).map((d) => d.replace(/^\$\{|\}$/g, '')).sort();
    expect(deps('adstream-dev-rtb-ranking-v1-02')).toEqual(
      [address('adstream-dev-rtb-ranking-v1-01'), address('adstream-dev-performance-metrics-v1-02')].sort(),
    );
    expect(deps('adstream-dev-performance-metrics-v1-03')).toEqual(
      [address('adstream-dev-performance-metrics-v1-01'), address('adstream-dev-sources-v1-01')].sort(),
    );
    expect(deps('adstream-dev-attribution-v1-02')).toEqual(
      [address('adstream-dev-attribution-v1-01'), address('adstream-dev-sources-v1-01'), address('adstream-dev-sources-v1-02')].sort(),
    );
    expect(deps('adstream-dev-duplicate-clicks-v1-01')).toEqual([address('adstream-dev-sources-v1-01')]);
    // DDL waits for nothing
    expect(deps('adstream-dev-rtb-ranking-v1-01')).toEqual([]);
  });

  it('orders every DDL before the DML that writes its table', () => {
    for (const [, s] of statements) {
      const created = /^\s*CREATE TABLE\s+`([^`]+)`/i.exec(s.statement)?.[1];
      if (!created) continue;
      for (const [, writer] of statements) {
        if (new RegExp(`^\\s*INSERT INTO\\s+\`${created}\``, 'i').test(writer.statement)) {
          expect(writer.depends_on?.map((d) => d.replace(/^\$\{|\}$/g, ''))).toContain(s.address);
        }
      }
    }
  });

  it('gives every statement the catalog and database, and only sql.* properties', () => {
    for (const [, s] of statements) {
      expect(s.properties['sql.current-catalog']).toBe('adstream-dev');
      expect(s.properties['sql.current-database']).toBe('adstream-dev');
      expect(Object.keys(s.properties).filter((k) => !isAllowedStatementProperty(k))).toEqual([]);
    }
  });

  it('bounds state where it would grow forever, and pins the window time zone', () => {
    expect(statements.get('adstream-dev-attribution-v1-02')?.properties['sql.state-ttl']).toBe('25 h');
    expect(statements.get('adstream-dev-attribution-v2-02')?.properties['sql.state-ttl']).toBe('25 h');
    expect(statements.get('adstream-dev-duplicate-clicks-v1-01')?.properties['sql.state-ttl']).toBe('6 h');
    expect(statements.get('adstream-dev-performance-metrics-v2-03')?.properties['sql.local-time-zone']).toBe('UTC');
    expect(statements.get('adstream-dev-rtb-ranking-v3-03')?.properties['sql.state-ttl']).toBeUndefined();
    expect(statements.get('adstream-dev-rtb-ranking-v4-01')?.properties['sql.state-ttl']).toBeUndefined();
    expect(statements.get('adstream-dev-rtb-ranking-v5-01')?.properties['sql.state-ttl']).toBeUndefined();
  });

  it('renders the ranking top-N from config and sets stopped only on DML: the INSERTs of retired versions are stopped, the running ones not', () => {
    expect(statements.get('adstream-dev-rtb-ranking-v5-01')?.statement).toContain('`rank_no` <= 50');
    const retired = /^adstream-dev-(rtb-ranking-v[1234]|performance-metrics-v1|attribution-v1|duplicate-clicks-v[12])-/;
    for (const [name, s] of statements) expect(s.stopped).toBe(isDml(s) ? retired.test(name) : undefined);
    expect([...statements.values()].filter((s) => isDml(s) && s.stopped === false).length).toBeGreaterThanOrEqual(5);
  });

  it('keeps secrets off the resources: provider-level credentials from sensitive variables', () => {
    const json = JSON.parse(Testing.synth(stack)) as {
      provider: { confluent: Record<string, string>[] };
      variable: Record<string, { sensitive?: boolean }>;
    };
    expect(json.variable.flink_api_key.sensitive).toBe(true);
    expect(json.variable.flink_api_secret.sensitive).toBe(true);
    expect(json.provider.confluent[0]).toMatchObject({
      flink_api_key: '${var.flink_api_key}',
      flink_api_secret: '${var.flink_api_secret}',
      flink_compute_pool_id: 'lfcp-abc123',
      flink_principal_id: 'sa-runner1',
      organization_id: '11111111-2222-3333-4444-555555555555',
      environment_id: 'env-abc123',
    });
    for (const [, s] of statements) expect(s.credentials).toBeUndefined();
    expect(Testing.synth(stack)).not.toMatch(/"(key|secret)"\s*:\s*"[^$]/);
  });

  it('matches the HCL snapshot (review surface)', () => {
    expect(Testing.synthHcl(flinkStack())).toMatchSnapshot();
  });

  it('alters exactly the foundation tables whose value subjects the streaming stack lets the runner write (FLINK_ALTERED_TABLES), in every released version', () => {
    const released = flinkStack({
      flink: {
        pipelines: {
          ...defaultFlinkConfig.pipelines,
          'rtb-ranking': { version: 2, stopped: false, retiredVersions: [1] },
          'duplicate-clicks': { version: 2, stopped: false, retiredVersions: [1] },
        },
      },
    });
    const altered = new Set(
      released.pipelines
        .flatMap((p) => p.statements)
        .map((s) => s.tables.alters)
        .filter(Boolean),
    );
    expect([...altered].sort()).toEqual([...FLINK_ALTERED_TABLES].sort());
  });

  it('creates exactly the tables the streaming stack grants the runner (FLINK_SINK_TABLES)', () => {
    const created = stack.pipelines
      .flatMap((p) => p.statements)
      .map((s) => s.tables.creates)
      .filter(Boolean);
    expect([...created].sort()).toEqual([...FLINK_SINK_TABLES].sort());
  });
});

describe('FlinkStack (production)', () => {
  const statements = statementsOf(flinkStack({ name: 'prod', production: true }));

  it('protects every statement with prevent_destroy', () => {
    for (const s of Object.values(statements)) expect(s.lifecycle?.prevent_destroy).toBe(true);
  });

  it('refuses unreleased versions even when the config would allow them', () => {
    const root = copyOfSqlRoot({ onlyVersion1Of: ['40-duplicate-clicks'] });
    cpSync(join(root, '40-duplicate-clicks', 'v1'), join(root, '40-duplicate-clicks', 'v2'), { recursive: true });
    expect(() =>
      flinkStack({
        name: 'prod',
        production: true,
        sqlRoot: root,
        flink: {
          allowUnreleasedVersions: true,
          pipelines: { ...defaultFlinkConfig.pipelines, 'duplicate-clicks': { version: 2, stopped: false, retiredVersions: [1] } },
        },
      }),
    ).toThrow(/duplicate-clicks version 2 .* is not released/);
  });
});

describe('released statements are immutable', () => {
  it('fails synth when a released statement is edited in place, telling the user to bump the version', () => {
    const root = copyOfSqlRoot();
    const file = join(root, '40-duplicate-clicks', 'v1', '01-insert-compensation-events.sql');
    writeFileSync(file, readFileSync(file, 'utf8').replace("INTERVAL '5' MINUTE", "INTERVAL '10' MINUTE"));
    expect(() => flinkStack({ sqlRoot: root })).toThrow(
      /40-duplicate-clicks\/v1\/01-insert-compensation-events\.sql changed after release[\s\S]*Copy flink-sql\/40-duplicate-clicks\/v1\/ to v2/,
    );
  });

  it('accepts a comment-only edit (comments are not deployed)', () => {
    const root = copyOfSqlRoot();
    appendFileSync(join(root, '40-duplicate-clicks', 'v1', '01-insert-compensation-events.sql'), '\n-- reviewed\n');
    expect(() => flinkStack({ sqlRoot: root })).not.toThrow();
  });

  it('fails synth when a config change would re-render a released statement (top-N, TTL)', () => {
    expect(() => flinkStack({ flink: { rankingTopN: 20 } })).toThrow(/released with parameters RANKING_TOP_N=50 .* RANKING_TOP_N=20/);
    expect(() => flinkStack({ flink: { stateTtl: { attributionHours: 48, duplicateClicksHours: 6 } } })).toThrow(/sql\.state-ttl=25 h .* sql\.state-ttl=48 h/);
  });

  it('fails synth when a file is added to a released version', () => {
    const root = copyOfSqlRoot();
    writeFileSync(
      join(root, '00-sources', 'v1', '03-product-catalog-watermark.sql'),
      "ALTER TABLE `product-catalog` MODIFY WATERMARK FOR `updated_ts` AS `updated_ts` - INTERVAL '1' SECOND",
    );
    expect(() => flinkStack({ sqlRoot: root })).toThrow(/was added to released version 1 of sources/);
  });
});

describe('migration: a new version runs while the retired one is kept stopped', () => {
  const root = copyOfSqlRoot({ onlyVersion1Of: ['40-duplicate-clicks'] });
  const v2 = join(root, '40-duplicate-clicks', 'v2');
  cpSync(join(root, '40-duplicate-clicks', 'v1'), v2, { recursive: true });
  const file = join(v2, '01-insert-compensation-events.sql');
  writeFileSync(file, readFileSync(file, 'utf8').replace("INTERVAL '5' MINUTE", "INTERVAL '3' MINUTE"));
  const stack = flinkStack({
    sqlRoot: root,
    flink: {
      allowUnreleasedVersions: true,
      pipelines: { ...defaultFlinkConfig.pipelines, 'duplicate-clicks': { version: 2, stopped: false, retiredVersions: [1] } },
    },
  });
  const statements = byName(statementsOf(stack));

  it('deploys v2 under a new statement name, running', () => {
    expect(statements.get('adstream-dev-duplicate-clicks-v2-01')?.stopped).toBe(false);
    expect(statements.get('adstream-dev-duplicate-clicks-v2-01')?.statement).toContain("INTERVAL '3' MINUTE");
  });

  it('keeps v1 deployed, unchanged and stopped', () => {
    expect(statements.get('adstream-dev-duplicate-clicks-v1-01')?.stopped).toBe(true);
    expect(statements.get('adstream-dev-duplicate-clicks-v1-01')?.statement).toContain("INTERVAL '5' MINUTE");
  });

  it('stops the running version when the config says so', () => {
    const stopped = byName(
      statementsOf(
        flinkStack({ flink: { pipelines: { ...defaultFlinkConfig.pipelines, 'rtb-ranking': { version: 1, stopped: true, retiredVersions: [] } } } }),
      ),
    );
    expect(stopped.get('adstream-dev-rtb-ranking-v1-02')?.stopped).toBe(true);
    expect(stopped.get('adstream-dev-rtb-ranking-v1-01')?.stopped).toBeUndefined();
  });
});

describe('lint at synth', () => {
  it('fails synth for a statement kind flink-sql/ does not deploy (a bare SELECT)', () => {
    const root = copyOfSqlRoot();
    const v3 = join(root, '10-performance-metrics', 'v3');
    cpSync(join(root, '10-performance-metrics', 'v1'), v3, { recursive: true });
    // v3 must not re-create v1's tables; drop the DDL and break the window grouping of the DML
    for (const ddl of ['01-create-ad-performance-5m.sql', '02-create-product-metrics-24h.sql']) writeFileSync(join(v3, ddl), '-- removed\nSELECT 1');
    const dml = join(v3, '03-insert-ad-performance-5m.sql');
    writeFileSync(dml, readFileSync(dml, 'utf8').replace('`window_start`, `window_end`\n)', '`window_start`\n)'));
    expect(() =>
      flinkStack({
        sqlRoot: root,
        flink: {
          allowUnreleasedVersions: true,
          pipelines: { ...defaultFlinkConfig.pipelines, 'performance-metrics': { version: 3, stopped: false, retiredVersions: [1, 2] } },
        },
      }),
    ).toThrow(/only CREATE TABLE, ALTER TABLE … MODIFY WATERMARK, ALTER TABLE … SET \('changelog.mode' = …\) and INSERT INTO statements/);
  });

  it('fails synth with the lint finding for a broken window aggregation', () => {
    const root = copyOfSqlRoot();
    const v3 = join(root, '10-performance-metrics', 'v3');
    cpSync(join(root, '10-performance-metrics', 'v1', '03-insert-ad-performance-5m.sql'), join(v3, '03-insert-ad-performance-5m.sql'));
    const dml = join(v3, '03-insert-ad-performance-5m.sql');
    writeFileSync(
      dml,
      readFileSync(dml, 'utf8').replace(
        'GROUP BY `campaign_id`, `product_id`, `placement`, `window_start`, `window_end`',
        'GROUP BY `campaign_id`, `product_id`, `placement`, `window_start`',
      ),
    );
    expect(() =>
      flinkStack({
        sqlRoot: root,
        flink: {
          allowUnreleasedVersions: true,
          pipelines: { ...defaultFlinkConfig.pipelines, 'performance-metrics': { version: 3, stopped: false, retiredVersions: [1, 2] } },
        },
      }),
    ).toThrow(/10-performance-metrics\/v3\/03-insert-ad-performance-5m\.sql fails the Confluent Cloud dialect lint[\s\S]*\[window-bounds\]/);
  });
});
