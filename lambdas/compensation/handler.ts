import { loadWorkerDeps } from '../shared/runtime';
import { COMPENSATION_HANDLER, createCompensationHandler } from './refund-duplicates';

/** Lambda entry point: environment parsed and clients created once, at module load. */
export const handler = createCompensationHandler(loadWorkerDeps(COMPENSATION_HANDLER));
