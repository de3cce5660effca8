#!/usr/bin/env node
// Bundles every Lambda handler with esbuild into build/lambdas/<name>/ — the directory the AWS
// stacks zip and deploy — and writes build/lambdas/manifest.json with each bundle's size and a
// sha256 of its directory, which the stacks use as source_code_hash (and, for db-migrate, to
// re-run the migration when the migrations change). Run before synth; never at synth time.
//
//   npm run bundle                      build all handlers into build/lambdas
//   npm run bundle -- --quiet           no per-handler lines, only errors
//   npm run bundle -- --out-dir <dir>   build somewhere else (tests)
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `usage: npm run bundle [-- --quiet] [-- --out-dir <dir>]

Bundles every Lambda handler into build/lambdas/<name>/ (or <dir>) with manifest.json.
  --quiet          no per-handler lines, only errors
  --out-dir <dir>  build somewhere else (tests)
  --help           this text`;
let args;
try {
  args = parseArgs({ options: { quiet: { type: 'boolean' }, 'out-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
} catch (error) {
  console.error(`bundle: ${error.message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const quiet = args.quiet === true;
/** Timestamp given to every bundled file (zip dates start in 1980). */
const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');
// --out-dir lets tests build elsewhere without racing anything that reads build/lambdas.
const outDirArg = args['out-dir'];
const outRoot = outDirArg ? resolve(outDirArg) : join(root, 'build', 'lambdas');

/** Largest bundle (index.js) we accept: cold start grows with the bytes Node has to parse. */
const MAX_BUNDLE_BYTES = 1.5 * 1024 * 1024;

// Spelled out, not discovered: adding a function is a deliberate change to the deployment.
const HANDLERS = [
  'click-balance',
  'compensation',
  'ranking-cache',
  'budget-reset',
  'outbox-sweep',
  'db-migrate',
  'flink-status',
  'trigger-status',
  'reconcile',
];

// Packages that must never reach a Lambda bundle: lambdas/ is a separate program from the
// infrastructure code. Checked on esbuild's metafile so a stray import fails the build loudly.
const FORBIDDEN_INPUTS = [
  /(^|\/)node_modules\/cdktf(-cli)?\//,
  /(^|\/)node_modules\/constructs\//,
  /(^|\/)node_modules\/@cdktf\//,
  /^constructs\//,
  /^stacks\//,
  /^\.gen\//,
];

class BundleError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'BundleError';
  }
}

function filesUnder(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

function hashFile(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** sha256 over (relative path, content) of every file, in a fixed order: same tree, same hash. */
function hashDirectory(dir) {
  const hash = createHash('sha256');
  for (const file of filesUnder(dir)
    .map((f) => relative(dir, f).split(sep).join('/'))
    .sort()) {
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(dir, file)))
      .update('\0');
  }
  return hash.digest('hex');
}

async function bundleHandler(name) {
  const entry = join(root, 'lambdas', name, 'handler.ts');
  if (!existsSync(entry)) {
    throw new BundleError(`bundle: lambdas/${name}/handler.ts does not exist; every handler in HANDLERS must have one.`);
  }
  const outDir = join(outRoot, name);
  // A clean directory per build, so the hash never covers a leftover file from an older build.
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  let result;
  try {
    result = await build({
      entryPoints: [entry],
      outfile: join(outDir, 'index.js'),
      absWorkingDir: root,
      bundle: true,
      platform: 'node',
      // The workers run on nodejs22.x (WORKER_RUNTIME in constructs/aws/worker-function.ts).
      target: 'node22',
      format: 'cjs',
      minify: true,
      sourcemap: 'external',
      // Stack traces only need the mappings (NODE_OPTIONS=--enable-source-maps); leaving the
      // sources out keeps the deployed zip small.
      sourcesContent: false,
      legalComments: 'none',
      metafile: true,
      logLevel: 'silent',
      external: [
        // The Lambda Node.js 22 runtime ships AWS SDK v3.
        '@aws-sdk/*',
        // pg loads its libpq binding lazily (only for `pg.native`) and treats MODULE_NOT_FOUND
        // as "not installed"; left external it stays an unresolved, never-taken require.
        'pg-native',
      ],
    });
  } catch (error) {
    throw new BundleError(`bundle: esbuild failed for lambdas/${name}/handler.ts`, { cause: error });
  }
  for (const warning of result.warnings) {
    if (!quiet) console.warn(`bundle: ${name}: warning: ${warning.text}`);
  }

  const forbidden = Object.keys(result.metafile.inputs).filter((input) => FORBIDDEN_INPUTS.some((pattern) => pattern.test(input)));
  if (forbidden.length > 0) {
    throw new BundleError(
      `bundle: lambdas/${name} pulls in infrastructure code (${forbidden.slice(0, 5).join(', ')}); ` +
        'handlers must not import cdktf, constructs, stacks/ or .gen/ — move the shared piece to contracts/ or lambdas/shared/.',
    );
  }

  if (name === 'db-migrate') {
    const migrationsDir = join(root, 'db', 'migrations');
    const sqlFiles = existsSync(migrationsDir)
      ? readdirSync(migrationsDir)
          .filter((f) => f.endsWith('.sql'))
          .sort()
      : [];
    if (sqlFiles.length === 0) {
      throw new BundleError('bundle: db/migrations has no *.sql files; the db-migrate bundle would migrate nothing.');
    }
    mkdirSync(join(outDir, 'migrations'));
    for (const file of sqlFiles) copyFileSync(join(migrationsDir, file), join(outDir, 'migrations', file));
  }

  // cdktf zips the directory with each file's mtime: a fixed one makes an unchanged bundle
  // produce the same zip, so Terraform sees no new source_code_hash and re-uploads nothing.
  for (const file of filesUnder(outDir)) utimesSync(file, FIXED_MTIME, FIXED_MTIME);
  if (existsSync(join(outDir, 'migrations'))) utimesSync(join(outDir, 'migrations'), FIXED_MTIME, FIXED_MTIME);
  const bytes = statSync(join(outDir, 'index.js')).size;
  if (bytes > MAX_BUNDLE_BYTES) {
    throw new BundleError(
      `bundle: lambdas/${name} is ${bytes} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit; ` +
        'look at the largest inputs with esbuild --analyze and drop or externalise them.',
    );
  }
  const directoryBytes = filesUnder(outDir).reduce((sum, file) => sum + statSync(file).size, 0);
  // What the bundle was built from, so synth can refuse a bundle older than its sources: every
  // input outside node_modules by content, the lock file for the dependencies, and for
  // db-migrate the migrations it ships.
  const sources = {};
  for (const input of Object.keys(result.metafile.inputs).sort()) {
    if (!input.includes('node_modules/')) sources[input] = hashFile(join(root, input));
  }
  sources['package-lock.json'] = hashFile(join(root, 'package-lock.json'));
  if (name === 'db-migrate') {
    for (const file of readdirSync(join(root, 'db', 'migrations'))
      .filter((f) => f.endsWith('.sql'))
      .sort()) {
      sources[`db/migrations/${file}`] = hashFile(join(root, 'db', 'migrations', file));
    }
  }
  return {
    name,
    entry: `lambdas/${name}/handler.ts`,
    bundle: `build/lambdas/${name}/index.js`,
    bytes,
    directoryBytes,
    inputs: Object.keys(result.metafile.inputs).length,
    sha256: hashDirectory(outDir),
    sources,
  };
}

async function main() {
  mkdirSync(outRoot, { recursive: true });
  const bundles = [];
  for (const name of HANDLERS) {
    const started = performance.now();
    const info = await bundleHandler(name);
    bundles.push(info);
    if (!quiet) {
      console.log(
        `bundle: ${name.padEnd(14)} ${(info.bytes / 1024).toFixed(1).padStart(8)} KiB  ` +
          `${info.inputs} inputs  ${Math.round(performance.now() - started)} ms  sha256 ${info.sha256.slice(0, 12)}`,
      );
    }
  }
  const manifest = {
    maxBundleBytes: MAX_BUNDLE_BYTES,
    handlers: Object.fromEntries(bundles.map(({ name, ...rest }) => [name, rest])),
  };
  writeFileSync(join(outRoot, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  if (!quiet) console.log(`bundle: wrote ${join(outRoot, 'manifest.json')}`);
}

main().catch((error) => {
  console.error(error instanceof BundleError ? error.message : error);
  if (error?.cause?.errors) {
    for (const e of error.cause.errors) {
      console.error(`  ${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`);
    }
  }
  process.exit(1);
});
