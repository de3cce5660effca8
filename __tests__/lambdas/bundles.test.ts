/**
 * The Lambda bundles as the AWS stacks deploy them: `scripts/bundle.mjs` builds every handler,
 * each bundle stays small, carries no infrastructure code, and loads in a fresh `node` process
 * that only has what the Lambda runtime has (the AWS SDK v3) — printing its cold import time.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { BUNDLE_NAMES } from '../aws/support/fixtures';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '../..');
/** Every function the workers stack deploys (the one list the tests keep beside scripts/bundle.mjs's). */
const HANDLERS = [...BUNDLE_NAMES];
const MAX_BUNDLE_BYTES = 1.5 * 1024 * 1024;
/** Generous: Lambda's own init budget is 10 s; this catches a bundle that drags in something huge. */
const MAX_COLD_IMPORT_MS = 1500;
/** What cdktf / constructs code looks like after minification (string literals survive). */
const INFRASTRUCTURE_CODE = /Symbol\.for\("constructs\.Construct"\)|"cdktf\/|TerraformStack|@cdktf\/provider-/;

interface Manifest {
  readonly maxBundleBytes: number;
  readonly handlers: Record<string, { bytes: number; sha256: string; bundle: string }>;
}

let tmp: string;
let outDir: string;
let manifest: Manifest;
/** A NODE_PATH holding only @aws-sdk, as the Lambda Node.js runtime provides it. */
let runtimeModules: string;

async function bundleInto(dir: string): Promise<Manifest> {
  await run(process.execPath, [path.join(REPO_ROOT, 'scripts/bundle.mjs'), '--quiet', '--out-dir', dir], { cwd: REPO_ROOT });
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

function hashDirectory(dir: string): string {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.push(path.relative(dir, full).split(path.sep).join('/'));
    }
  };
  walk(dir);
  const hash = createHash('sha256');
  for (const file of files.sort())
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(path.join(dir, file)))
      .update('\0');
  return hash.digest('hex');
}

beforeAll(async () => {
  // Built outside build/ so nothing reading build/lambdas at the same time sees a half-built tree.
  tmp = mkdtempSync(path.join(os.tmpdir(), 'adstream-bundles-'));
  outDir = path.join(tmp, 'a', 'lambdas');
  manifest = await bundleInto(outDir);
  runtimeModules = path.join(tmp, 'runtime', 'node_modules');
  mkdirSync(runtimeModules, { recursive: true });
  symlinkSync(path.join(REPO_ROOT, 'node_modules', '@aws-sdk'), path.join(runtimeModules, '@aws-sdk'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('npm run bundle', () => {
  test.each(HANDLERS)('%s is bundled into <out>/<name>/index.js with a source map, at most 1.5 MB', (name) => {
    const bundle = path.join(outDir, name, 'index.js');
    const bytes = statSync(bundle).size;
    expect(statSync(`${bundle}.map`).size).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(MAX_BUNDLE_BYTES);
    expect(manifest.handlers[name].bytes).toBe(bytes);
    console.log(`bundle ${name}: ${(bytes / 1024).toFixed(1)} KiB`);
  });

  test.each(HANDLERS)('%s contains no cdktf or constructs code and leaves @aws-sdk to the runtime', (name) => {
    const code = readFileSync(path.join(outDir, name, 'index.js'), 'utf8');
    expect(code).not.toMatch(INFRASTRUCTURE_CODE);
    // Only require calls to the SDK: its client code (user-agent header, service ids) stays out.
    expect(code).toMatch(/require\("@aws-sdk\/client-(secrets-manager|lambda)"\)/);
    expect(code).not.toMatch(/x-amz-user-agent|aws-sdk-js|AmazonSimpleNotificationService/);
  });

  test('the infrastructure-code check recognises a bundle that pulls in cdktf and constructs', async () => {
    const result = await build({
      stdin: { contents: "export { Construct } from 'constructs'; export { TerraformStack } from 'cdktf';", resolveDir: REPO_ROOT, loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      minify: true,
      write: false,
      logLevel: 'silent',
    });
    expect(result.outputFiles[0].text).toMatch(INFRASTRUCTURE_CODE);
  });

  test('the manifest hash of each bundle directory is its content hash, and a rebuild reproduces it', async () => {
    // Same depth as the first build, so source map paths (relative to the sources) are equal too.
    const again = await bundleInto(path.join(tmp, 'b', 'lambdas'));
    for (const name of HANDLERS) {
      expect(manifest.handlers[name].sha256).toBe(hashDirectory(path.join(outDir, name)));
      expect(again.handlers[name].sha256).toBe(manifest.handlers[name].sha256);
    }
  });

  test('every bundled file and folder has the same fixed mtime, so an unchanged bundle zips to the same bytes', () => {
    const stamps = new Set<number>();
    const walk = (d: string) => {
      for (const entry of readdirSync(d, { withFileTypes: true })) {
        const full = path.join(d, entry.name);
        stamps.add(statSync(full).mtimeMs);
        if (entry.isDirectory()) walk(full);
      }
    };
    for (const name of HANDLERS) walk(path.join(outDir, name));
    expect([...stamps]).toEqual([Date.parse('2000-01-01T00:00:00Z')]);
  });

  test('db-migrate carries the SQL migrations beside its code', () => {
    const shipped = readdirSync(path.join(outDir, 'db-migrate', 'migrations')).sort();
    const source = readdirSync(path.join(REPO_ROOT, 'db', 'migrations'))
      .filter((f) => f.endsWith('.sql'))
      .sort();
    expect(shipped).toEqual(source);
    expect(shipped.length).toBeGreaterThan(0);
  });

  test.each(HANDLERS)('%s loads in a fresh node process with only the runtime SDK and exports handler (cold import time)', async (name) => {
    const probe = [
      'const started = process.hrtime.bigint();',
      `const loaded = require(${JSON.stringify(path.join(outDir, name, 'index.js'))});`,
      'const ms = Number(process.hrtime.bigint() - started) / 1e6;',
      'process.stdout.write(JSON.stringify({ ms, handler: typeof loaded.handler }));',
      // Module-scope clients are lazy, but end explicitly rather than rely on it.
      'process.exit(0);',
    ].join('\n');
    const { stdout } = await run(process.execPath, ['-e', probe], {
      cwd: tmp,
      env: {
        PATH: process.env.PATH,
        NODE_PATH: runtimeModules,
        AWS_REGION: 'ap-northeast-2',
        // Module-load parsing needs these, exactly as the deployed function gets them.
        DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
        REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
        FLINK_STATUS_SECRET_ARN: 'arn:aws:secretsmanager:ap-northeast-2:111111111111:secret:adstream/dev/flink/status-reader',
        FLINK_STATEMENTS: 'adstream-dev-duplicate-clicks-v1-insert',
        TRIGGER_MAPPINGS: 'click-balance=00000000-0000-0000-0000-000000000000',
      },
    });
    const result = JSON.parse(stdout) as { ms: number; handler: string };
    console.log(`cold import ${name}: ${result.ms.toFixed(0)} ms`);
    expect(result.handler).toBe('function');
    expect(result.ms).toBeLessThan(MAX_COLD_IMPORT_MS);
  });
});
