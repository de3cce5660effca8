// jest globalSetup: one local Kafka broker for the whole run, with the dev environment's contract
// topics, its address handed to the test files through the environment (they are started
// after this runs). Skipped when the run selects no test that needs it; reused when the
// environment already names a broker (ADSTREAM_KAFKA_BOOTSTRAP). Stopped by global-teardown.ts,
// and by itself if this process dies.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '@jest/types';
import { loadEnvironment } from '../../../config';
import { createContractTopics, exportKafkaConnection, kafkaConnectionFromEnv, LocalKafkaBroker, startLocalKafkaBroker } from '../../../local/kafka-broker';
import { javaClasspath } from '../../../scripts/java';

/** Where the started broker is kept for global-teardown.ts (same process). */
export const BROKER_GLOBAL = '__adstreamKafkaBroker';

/** The environment whose topic settings the run's broker gets. */
export const BROKER_ENVIRONMENT = 'dev';

const KAFKA_TESTS = join(__dirname, '..');

function runNeedsBroker(globalConfig: Config.GlobalConfig): boolean {
  const pattern = globalConfig.testPathPattern;
  if (!pattern) return true;
  let regex: RegExp;
  try {
    regex = new RegExp(pattern, 'i');
  } catch {
    return true;
  }
  const files = readdirSync(KAFKA_TESTS)
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => join(KAFKA_TESTS, f));
  return files.some((file) => regex.test(file));
}

export default async function globalSetup(globalConfig: Config.GlobalConfig): Promise<void> {
  // A whole run builds both Java tools here, outside any test's timeout: on a fresh machine the
  // first build downloads Flink and Kafka from Maven Central, which takes minutes.
  if (!globalConfig.testPathPattern) {
    javaClasspath('kafka-broker');
    javaClasspath('flink-runner');
  }
  const existing = kafkaConnectionFromEnv();
  if (existing) {
    await createContractTopics(existing, loadEnvironment(BROKER_ENVIRONMENT));
    return;
  }
  if (!runNeedsBroker(globalConfig)) return;
  const started = Date.now();
  const broker: LocalKafkaBroker = await startLocalKafkaBroker();
  (globalThis as Record<string, unknown>)[BROKER_GLOBAL] = broker;
  try {
    await createContractTopics(broker, loadEnvironment(BROKER_ENVIRONMENT));
  } catch (error) {
    await broker.stop();
    throw error;
  }
  exportKafkaConnection(broker);
  process.stderr.write(`kafka: local broker on ${broker.bootstrap} (pid ${broker.pid}) ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
