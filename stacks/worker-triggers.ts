// The Kafka triggers of the worker functions as data: which function reads which topic with
// which consumer group, batch size, batching window, starting position and concurrency. The
// workers stack builds its event source mappings from the same config, and the local
// event-source emulator (local/event-source.ts) reads this to consume exactly as Lambda would;
// a test compares the two. No cdktf import here, so local tooling can load it cheaply.
import { adEventContract, compensationEventContract, RTB_RANKINGS_TOPIC } from '../contracts';
import type { EnvironmentConfig, WorkerFunctionName } from '../config/schema';

/** Consumer groups of the worker Lambdas' Kafka triggers (exact names, bound one by one). */
export const WORKER_CONSUMER_GROUPS = {
  clickBalance: 'click-balance-processor',
  compensation: 'compensation-processor',
  rankingCache: 'ranking-cache-writer',
} as const;

/**
 * Prefix of the consumer groups `npm run replay` reads with (one fresh group per run, never
 * committed): the workers consumer key may use them, so a replay never joins a trigger's group.
 */
export const REPLAY_CONSUMER_GROUP_PREFIX = 'adstream-replay-';

/**
 * Lambda's batching window for Kafka event sources when the mapping sets none (the workers
 * stack sets none): 500 ms.
 */
export const LAMBDA_KAFKA_DEFAULT_BATCHING_WINDOW_MS = 500;

/** One worker function's Kafka trigger, as configured. */
export interface WorkerKafkaTrigger {
  /** The function (config name). */
  readonly functionName: 'clickBalance' | 'compensation' | 'rankingCache';
  /** The one topic it consumes. */
  readonly topic: string;
  /** Its consumer group. */
  readonly consumerGroupId: string;
  /** Most records per invocation. */
  readonly batchSize: number;
  /** Longest time Lambda gathers records before invoking, in ms. */
  readonly batchingWindowMs: number;
  /** Where a group without committed offsets starts. */
  readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
  /** Reserved concurrency of the function: at most this many partitions' batches at once. */
  readonly maxConcurrency: number;
}

/** The three Kafka triggers of an environment's workers stack. */
export function workerKafkaTriggers(config: EnvironmentConfig): readonly WorkerKafkaTrigger[] {
  const { workers } = config;
  const trigger = (functionName: WorkerKafkaTrigger['functionName'] & WorkerFunctionName, topic: string): WorkerKafkaTrigger => ({
    functionName,
    topic,
    consumerGroupId: WORKER_CONSUMER_GROUPS[functionName],
    batchSize: workers.batchSize,
    batchingWindowMs: LAMBDA_KAFKA_DEFAULT_BATCHING_WINDOW_MS,
    startingPosition: workers.startingPosition,
    maxConcurrency: workers.functions[functionName].reservedConcurrency,
  });
  return [
    trigger('clickBalance', adEventContract.topic),
    trigger('compensation', compensationEventContract.topic),
    trigger('rankingCache', RTB_RANKINGS_TOPIC),
  ];
}
