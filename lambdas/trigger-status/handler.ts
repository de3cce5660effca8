import { GetEventSourceMappingCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { createObservability, withLambdaContext } from '../shared/observability';
import { createTriggerStatusHandler, parseTriggerMappings, TRIGGER_STATUS_HANDLER } from './check-triggers';

// Module scope: parsed once per container; a bad environment fails the cold start, loudly.
const mappings = parseTriggerMappings(process.env.TRIGGER_MAPPINGS);
const lambda = new LambdaClient({});

const observability = createObservability(TRIGGER_STATUS_HANDLER);

/** Lambda entry point (EventBridge Scheduler): checks that every Kafka trigger is consuming. */
export const handler = withLambdaContext(
  observability,
  createTriggerStatusHandler({
    mappings,
    read: (uuid) => lambda.send(new GetEventSourceMappingCommand({ UUID: uuid })),
    observability,
  }),
);
