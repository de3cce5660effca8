import { App } from 'cdktf';
import type { EnvironmentConfig } from '../../../config/schema';
import { StorageStack } from '../../../stacks/storage-stack';
import { WorkersStack } from '../../../stacks/workers-stack';

/** The AWS stacks of one environment. */
export interface AwsStacks {
  /** Network, database, cache. */
  readonly storage: StorageStack;
  /** Functions, triggers, schedules, alerts. */
  readonly workers: WorkersStack;
}

/**
 * Builds the AWS stacks of `config` in `app` the way `main.ts` does, plus the test-only
 * switches: fake bundles and, for `terraform plan`, the offline provider.
 */
export function addAwsStacks(app: App, config: EnvironmentConfig, options: { bundleRoot: string; offlinePlan?: boolean }): AwsStacks {
  return {
    storage: new StorageStack(app, { config, offlinePlan: options.offlinePlan }),
    workers: new WorkersStack(app, { config, offlinePlan: options.offlinePlan, bundleRoot: options.bundleRoot }),
  };
}
