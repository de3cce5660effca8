import { Construct } from 'constructs';
import { LocalBackend, S3Backend, TerraformStack } from 'cdktf';
import type { EnvironmentConfig } from '../config/schema';
import { applyPolicy, PolicyAspect } from '../constructs/policy/aspect';
import { ALL_POLICY_RULES } from '../constructs/policy/rules';

/** The lifecycle a stack belongs to; stacks split where deployment cadence differs. */
export type StackLifecycle = 'streaming' | 'flink' | 'storage' | 'workers';

/** What the base stack itself needs of an environment. */
export type StackEnvironment = Pick<EnvironmentConfig, 'name' | 'production' | 'stateBackend'>;

/** Props every environment stack takes. */
export interface EnvironmentStackProps<C extends StackEnvironment = EnvironmentConfig> {
  /** The validated environment. */
  readonly config: C;
}

/** The stack name of one lifecycle in one environment, e.g. `adstream-prod-streaming`. */
export function stackName(config: Pick<EnvironmentConfig, 'name'>, lifecycle: StackLifecycle): string {
  return `adstream-${config.name}-${lifecycle}`;
}

/**
 * Base of every stack: one environment, one lifecycle. Sets the state backend from config
 * (S3 with encryption and a lock file per environment, or a local directory for tests) and
 * attaches the policy aspect, so no stack can skip the rules.
 */
export abstract class EnvironmentStack<C extends StackEnvironment = EnvironmentConfig> extends TerraformStack {
  /** The validated environment this stack deploys. */
  public readonly config: C;
  /** The policy aspect, for tests to inspect findings. */
  public readonly policy: PolicyAspect;

  protected constructor(scope: Construct, lifecycle: StackLifecycle, props: EnvironmentStackProps<C>) {
    const name = stackName(props.config, lifecycle);
    super(scope, name);
    this.config = props.config;
    const backend = props.config.stateBackend;
    if (backend.kind === 's3') {
      const s3 = new S3Backend(this, {
        bucket: backend.bucket,
        key: `${backend.keyPrefix}/${name}.tfstate`,
        region: backend.region,
        encrypt: backend.encrypt,
        ...(backend.kmsKeyId === undefined ? {} : { kmsKeyId: backend.kmsKeyId }),
      });
      // cdktf 0.21 predates S3 native locking (Terraform ≥ 1.10); the override adds it.
      s3.addOverride('use_lockfile', backend.useLockfile);
    } else {
      new LocalBackend(this, { path: `${backend.directory}/${name}.tfstate` });
    }
    this.policy = applyPolicy(this, ALL_POLICY_RULES, { production: props.config.production });
  }
}
