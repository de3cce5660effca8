import { App } from 'cdktf';
import { loadEnvironments } from './config';
import { StreamingStack } from './stacks/streaming-stack';
import { FlinkStack } from './stacks/flink-stack';
import { StorageStack } from './stacks/storage-stack';
import { WorkersStack } from './stacks/workers-stack';
import { reportError } from './scripts/cli';

/**
 * Composes the app: every environment under config/environments gets its stacks, split by
 * lifecycle. Stacks are wired by cdktf cross-stack references, so the deploy order follows
 * from them: streaming → flink, streaming + storage → workers.
 */
function synth(): void {
  const app = new App();
  for (const config of loadEnvironments()) {
    const streaming = new StreamingStack(app, { config });
    new FlinkStack(app, { config, connection: streaming.flinkConnection, credentials: streaming.flinkCredentials });
    const storage = new StorageStack(app, { config });
    new WorkersStack(app, { config, storage, streaming });
  }
  app.synth();
}

try {
  synth();
} catch (error) {
  process.exit(reportError(error));
}
