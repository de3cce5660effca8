/**
 * GIVEN every environment's workers stack, synthesized
 * WHEN its Kafka event source mappings are compared with the trigger settings the local
 * event-source emulator reads (stacks/worker-triggers.ts)
 * THEN they agree: same topic, consumer group, batch size, starting position, batching window
 * (Lambda's default, none set) and the function's reserved concurrency.
 */
import { Testing } from 'cdktf';
import { loadEnvironments } from '../../config';
import { LAMBDA_KAFKA_DEFAULT_BATCHING_WINDOW_MS, workerKafkaTriggers } from '../../stacks/worker-triggers';
import { createFakeBundleRoot, testEnvironment } from '../aws/support/fixtures';
import { addAwsStacks } from '../aws/support/synth';

interface Mapping {
  readonly function_name: string;
  readonly topics: string[];
  readonly batch_size: number;
  readonly starting_position: string;
  readonly maximum_batching_window_in_seconds?: number;
  readonly self_managed_kafka_event_source_config?: { consumer_group_id: string };
}

describe.each(loadEnvironments().map((e) => e.name as 'dev' | 'prod'))('the %s triggers', (name) => {
  test('the emulator consumes exactly as the synthesized event source mappings do', () => {
    const config = testEnvironment(name);
    const { workers } = addAwsStacks(Testing.app(), config, { bundleRoot: createFakeBundleRoot() });
    const parsed = JSON.parse(Testing.synth(workers)) as {
      resource: {
        aws_lambda_event_source_mapping: Record<string, Mapping>;
        aws_lambda_alias: Record<string, { function_name: string }>;
        aws_lambda_function: Record<string, { function_name: string; reserved_concurrent_executions: number }>;
      };
    };
    const functions = Object.entries(parsed.resource.aws_lambda_function);
    const synthesized = Object.values(parsed.resource.aws_lambda_event_source_mapping)
      .map((m) => {
        // Triggers invoke the function's `live` alias; the alias names the function.
        const target =
          Object.entries(parsed.resource.aws_lambda_alias).find(([aliasId]) => m.function_name.includes(`aws_lambda_alias.${aliasId}.`))?.[1].function_name ??
          m.function_name;
        const [id, fn] = functions.find(([fnId]) => target.includes(`aws_lambda_function.${fnId}.`))!;
        expect(id).toBeDefined();
        return {
          topic: m.topics[0],
          consumerGroupId: m.self_managed_kafka_event_source_config?.consumer_group_id,
          batchSize: m.batch_size,
          startingPosition: m.starting_position,
          batchingWindowMs:
            m.maximum_batching_window_in_seconds === undefined ? LAMBDA_KAFKA_DEFAULT_BATCHING_WINDOW_MS : m.maximum_batching_window_in_seconds * 1000,
          maxConcurrency: fn.reserved_concurrent_executions,
        };
      })
      .sort((a, b) => a.topic.localeCompare(b.topic));
    const emulated = workerKafkaTriggers(config)
      .map(({ functionName: _, ...settings }) => settings)
      .sort((a, b) => a.topic.localeCompare(b.topic));
    expect(synthesized).toEqual(emulated);
    expect(synthesized).toHaveLength(3);
  });
});
