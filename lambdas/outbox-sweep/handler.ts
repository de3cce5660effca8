import { loadWorkerDeps } from '../shared/runtime';
import { emfEmitter, withOutboxBacklog } from '../shared/health-metrics';
import { withLambdaContext } from '../shared/observability';
import { createOutboxSweepHandler, OUTBOX_SWEEP_HANDLER } from './sweep-outbox';

const deps = loadWorkerDeps(OUTBOX_SWEEP_HANDLER);

/** Lambda entry point (EventBridge Scheduler, every minute); reports the outbox backlog after each sweep. */
export const handler = withLambdaContext(
  deps.observability,
  withOutboxBacklog(createOutboxSweepHandler(deps), deps.pool, emfEmitter(OUTBOX_SWEEP_HANDLER), deps.observability),
);
