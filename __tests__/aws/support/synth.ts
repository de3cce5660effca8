import { App } from 'cdktf';
import type { EnvironmentConfig } from '../../../config/schema';
import { FlinkStack } from '../../../stacks/flink-stack';
import { StorageStack } from '../../../stacks/storage-stack';
import { StreamingStack } from '../../../stacks/streaming-stack';
import { WorkersStack } from '../../../stacks/workers-stack';

/** The four stacks of one environment. */
export interface EnvironmentStacks {
  /** Confluent core. */
  readonly streaming: StreamingStack;
  /** Flink statements. */
  readonly flink: FlinkStack;
  /** Network, database, cache. */
  readonly storage: StorageStack;
  /** Functions, triggers, schedules, alerts. */
  readonly workers: WorkersStack;
}

/**
 * Builds the stacks of `config` in `app` exactly as `main.ts` wires them (cross-stack
 * references), plus the test-only switches: fake bundles and, for `terraform plan`, the
 * offline AWS provider.
 */
export function addEnvironmentStacks(app: App, config: EnvironmentConfig, options: { bundleRoot: string; offlinePlan?: boolean }): EnvironmentStacks {
  const streaming = new StreamingStack(app, { config });
  const flink = new FlinkStack(app, { config, connection: streaming.flinkConnection, credentials: streaming.flinkCredentials });
  const storage = new StorageStack(app, { config, offlinePlan: options.offlinePlan });
  const workers = new WorkersStack(app, { config, storage, streaming, offlinePlan: options.offlinePlan, bundleRoot: options.bundleRoot });
  return { streaming, flink, storage, workers };
}

/** The same as {@link addEnvironmentStacks}; the name older tests use for the AWS side. */
export const addAwsStacks = addEnvironmentStacks;
