import { loadWorkerDeps } from '../shared/runtime';
import { emfEmitter, withBatchAge } from '../shared/health-metrics';
import { withLambdaContext } from '../shared/observability';
import { CLICK_BALANCE_HANDLER, createClickBalanceHandler } from './charge-clicks';

const deps = loadWorkerDeps(CLICK_BALANCE_HANDLER);

/** Lambda entry point: environment parsed and clients created once, at module load. */
export const handler = withLambdaContext(deps.observability, withBatchAge(createClickBalanceHandler(deps), emfEmitter(CLICK_BALANCE_HANDLER)));
