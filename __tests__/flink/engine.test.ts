import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadEnvironment } from '../../config';
import { parseCreateTable } from '../../constructs/flink/catalog';
import { localJob } from '../../constructs/flink/local-engine';
import { EngineAnswer, FlinkEngine } from '../../scripts/flink-engine';
import { everyDeployment, SynthesizedDeployment, synthesizedDeployment } from '../../scripts/flink-statements';
import { copyOfSqlRoot } from './helpers';

// Every statement of every environment and every released version, planned by Apache Flink.
const deployments = everyDeployment();
const answers = new Map<SynthesizedDeployment, EngineAnswer>();
let engine: FlinkEngine;
const started = Date.now();

/** Operators whose state grows with the number of keys until a TTL (or nothing) removes it. */
const UNBOUNDED_STATE = ['GroupAggregate', 'Rank', 'Join', 'OverAggregate', 'ChangelogNormalize', 'Deduplicate', 'GlobalGroupAggregate'];
/** Pipelines whose README section explains why they keep state without a TTL. */
const NO_TTL_BY_DESIGN = ['rtb-ranking'];

beforeAll(async () => {
  engine = await FlinkEngine.start();
  for (const deployment of deployments) {
    answers.set(deployment, await engine.run(localJob(deployment.statements, deployment.cleanupPolicies), { continueOnError: true }));
  }
}, 600_000);

afterAll(async () => {
  await engine?.close();
  process.stderr.write(`flink engine: planned ${deployments.length} deployments in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
});

describe.each(deployments.map((d) => [`${d.environment}: ${d.label}`, d] as const))('%s', (_label, deployment) => {
  const sinkTables = new Map<string, { primaryKey: readonly string[] }>();
  for (const s of deployment.statements) {
    const created = parseCreateTable(s.sql);
    if (created) sinkTables.set(created.table, { primaryKey: created.primaryKey });
  }

  test('every statement is accepted by the Flink planner', () => {
    const answer = answers.get(deployment)!;
    const failures = answer.statements.filter((s) => s.error).map((s) => `${s.name}: ${s.error}`);
    expect(answer.error ? [answer.error.statement, ...failures] : failures).toEqual([]);
    expect(answer.statements.map((s) => s.name)).toEqual(deployment.statements.map((s) => s.name));
  });

  test('each sink receives the changelog its table declares', () => {
    const answer = answers.get(deployment)!;
    for (const statement of deployment.statements.filter((s) => s.kind === 'dml')) {
      const result = answer.statements.find((s) => s.name === statement.name)!;
      const target = /^INSERT\s+INTO\s+`([^`]+)`/i.exec(statement.sql)![1];
      const declared = sinkTables.get(target);
      if (!declared) {
        // Foundation topics (compensation-events) are append-only: insert-only rows, nothing to materialize.
        expect({ name: statement.name, mode: result.sinkInputChangelogMode }).toEqual({ name: statement.name, mode: 'I' });
      } else if (declared.primaryKey.length === 0) {
        // Our own append tables (the rejects topics): insert-only rows as well.
        expect({ name: statement.name, mode: result.sinkInputChangelogMode }).toEqual({ name: statement.name, mode: 'I' });
      } else {
        // Upserts by the declared key: no retractions reach the sink, and Flink needed no materializer
        // (it adds one when the query's unique key is not the table's primary key).
        expect({ name: statement.name, mode: result.sinkInputChangelogMode?.includes('UB'), materialize: result.upsertMaterialize }).toEqual({
          name: statement.name,
          mode: false,
          materialize: false,
        });
      }
    }
  });

  test('no statement keeps unbounded state without sql.state-ttl unless its README section says why', () => {
    const answer = answers.get(deployment)!;
    for (const statement of deployment.statements.filter((s) => s.kind === 'dml')) {
      const result = answer.statements.find((s) => s.name === statement.name)!;
      const unbounded = (result.operators ?? []).filter((op) => UNBOUNDED_STATE.includes(op));
      if (unbounded.length === 0 || NO_TTL_BY_DESIGN.includes(statement.pipeline)) continue;
      expect({ name: statement.name, ttl: statement.properties['sql.state-ttl'] ?? `none (operators: ${unbounded.join(', ')})` }).toEqual({
        name: statement.name,
        ttl: expect.stringMatching(/^\d+ h$/),
      });
    }
  });
});

/** Plans dev with a new duplicate-clicks v2 whose SQL is v1's after `edit`. */
async function planEditedVersion(edit: (v1: string) => string): Promise<EngineAnswer> {
  const root = copyOfSqlRoot({ onlyVersion1Of: ['40-duplicate-clicks'] });
  const v1 = readFileSync(join(root, '40-duplicate-clicks', 'v1', '01-insert-compensation-events.sql'), 'utf8');
  const edited = edit(v1);
  expect(edited).not.toBe(v1);
  mkdirSync(join(root, '40-duplicate-clicks', 'v2'), { recursive: true });
  writeFileSync(join(root, '40-duplicate-clicks', 'v2', '01-insert-compensation-events.sql'), edited);
  const dev = loadEnvironment('dev');
  const deployment = synthesizedDeployment(dev, {
    sqlRoot: root,
    flink: { allowUnreleasedVersions: true, pipelines: { ...dev.flink.pipelines, 'duplicate-clicks': { version: 2, stopped: false, retiredVersions: [1] } } },
  });
  return engine.run(localJob(deployment.statements, deployment.cleanupPolicies));
}

test('a SELEC typo in a new version, which synth and the lint accept, fails with the Flink parser message naming the statement', async () => {
  const answer = await planEditedVersion((v1) => v1.replace(/^SELECT$/m, 'SELEC'));
  expect(answer.ok).toBe(false);
  expect(answer.error?.statement).toBe('adstream-dev-duplicate-clicks-v2-01');
  expect(answer.error?.message).toMatch(/SQL parse failed/);
});

test('an unknown column the token lint takes for an alias fails with the Flink validator message', async () => {
  const answer = await planEditedVersion((v1) => v1.replace('`actual_price` AS `refund_amount`', '`reason` AS `refund_amount`'));
  expect(answer.ok).toBe(false);
  expect(answer.error?.statement).toBe('adstream-dev-duplicate-clicks-v2-01');
  expect(answer.error?.message).toMatch(/Column 'reason' not found/);
});

test('a planner error (comparing a timestamp with a string) fails with the Flink message', async () => {
  const answer = await planEditedVersion((v1) => v1.replace('`event_ts` < `previous_event_ts` + INTERVAL', '`event_ts` < `previous_event_id` + INTERVAL'));
  expect(answer.ok).toBe(false);
  expect(answer.error?.statement).toBe('adstream-dev-duplicate-clicks-v2-01');
  expect(answer.error?.message).toMatch(/Cannot apply '\+'|cannot be applied|No match found/i);
});

test('an updating query into the append-only compensation-events fails with the Flink planner message (no lint rule needed)', async () => {
  const answer = await planEditedVersion(
    () => `INSERT INTO \`compensation-events\` (
  \`compensation_id\`, \`duplicate_event_id\`, \`original_event_id\`, \`advertiser_id\`, \`campaign_id\`, \`ad_id\`, \`device_id\`,
  \`duplicate_event_ts\`, \`original_event_ts\`, \`refund_amount\`, \`reason\`, \`compensation_type\`
)
SELECT
  SHA256(MAX(\`event_id\`)) AS \`compensation_id\`,
  MAX(\`event_id\`) AS \`duplicate_event_id\`,
  MIN(\`event_id\`) AS \`original_event_id\`,
  \`advertiser_id\`,
  \`campaign_id\`,
  \`ad_id\`,
  \`device_id\`,
  CAST(MAX(\`event_ts\`) AS TIMESTAMP_LTZ(3)) AS \`duplicate_event_ts\`,
  CAST(MIN(\`event_ts\`) AS TIMESTAMP_LTZ(3)) AS \`original_event_ts\`,
  MAX(\`actual_price\`) AS \`refund_amount\`,
  'DUPLICATE_CLICK_DETECTED' AS \`reason\`,
  'BALANCE_REFUND' AS \`compensation_type\`
FROM \`ad-events\`
WHERE \`event_type\` = 'CLICK'
GROUP BY \`advertiser_id\`, \`campaign_id\`, \`ad_id\`, \`device_id\`
HAVING COUNT(*) > 1
`,
  );
  expect(answer.ok).toBe(false);
  expect(answer.error?.statement).toBe('adstream-dev-duplicate-clicks-v2-01');
  expect(answer.error?.message).toMatch(/doesn't support consuming update changes/);
});

test('rtb-ranking v5 fans its heartbeat out to 64 keys once per bucket, with a stateless Correlate on the distinct buckets, not a join that keeps every ad event', () => {
  const [deployment] = deployments.filter((d) => d.statements.some((s) => s.name === 'adstream-dev-rtb-ranking-v5-01'));
  const plan = answers.get(deployment)!.statements.find((s) => s.name === 'adstream-dev-rtb-ranking-v5-01')!.plan ?? '';
  // A constant ARRAY[…] in the UNNEST is planned as Join(where=[true]) of ad-events with a
  // 64-row constant: unbounded state (no TTL in the ranking) and heartbeats out of order.
  expect(plan).toMatch(/Correlate\(invocation=\[\$UNNEST_ROWS\$\d+\(ARRAY\(ROW\(_UTF-16LE'#00', \$cor\d+\.bucket\)/);
  expect(plan).not.toMatch(/Join\(joinType=\[InnerJoin\], where=\[true\]/);
  // The fan-out reads the buckets deduplicated (one row per 5 minutes), not every ad event.
  expect(plan).toMatch(/Correlate\(invocation=\[\$UNNEST_ROWS[^\n]*\n\s*\+- GroupAggregate\(groupBy=\[bucket\], select=\[bucket\]/);
});
