import { loadWorkerDeps } from '../shared/runtime';
import { emfEmitter, withBatchAge } from '../shared/health-metrics';
import { COMPENSATION_HANDLER, createCompensationHandler } from './refund-duplicates';

/** Lambda entry point: environment parsed and clients created once, at module load. */
export const handler = withBatchAge(createCompensationHandler(loadWorkerDeps(COMPENSATION_HANDLER)), emfEmitter(COMPENSATION_HANDLER));
