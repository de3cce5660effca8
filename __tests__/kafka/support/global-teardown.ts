// jest globalTeardown: stops the broker global-setup.ts started (if it started one).
import type { LocalKafkaBroker } from '../../../local/kafka-broker';
import { BROKER_GLOBAL } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const broker = (globalThis as Record<string, unknown>)[BROKER_GLOBAL] as LocalKafkaBroker | undefined;
  if (!broker) return;
  delete (globalThis as Record<string, unknown>)[BROKER_GLOBAL];
  await broker.stop();
}
