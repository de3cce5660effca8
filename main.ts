import { App } from 'cdktf';
import { loadEnvironments } from './config';
import { StreamingStack } from './stacks/streaming-stack';

/**
 * Composes the app: every environment under config/environments gets its stacks, split by
 * lifecycle. Deploy order per environment: streaming → flink, storage → workers.
 */
const app = new App();
for (const config of loadEnvironments()) {
  new StreamingStack(app, { config });
}
app.synth();
