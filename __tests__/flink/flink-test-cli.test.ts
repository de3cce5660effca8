import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCENARIO_ROOT } from '../../scripts/flink-scenarios';
import { repoRoot } from '../../scripts/java';

// `npm run flink:test -- <file>` on scenarios written outside the repository.
test('flink:test runs scenario files from anywhere, prints each sink changelog as JSON lines, and exits 1 when one fails', () => {
  const dir = mkdtempSync(join(tmpdir(), 'adstream-scenario-'));
  const scenario = JSON.parse(readFileSync(join(SCENARIO_ROOT, 'duplicate-clicks', 'window-boundary.json'), 'utf8')) as Record<string, unknown>;
  const good = join(dir, 'good.json');
  writeFileSync(good, JSON.stringify({ ...scenario, replay: false }));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ ...scenario, replay: false, expect: { 'compensation-events': { final: [] } } }));
  const run = spawnSync('npx', ['tsx', 'scripts/flink-test.ts', good, bad], { cwd: repoRoot, encoding: 'utf8', timeout: 300_000 });
  const lines = run.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { topic: string; op: string; row: Record<string, unknown> });
  // both files print their changelog: one compensation each
  expect(lines.map((l) => [l.topic, l.op, l.row.duplicate_event_id])).toEqual([
    ['compensation-events', '+I', 'e2'],
    ['compensation-events', '+I', 'e2'],
  ]);
  expect(run.stderr).toContain(`ok   ${good}`);
  expect(run.stderr).toContain(`FAIL ${bad}`);
  expect(run.stderr).toContain('1 passed, 1 failed');
  expect(run.status).toBe(1);
}, 300_000);
