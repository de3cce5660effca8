#!/usr/bin/env node
// Generates the Confluent provider bindings (.gen/providers/confluent) with the real
// `cdktf get`, offline, from the provider schema committed under providers/. Skips the work
// when the bindings already match the schema (a stamp holds the schema's hash).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schemaDir = join(root, 'providers');
const stamp = join(root, '.gen', 'providers', 'confluent', '.schema-sha256');
const USAGE = 'usage: npm run gen [-- --force]\n\nGenerates .gen/providers/confluent from providers/ (skipped when up to date; --force regenerates).';
let args;
try {
  args = parseArgs({ options: { force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
} catch (error) {
  console.error(`gen-providers: ${error.message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const force = args.force === true;

const hash = createHash('sha256');
for (const file of readdirSync(schemaDir)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  hash.update(file).update(readFileSync(join(schemaDir, file)));
}
const digest = hash.digest('hex');

if (!force && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === digest) {
  process.exit(0);
}

const cli = join(root, 'node_modules', '.bin', 'cdktf');
if (!existsSync(cli)) {
  console.error('gen-providers: node_modules/.bin/cdktf is missing; run `npm ci` first.');
  process.exit(1);
}
const started = Date.now();
const result = spawnSync(cli, ['get', '--force'], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
  env: {
    ...process.env,
    CDKTF_EXPERIMENTAL_PROVIDER_SCHEMA_CACHE_PATH: schemaDir,
    CDKTF_DISABLE_PLUGIN_CACHE_ENV: 'true',
    CHECKPOINT_DISABLE: '1',
    CDKTF_DISABLE_TELEMETRY: 'true',
    DISABLE_VERSION_CHECK: 'true',
  },
});
if (result.status !== 0 || !existsSync(join(root, '.gen', 'providers', 'confluent', 'provider', 'index.ts'))) {
  console.error(`gen-providers: cdktf get failed (exit ${result.status})\n${result.stdout}\n${result.stderr}`);
  process.exit(1);
}
writeFileSync(stamp, `${digest}\n`);
console.log(`gen-providers: generated .gen/providers/confluent from providers/ in ${Date.now() - started} ms`);
