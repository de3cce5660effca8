import { loadWorkerDeps } from '../shared/runtime';
import { createOutboxSweepHandler, OUTBOX_SWEEP_HANDLER } from './sweep-outbox';

/** Lambda entry point (EventBridge Scheduler, every minute). */
export const handler = createOutboxSweepHandler(loadWorkerDeps(OUTBOX_SWEEP_HANDLER));
