import { relative } from 'node:path';
import { FlinkEngine } from '../../scripts/flink-engine';
import { loadScenario, runScenario, SCENARIO_ROOT, scenarioFiles } from '../../scripts/flink-scenarios';

// Every scenario under flink-sql/scenarios/, executed on Apache Flink (local MiniCluster).
const files = scenarioFiles();
let engine: FlinkEngine;
const started = Date.now();

beforeAll(async () => {
  engine = await FlinkEngine.start();
}, 300_000);

afterAll(async () => {
  await engine?.close();
  process.stderr.write(`flink engine: ran ${files.length} scenarios in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
});

test('there is at least one scenario per pipeline with a sink', () => {
  const pipelines = new Set(files.map((f) => loadScenario(f).pipeline));
  expect([...pipelines].sort()).toEqual(['attribution', 'duplicate-clicks', 'performance-metrics', 'rtb-ranking']);
});

test.each(files.map((f) => [relative(SCENARIO_ROOT, f), f]))(
  '%s',
  async (_name, file) => {
    const result = await runScenario(engine, loadScenario(file));
    expect(result.problems).toEqual([]);
  },
  120_000,
);
