/**
 * GIVEN handler bundles built by scripts/bundle.mjs (which records what each was built from)
 * WHEN a handler, a module it imports, the lock file or the migrations change afterwards
 * THEN the workers stack refuses to synthesize, naming the stale handler and the changed file,
 * AND the cdktf app command bundles before it runs main.ts, so `cdktf synth|diff|deploy`
 * never packages old code.
 */
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Testing } from 'cdktf';
import { assertBundlesFresh, BundleManifest } from '../../constructs/aws/bundle-manifest';
import { StaleBundleError } from '../../constructs/aws/errors';
import { WorkersStack } from '../../stacks/workers-stack';
import { fakeHandoffs, testEnvironment } from './support/fixtures';

const run = promisify(execFile);
const REPO_ROOT = resolve(__dirname, '../..');
const HANDLERS = ['click-balance', 'compensation', 'ranking-cache', 'budget-reset', 'outbox-sweep', 'db-migrate'];

let tmp: string;
let bundleRoot: string;
let manifest: BundleManifest;

/** A private copy of exactly the sources the bundles were built from, for a test to edit. */
function copyOfSources(): string {
  const root = mkdtempSync(join(tmp, 'src-'));
  const files = new Set(Object.values(manifest.handlers).flatMap((h) => Object.keys(h.sources ?? {})));
  for (const file of files) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    cpSync(join(REPO_ROOT, file), join(root, file));
  }
  return root;
}

function synthWith(sourceRoot: string): void {
  const config = testEnvironment('dev');
  Testing.synth(new WorkersStack(Testing.app(), { config, ...fakeHandoffs(config), bundleRoot, bundleSources: sourceRoot }));
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'adstream-freshness-'));
  bundleRoot = join(tmp, 'lambdas');
  await run(process.execPath, [join(REPO_ROOT, 'scripts/bundle.mjs'), '--quiet', '--out-dir', bundleRoot], { cwd: REPO_ROOT });
  manifest = JSON.parse(readFileSync(join(bundleRoot, 'manifest.json'), 'utf8')) as BundleManifest;
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('bundle freshness', () => {
  test('the manifest records every handler source outside node_modules, the lock file and the migrations', () => {
    const clickBalance = Object.keys(manifest.handlers['click-balance'].sources ?? {});
    expect(clickBalance).toEqual(expect.arrayContaining(['lambdas/click-balance/handler.ts', 'package-lock.json']));
    expect(clickBalance.some((file) => file.startsWith('lambdas/shared/'))).toBe(true);
    expect(clickBalance.some((file) => file.includes('node_modules'))).toBe(false);
    expect(Object.keys(manifest.handlers['db-migrate'].sources ?? {}).some((file) => /^db\/migrations\/.+\.sql$/.test(file))).toBe(true);
  });

  test('freshly built bundles synthesize', () => {
    const sources = copyOfSources();
    expect(() => assertBundlesFresh(bundleRoot, HANDLERS, sources)).not.toThrow();
    expect(() => synthWith(sources)).not.toThrow();
  });

  test('editing a handler after bundling makes synth refuse, naming the handler, the file and the fix', () => {
    const sources = copyOfSources();
    appendFileSync(join(sources, 'lambdas/click-balance/handler.ts'), '\n// edited after bundling\n');
    expect(() => synthWith(sources)).toThrow(StaleBundleError);
    expect(() => synthWith(sources)).toThrow(/click-balance: lambdas\/click-balance\/handler\.ts[\s\S]*npm run bundle/);
    expect(() => synthWith(sources)).not.toThrow(/compensation:/);
  });

  test('editing a shared module marks every handler that imports it', () => {
    const sources = copyOfSources();
    const shared = Object.keys(manifest.handlers.compensation.sources ?? {}).find((file) => file.startsWith('lambdas/shared/'))!;
    appendFileSync(join(sources, shared), '\n// edited\n');
    const users = HANDLERS.filter((h) => shared in (manifest.handlers[h].sources ?? {}));
    expect(users.length).toBeGreaterThan(1);
    try {
      assertBundlesFresh(bundleRoot, HANDLERS, sources);
      throw new Error('expected StaleBundleError');
    } catch (error) {
      expect(error).toBeInstanceOf(StaleBundleError);
      expect((error as StaleBundleError).stale.map((line) => line.split(':')[0]).sort()).toEqual([...users].sort());
    }
  });

  test('a new migration or a dependency change after bundling is stale too', () => {
    const withMigration = copyOfSources();
    writeFileSync(join(withMigration, 'db/migrations/99999999999999_added-later.sql'), 'select 1;\n');
    expect(() => assertBundlesFresh(bundleRoot, HANDLERS, withMigration)).toThrow(/db-migrate: db\/migrations\/99999999999999_added-later\.sql/);
    const withLock = copyOfSources();
    appendFileSync(join(withLock, 'package-lock.json'), ' ');
    expect(() => assertBundlesFresh(bundleRoot, HANDLERS, withLock)).toThrow(/package-lock\.json/);
  });

  test('the cdktf app command bundles before it runs main.ts, so cdktf synth, diff and deploy bundle too', () => {
    const { app } = JSON.parse(readFileSync(join(REPO_ROOT, 'cdktf.json'), 'utf8')) as { app: string };
    const steps = app.split('&&').map((step) => step.trim());
    expect(steps).toEqual(['node scripts/bundle.mjs --quiet', 'npx tsx main.ts']);
  });
});
