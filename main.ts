import { App } from 'cdktf';
import { loadEnvironments } from './config';
import { StreamingStack } from './stacks/streaming-stack';
import { FlinkStack } from './stacks/flink-stack';
import { StorageStack } from './stacks/storage-stack';
import { WorkersStack } from './stacks/workers-stack';

/**
 * Composes the app: every environment under config/environments gets its stacks, split by
 * lifecycle. Deploy order per environment: streaming → flink, storage → workers.
 */
const app = new App();
for (const config of loadEnvironments()) {
  const streaming = new StreamingStack(app, { config });
  new FlinkStack(app, { config, connection: streaming.flinkConnection });
  new StorageStack(app, { config });
  new WorkersStack(app, { config });
}
app.synth();
