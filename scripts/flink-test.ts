// npm run flink:test [-- <scenario.json> …]: runs the Flink scenario tests on the local engine.
// With no argument it runs every scenario under flink-sql/scenarios/; with files it runs those
// and prints each sink's changelog as JSON lines ({"topic","op","row"}). Exit code 1 on failure.
import { resolve } from 'node:path';
import { FlinkEngine } from './flink-engine';
import { loadScenario, runScenario, scenarioFiles } from './flink-scenarios';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const files = args.length > 0 ? args.map((a) => resolve(a)) : scenarioFiles();
  const started = Date.now();
  const engine = await FlinkEngine.start();
  let failed = 0;
  try {
    for (const file of files) {
      let result;
      try {
        result = await runScenario(engine, loadScenario(file));
      } catch (error) {
        result = { sinks: {}, problems: [error instanceof Error ? error.message : String(error)] };
      }
      if (args.length > 0) {
        for (const [topic, rows] of Object.entries(result.sinks)) {
          for (const row of rows) process.stdout.write(`${JSON.stringify({ topic, ...row })}\n`);
        }
      }
      if (result.problems.length > 0) failed += 1;
      process.stderr.write(`${result.problems.length === 0 ? 'ok  ' : 'FAIL'} ${file}\n${result.problems.map((p) => `  ${p}\n`).join('')}`);
    }
  } finally {
    await engine.close();
  }
  process.stderr.write(`${files.length - failed} passed, ${failed} failed (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
