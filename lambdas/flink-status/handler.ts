import { ConfigError } from '../shared/errors';
import { createObservability, withLambdaContext } from '../shared/observability';
import { readSecretString } from '../shared/secrets';
import { createFlinkStatusHandler, FLINK_STATUS_HANDLER, parseStatementNames, parseStatusSecret } from './check-statements';

// Module scope: parsed once per container; a bad environment fails the cold start, loudly.
const secretArn = process.env.FLINK_STATUS_SECRET_ARN;
if (!secretArn) throw new ConfigError('FLINK_STATUS_SECRET_ARN', 'is not set; it names the secret holding the Flink REST endpoint, ids and API key');
const statements = parseStatementNames(process.env.FLINK_STATEMENTS);

const observability = createObservability(FLINK_STATUS_HANDLER);

/** Lambda entry point (EventBridge Scheduler): checks that every Flink statement is RUNNING. */
export const handler = withLambdaContext(
  observability,
  createFlinkStatusHandler({
    statements,
    settings: async () => parseStatusSecret(secretArn, await readSecretString(secretArn)),
    observability,
  }),
);
