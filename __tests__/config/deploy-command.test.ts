/**
 * `npm run deploy` / `npm run diff`: one environment in dependency order, progress per step,
 * stop at the first failure saying what to do, and a dry run that runs nothing.
 *
 * The cloud-facing programs (npx, npm, terraform) are replaced by a recorder on PATH, so the
 * tests see exactly which commands the script would run, and prove the dry run runs none.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { planSteps, selectStacks } from '../../scripts/deploy';

const REPO_ROOT = resolve(__dirname, '../..');
const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
let bin: string;
let calls: string;

/** A fake program that appends its argv to the calls file and fails when argv matches `FAIL_ON`. */
function fakeProgram(name: string): void {
  const path = join(bin, name);
  writeFileSync(
    path,
    `#!/bin/sh\necho "${name} $*" >> "${calls}"\ncase "${name} $*" in\n  $FAIL_ON) echo "simulated failure of ${name} $*" >&2; exit 3;;\nesac\nexit 0\n`,
  );
  chmodSync(path, 0o755);
}

function deploy(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(TSX, ['scripts/deploy.ts', ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { PATH: `${bin}:${process.env.PATH}`, HOME: process.env.HOME, FAIL_ON: 'never-matches', ...env },
  });
  const recorded = existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean) : [];
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls: recorded };
}

beforeEach(() => {
  bin = mkdtempSync(join(tmpdir(), 'adstream-deploy-bin-'));
  calls = join(bin, 'calls.log');
  for (const name of ['npx', 'npm', 'terraform']) fakeProgram(name);
});

afterEach(() => rmSync(bin, { recursive: true, force: true }));

describe('npm run deploy', () => {
  test('--dry-run prints the full ordered plan with its commands and runs nothing', () => {
    const { status, stdout, calls: ran } = deploy(['deploy', '--env', 'dev', '--dry-run']);
    expect(status).toBe(0);
    expect(ran).toEqual([]);
    expect(stdout).toContain('deploy dev: synth → streaming → flink:check → flink → storage → workers');
    const commands = stdout
      .split('\n')
      .filter((line) => line.startsWith('  $ '))
      .map((line) => line.slice(4));
    expect(commands).toEqual([
      'npx cdktf synth',
      'npx cdktf deploy adstream-dev-streaming --skip-synth --ignore-missing-stack-dependencies',
      'npm run --silent flink:check -- --env dev',
      'npx cdktf deploy adstream-dev-flink --skip-synth --ignore-missing-stack-dependencies',
      'npx cdktf deploy adstream-dev-storage --skip-synth --ignore-missing-stack-dependencies',
      'npx cdktf deploy adstream-dev-workers --skip-synth --ignore-missing-stack-dependencies',
    ]);
  });

  test('runs every step in order with progress, and passes --auto-approve on', () => {
    const {
      status,
      stdout,
      calls: ran,
    } = deploy(['deploy', '--env', 'prod', '--auto-approve'], { TF_VAR_confluent_cloud_api_key: 'k', TF_VAR_confluent_cloud_api_secret: 's' });
    expect(status).toBe(0);
    expect(ran).toEqual([
      'npx cdktf synth',
      'npx cdktf deploy adstream-prod-streaming --skip-synth --ignore-missing-stack-dependencies --auto-approve',
      'npm run --silent flink:check -- --env prod',
      'npx cdktf deploy adstream-prod-flink --skip-synth --ignore-missing-stack-dependencies --auto-approve',
      'npx cdktf deploy adstream-prod-storage --skip-synth --ignore-missing-stack-dependencies --auto-approve',
      'npx cdktf deploy adstream-prod-workers --skip-synth --ignore-missing-stack-dependencies --auto-approve',
    ]);
    for (let step = 1; step <= 6; step += 1) expect(stdout).toMatch(new RegExp(`\\[${step}/6\\] [a-z:]+: done in \\d+\\.\\d s`));
    expect(stdout).toContain('deploy prod: all 6 steps done.');
  });

  test('stops at the first failure, says what to do, and never runs the later steps', () => {
    const {
      status,
      stderr,
      calls: ran,
    } = deploy(['deploy', '--env', 'dev'], {
      TF_VAR_confluent_cloud_api_key: 'k',
      TF_VAR_confluent_cloud_api_secret: 's',
      FAIL_ON: 'npm run --silent flink:check*',
    });
    expect(status).toBe(1);
    expect(ran).toEqual([
      'npx cdktf synth',
      'npx cdktf deploy adstream-dev-streaming --skip-synth --ignore-missing-stack-dependencies',
      'npm run --silent flink:check -- --env dev',
    ]);
    expect(stderr).toMatch(/\[3\/6\] flink:check failed after [\d.]+ s \(exit 3\); stopped here/);
    expect(stderr).toContain('Then: npm run deploy -- --env dev --stacks flink,storage,workers');
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  test('refuses to start without the Confluent Cloud key when the streaming stack is selected', () => {
    const { status, stderr, calls: ran } = deploy(['deploy', '--env', 'dev']);
    expect(status).toBe(1);
    expect(ran).toEqual([]);
    expect(stderr).toContain('Set TF_VAR_confluent_cloud_api_key and TF_VAR_confluent_cloud_api_secret');
  });

  test('--stacks keeps the dependency order and flink:check goes with flink only', () => {
    expect(selectStacks('workers,storage')).toEqual(['storage', 'workers']);
    expect(planSteps('deploy', { name: 'dev' }, ['storage', 'workers']).map((s) => s.label)).toEqual(['synth', 'storage', 'workers']);
    expect(planSteps('deploy', { name: 'dev' }, ['flink']).map((s) => s.label)).toEqual(['synth', 'flink:check', 'flink']);
    expect(() => selectStacks('storage,nope')).toThrow(/unknown stack "nope"/);
  });

  test('an unknown environment or option exits non-zero with the message and no stack trace', () => {
    const unknownEnv = deploy(['deploy', '--env', 'staging', '--dry-run']);
    expect(unknownEnv.status).toBe(1);
    expect(unknownEnv.stderr.trim()).toBe('Invalid configuration at --env: got "staging"; allowed: one of "dev", "prod".');
    const badOption = deploy(['deploy', '--env', 'dev', '--stack', 'workers']);
    expect(badOption.status).toBe(2);
    expect(badOption.stderr).toMatch(/Unknown option '--stack'[\s\S]*usage: npm run deploy/);
  });

  test('--help prints the usage', () => {
    const { status, stdout } = deploy(['deploy', '--help']);
    expect(status).toBe(0);
    expect(stdout).toMatch(/^usage: npm run deploy -- --env <env>/);
  });
});

describe('npm run diff', () => {
  test('diffs each selected stack in order after one synth, deploying nothing', () => {
    const { status, calls: ran } = deploy(['diff', '--env', 'dev', '--stacks', 'workers,storage']);
    expect(status).toBe(0);
    expect(ran).toEqual(['npx cdktf synth', 'npx cdktf diff adstream-dev-storage --skip-synth', 'npx cdktf diff adstream-dev-workers --skip-synth']);
  });
});

describe('the documented commands', () => {
  const docs = ['README.md', 'docs/deploy.md'].map((file) => [file, readFileSync(join(REPO_ROOT, file), 'utf8')] as const);
  const scripts = Object.keys((JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);

  test.each(docs)('every `npm run <script>` in %s exists', (_file, text) => {
    const used = [...text.matchAll(/npm run (?:--silent )?([a-z][\w:-]*)/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(0);
    expect(used.filter((name) => !scripts.includes(name))).toEqual([]);
  });

  test.each(docs)('%s deploys with npm run deploy, never with a single-stack cdktf deploy cdktf would refuse', (_file, text) => {
    expect(text).toContain('npm run deploy -- --env');
    const singleStack = [...text.matchAll(/npx cdktf deploy (adstream-[^\s`']+)/g)]
      .map((m) => m[1])
      .filter((stack) => !/\*/.test(stack) && !/streaming|storage/.test(stack));
    expect(singleStack).toEqual([]);
  });
});
