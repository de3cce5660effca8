import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Provider the AWS stacks pin, and the mirror layout Terraform expects for it. */
export const AWS_PROVIDER = { hostname: 'registry.terraform.io', namespace: 'hashicorp', type: 'aws', version: '5.100.0' } as const;
const PLATFORM_DIR = `${AWS_PROVIDER.hostname}/${AWS_PROVIDER.namespace}/${AWS_PROVIDER.type}/${AWS_PROVIDER.version}/linux_amd64`;

/** Where a local run looks when `ADSTREAM_TF_PROVIDER_MIRROR` is not set (CI always sets it). */
const WELL_KNOWN_MIRRORS = [
  '/opt/tf-plugins',
  '/usr/share/terraform/plugins',
  '/usr/local/share/terraform/plugins',
  `${process.env.HOME ?? '/root'}/.terraform.d/plugins`,
];

/** Why the offline plan cannot run; the test fails with this message (never skips). */
export class OfflinePlanUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OfflinePlanUnavailable';
  }
}

function hasProvider(mirror: string): boolean {
  const dir = join(mirror, PLATFORM_DIR);
  return existsSync(dir) && readdirSync(dir).some((file) => file.startsWith(`terraform-provider-aws_v${AWS_PROVIDER.version}`));
}

/**
 * The filesystem mirror holding hashicorp/aws 5.100.0: `ADSTREAM_TF_PROVIDER_MIRROR` (set by
 * `.ci/run`), else a few well-known places for local runs. In CI a missing mirror throws;
 * locally it returns undefined and the caller falls back to the public registry (and fails,
 * loudly, if that is unreachable too).
 */
export function findProviderMirror(env: NodeJS.ProcessEnv = process.env, candidates: readonly string[] = WELL_KNOWN_MIRRORS): string | undefined {
  const configured = env.ADSTREAM_TF_PROVIDER_MIRROR?.trim();
  if (configured) {
    if (hasProvider(configured)) return configured;
    throw new OfflinePlanUnavailable(
      `ADSTREAM_TF_PROVIDER_MIRROR=${configured} does not contain ${PLATFORM_DIR}/terraform-provider-aws_v${AWS_PROVIDER.version}*; ` +
        'point it at the directory that holds registry.terraform.io/.',
    );
  }
  const found = candidates.find(hasProvider);
  if (found) return found;
  if (env.CI !== 'true') return undefined;
  throw new OfflinePlanUnavailable(
    `No hashicorp/aws ${AWS_PROVIDER.version} provider mirror found: ADSTREAM_TF_PROVIDER_MIRROR is unset and none of ${candidates.join(', ')} ` +
      `contains ${PLATFORM_DIR}. Find it with \`find / -name 'terraform-provider-aws_v${AWS_PROVIDER.version}*'\` and export ADSTREAM_TF_PROVIDER_MIRROR=<dir above registry.terraform.io>. ` +
      'The offline plan of the AWS stacks cannot run without it.',
  );
}

/**
 * Environment for every terraform command: the AWS provider from the mirror only (or, with no
 * mirror, the public registry), no telemetry, dummy credentials.
 */
export function offlineTerraformEnv(workDir: string, mirror: string | undefined): NodeJS.ProcessEnv {
  mkdirSync(workDir, { recursive: true });
  const cliConfig = join(workDir, 'terraform.rc');
  writeFileSync(
    cliConfig,
    mirror === undefined
      ? 'provider_installation {\n  direct {}\n}\n'
      : [
          'provider_installation {',
          '  filesystem_mirror {',
          `    path    = ${JSON.stringify(mirror)}`,
          `    include = ["${AWS_PROVIDER.hostname}/${AWS_PROVIDER.namespace}/${AWS_PROVIDER.type}"]`,
          '  }',
          '  direct {',
          `    exclude = ["${AWS_PROVIDER.hostname}/${AWS_PROVIDER.namespace}/${AWS_PROVIDER.type}"]`,
          '  }',
          '}',
          '',
        ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TF_CLI_CONFIG_FILE: cliConfig,
    TF_IN_AUTOMATION: '1',
    CHECKPOINT_DISABLE: '1',
    // The unpacked mirror is symlinked into .terraform, so no plugin cache is needed (a cache
    // would copy the 700 MB binary once per run).
    AWS_ACCESS_KEY_ID: 'offline-plan-dummy',
    AWS_SECRET_ACCESS_KEY: 'offline-plan-dummy-secret',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  return env;
}

/** Result of one stack's offline plan. */
export interface OfflinePlan {
  /** `terraform show -json` of the saved plan. */
  readonly json: PlanJson;
  /** Seconds spent in init, plan and show. */
  readonly seconds: { init: number; plan: number; show: number };
}

/** The parts of Terraform's plan JSON the tests read. */
export interface PlanJson {
  readonly errored: boolean;
  readonly complete?: boolean;
  readonly planned_values: { readonly root_module: { readonly resources?: PlannedResource[] } };
  readonly resource_changes: ReadonlyArray<{
    readonly address: string;
    readonly type: string;
    readonly change: { readonly actions: string[]; readonly after_unknown?: Record<string, unknown> };
  }>;
}

/** One planned resource. */
export interface PlannedResource {
  readonly address: string;
  readonly type: string;
  readonly values: Record<string, unknown>;
}

async function terraform(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run('terraform', [...args, '-no-color'], { cwd, env, maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  } catch (cause) {
    const failure = cause as { stdout?: string; stderr?: string; code?: string | number };
    if (failure.code === 'ENOENT') throw new OfflinePlanUnavailable('terraform is not on PATH; install Terraform ≥ 1.10.', { cause });
    throw new Error(`terraform ${args[0]} failed in ${cwd}:\n${failure.stderr ?? ''}\n${(failure.stdout ?? '').slice(-4000)}`, { cause });
  }
}

/** `terraform init` + `plan -out` + `show -json` in a synthesized stack directory. */
export async function planOffline(stackDir: string, env: NodeJS.ProcessEnv, variables: Record<string, string> = {}): Promise<OfflinePlan> {
  const clock = () => performance.now() / 1000;
  let started = clock();
  try {
    await terraform(['init', '-input=false'], stackDir, env);
  } catch (cause) {
    throw new OfflinePlanUnavailable(
      `terraform init failed, most likely unable to install hashicorp/aws ${AWS_PROVIDER.version} from the mirror or the registry; ` +
        `set ADSTREAM_TF_PROVIDER_MIRROR to a filesystem mirror holding it. ${(cause as Error).message}`,
      { cause },
    );
  }
  const init = clock() - started;
  started = clock();
  const vars = Object.entries(variables).flatMap(([name, value]) => ['-var', `${name}=${value}`]);
  await terraform(['plan', '-input=false', '-lock=false', '-refresh=false', '-out=plan.bin', ...vars], stackDir, env);
  const plan = clock() - started;
  started = clock();
  const json = JSON.parse(await terraform(['show', '-json', 'plan.bin'], stackDir, env)) as PlanJson;
  const show = clock() - started;
  return { json, seconds: { init, plan, show } };
}
