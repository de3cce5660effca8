/**
 * `npm run deploy -- --env <env> [--stacks …] [--dry-run] [--auto-approve]` and
 * `npm run diff -- --env <env> [--stacks …] [--dry-run]`: one environment, in dependency order.
 *
 * deploy: synth (bundles the handlers first) → streaming → flink:check (dry-runs every Flink
 * statement with the key and ids read from the streaming stack's outputs) → flink → storage →
 * workers. Each step prints its progress; the first failure stops the run and says what to do.
 * diff: synth, then `cdktf diff` of each selected stack in the same order.
 * --dry-run prints the steps and their commands and calls no cloud API (nothing is run).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadEnvironment } from '../config';
import { stackName, StackLifecycle } from '../stacks/environment-stack';
import { reportError, runMain, UsageError } from './cli';

/** Stacks in deployment order. */
export const STACK_ORDER: readonly StackLifecycle[] = ['streaming', 'flink', 'storage', 'workers'];

/** Deploy or diff. */
export type DeployMode = 'deploy' | 'diff';

/** One step of the plan: what it does and the exact command it runs. */
export interface DeployStep {
  /** Short label: `synth`, a stack lifecycle, or `flink:check`. */
  readonly label: string;
  /** What the step does, in one line. */
  readonly description: string;
  /** Program and arguments, run from the repository root. */
  readonly command: readonly string[];
  /** What to do when this step fails. */
  readonly onFailure: string;
}

/** A failed step: the run stopped here. */
export class DeployStepFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployStepFailed';
  }
}

const ROOT = join(__dirname, '..');

const USAGE = `usage: npm run deploy -- --env <env> [--stacks <list>] [--dry-run] [--auto-approve]
       npm run diff   -- --env <env> [--stacks <list>] [--dry-run]

Deploys (or diffs) one environment in dependency order:
  synth → streaming → flink:check → flink → storage → workers

  --env <env>       environment under config/environments (required)
  --stacks <list>   comma-separated subset of streaming,flink,storage,workers (default: all);
                    the order is always the dependency order
  --dry-run         print the steps and commands; run nothing, call no cloud API
  --auto-approve    deploy without Terraform's confirmation prompt (deploy only)
  --help            this text

Credentials: TF_VAR_confluent_cloud_api_key / TF_VAR_confluent_cloud_api_secret for the
streaming stack, AWS credentials from the environment (AWS_PROFILE, SSO, …) for the rest.
Nothing is copied between stacks: cdktf wires them, flink:check reads the streaming outputs.`;

/** Parses the selected stacks, keeping the dependency order whatever order they were given in. */
export function selectStacks(list: string | undefined): StackLifecycle[] {
  if (list === undefined) return [...STACK_ORDER];
  const names = list
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !STACK_ORDER.includes(name as StackLifecycle));
  if (names.length === 0 || unknown.length > 0) {
    throw new UsageError(
      `--stacks ${JSON.stringify(list)}: unknown stack ${unknown.map((n) => JSON.stringify(n)).join(', ') || '(empty list)'}; use a comma-separated subset of ${STACK_ORDER.join(',')}.`,
    );
  }
  return STACK_ORDER.filter((name) => names.includes(name));
}

/** The ordered steps of one run. Pure: builds commands, runs nothing. */
export function planSteps(mode: DeployMode, env: { readonly name: string }, stacks: readonly StackLifecycle[], autoApprove = false): DeployStep[] {
  const rerun = (from: StackLifecycle | 'flink:check') => {
    const rest = STACK_ORDER.filter((s) => stacks.includes(s) && STACK_ORDER.indexOf(s) >= STACK_ORDER.indexOf(from === 'flink:check' ? 'flink' : from));
    return `npm run ${mode} -- --env ${env.name} --stacks ${rest.join(',')}`;
  };
  const steps: DeployStep[] = [
    {
      label: 'synth',
      description: 'bundle the Lambda handlers and synthesize every stack into cdktf.out/ (offline)',
      command: ['npx', 'cdktf', 'synth'],
      onFailure: 'Fix the error above (configuration, Flink SQL, a handler that does not build) and run the same command again; nothing was deployed.',
    },
  ];
  for (const lifecycle of stacks) {
    const stack = stackName(env, lifecycle);
    if (mode === 'deploy' && lifecycle === 'flink') {
      steps.push({
        label: 'flink:check',
        description: `dry-run every Flink statement on Confluent Cloud, with the key and ids from ${stackName(env, 'streaming')}'s outputs`,
        command: ['npm', 'run', '--silent', 'flink:check', '--', '--env', env.name],
        onFailure:
          `A statement was rejected (table above) or the streaming outputs are missing. Fix the SQL as a new pipeline version (flink-sql/README.md), ` +
          `or deploy streaming first; nothing of ${stack} was deployed. Then: ${rerun('flink:check')}`,
      });
    }
    const command =
      mode === 'deploy'
        ? ['npx', 'cdktf', 'deploy', stack, '--skip-synth', '--ignore-missing-stack-dependencies', ...(autoApprove ? ['--auto-approve'] : [])]
        : ['npx', 'cdktf', 'diff', stack, '--skip-synth'];
    const hint: Record<StackLifecycle, string> = {
      streaming: 'Check TF_VAR_confluent_cloud_api_key / _secret (OrganizationAdmin) and your AWS credentials.',
      flink: 'A statement failed at apply: see its status in the Confluent console; a change of SQL is a new pipeline version.',
      storage: 'Check your AWS credentials and quotas (VPC, EIP, RDS, ElastiCache); RDS and ElastiCache take 15-30 min on the first apply.',
      workers:
        `If the schema migration failed, read the db-migrate log group (/aws/lambda/adstream-${env.name}-db-migrate): the release stays on the previous code until it succeeds. ` +
        'A missing stack output means storage or streaming is not deployed yet.',
    };
    steps.push({
      label: lifecycle,
      description: mode === 'deploy' ? `deploy ${stack}` : `show what deploying ${stack} would change`,
      command,
      onFailure: `${hint[lifecycle]} Terraform's message is above; every stack before this one is deployed. Then: ${rerun(lifecycle)}`,
    });
  }
  return steps;
}

/** A command as a shell would show it. */
export function showCommand(command: readonly string[]): string {
  return command.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function checkCredentials(mode: DeployMode, stacks: readonly StackLifecycle[]): void {
  if (!stacks.includes('streaming')) return;
  const missing = ['TF_VAR_confluent_cloud_api_key', 'TF_VAR_confluent_cloud_api_secret'].filter((name) => !process.env[name]);
  if (missing.length > 0) {
    throw new DeployStepFailed(
      `Set ${missing.join(' and ')} (a Confluent Cloud API key with OrganizationAdmin) before ${mode === 'deploy' ? 'deploying' : 'diffing'} the streaming stack; ` +
        'or leave it out with --stacks.',
    );
  }
}

/** Runs the steps in order, stopping at the first failure. */
function runSteps(steps: readonly DeployStep[], header: string): void {
  console.log(header);
  steps.forEach((step, index) => {
    const tag = `[${index + 1}/${steps.length}] ${step.label}`;
    console.log(`\n${tag}: ${step.description}\n  $ ${showCommand(step.command)}`);
    const started = Date.now();
    const result = spawnSync(step.command[0], step.command.slice(1), { cwd: ROOT, stdio: 'inherit', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result.error || result.status !== 0) {
      const why = result.error ? result.error.message : `exit ${result.status ?? result.signal}`;
      throw new DeployStepFailed(`\n${tag} failed after ${seconds} s (${why}); stopped here, the later steps did not run.\n${step.onFailure}`);
    }
    console.log(`${tag}: done in ${seconds} s`);
  });
}

async function main(argv: readonly string[]): Promise<number> {
  const [modeArg, ...rest] = argv;
  if (modeArg !== 'deploy' && modeArg !== 'diff') throw new UsageError(`first argument must be deploy or diff, got ${JSON.stringify(modeArg)}\n\n${USAGE}`);
  const mode: DeployMode = modeArg;
  let values: { env?: string; stacks?: string; 'dry-run'?: boolean; 'auto-approve'?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        env: { type: 'string' },
        stacks: { type: 'string' },
        'dry-run': { type: 'boolean' },
        'auto-approve': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.env) throw new UsageError(`--env is required\n\n${USAGE}`);
  if (mode === 'diff' && values['auto-approve']) throw new UsageError('--auto-approve applies to deploy only');
  const environment = loadEnvironment(values.env);
  const stacks = selectStacks(values.stacks);
  const steps = planSteps(mode, environment, stacks, values['auto-approve'] ?? false);
  const header = `${mode} ${environment.name}${environment.production ? ' (production)' : ''}: ${steps.map((s) => s.label).join(' → ')}`;
  if (values['dry-run']) {
    console.log(`${header}\n(dry run: nothing is run, no cloud API is called)`);
    steps.forEach((step, index) => console.log(`\n[${index + 1}/${steps.length}] ${step.label}: ${step.description}\n  $ ${showCommand(step.command)}`));
    return 0;
  }
  checkCredentials(mode, stacks);
  runSteps(steps, header);
  console.log(`\n${mode} ${environment.name}: all ${steps.length} steps done.`);
  return 0;
}

if (require.main === module) {
  runMain(() =>
    main(process.argv.slice(2)).catch((error: unknown) => {
      if (error instanceof UsageError) {
        console.error(error.message);
        return 2;
      }
      return reportError(error);
    }),
  );
}
