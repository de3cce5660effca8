#!/usr/bin/env node
// README command 1: synthesizes every environment's stacks into cdktf.out/, offline.
// Bundles the Lambda handlers first (the AWS stacks package them), then runs the app the way
// `cdktf synth` would, and prints what was written and how long it took.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: npm run synth\n\nBundles the Lambda handlers, then synthesizes every environment into cdktf.out/ (offline).';
try {
  if (parseArgs({ options: { help: { type: 'boolean', short: 'h' } }, strict: true }).values.help) {
    console.log(USAGE);
    process.exit(0);
  }
} catch (error) {
  console.error(`synth: ${error.message}\n\n${USAGE}`);
  process.exit(2);
}
const started = process.hrtime.bigint();

function run(label, command, args) {
  const t0 = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
  if (result.status !== 0) {
    console.error(`synth: ${label} failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const bundleMs = existsSync(join(root, 'scripts', 'bundle.mjs')) ? run('bundle', process.execPath, [join(root, 'scripts', 'bundle.mjs')]) : 0;
const synthMs = run('app', join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'main.ts')]);

const manifest = JSON.parse(readFileSync(join(root, 'cdktf.out', 'manifest.json'), 'utf8'));
const stacks = Object.keys(manifest.stacks).sort();
for (const name of stacks) {
  const dir = join(root, 'cdktf.out', 'stacks', name);
  const json = JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8'));
  const resources = Object.values(json.resource ?? {}).reduce((n, byName) => n + Object.keys(byName).length, 0);
  console.log(`  ${name.padEnd(32)} ${String(resources).padStart(4)} resources  (${readdirSync(dir).length} files)`);
}
const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
console.log(
  `synth: ${stacks.length} stacks written to cdktf.out/ in ${(totalMs / 1000).toFixed(1)} s (bundle ${(bundleMs / 1000).toFixed(1)} s, app ${(synthMs / 1000).toFixed(1)} s)`,
);
