import { loadWorkerDeps } from '../shared/runtime';
import { emfEmitter, withBatchAge } from '../shared/health-metrics';
import { withLambdaContext } from '../shared/observability';
import { COMPENSATION_HANDLER, createCompensationHandler } from './refund-duplicates';

const deps = loadWorkerDeps(COMPENSATION_HANDLER);

/** Lambda entry point: environment parsed and clients created once, at module load. */
export const handler = withLambdaContext(deps.observability, withBatchAge(createCompensationHandler(deps), emfEmitter(COMPENSATION_HANDLER)));
