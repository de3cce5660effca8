import { loadWorkerDeps } from '../shared/runtime';
import { emfEmitter, withBatchAge } from '../shared/health-metrics';
import { CLICK_BALANCE_HANDLER, createClickBalanceHandler } from './charge-clicks';

/** Lambda entry point: environment parsed and clients created once, at module load. */
export const handler = withBatchAge(createClickBalanceHandler(loadWorkerDeps(CLICK_BALANCE_HANDLER)), emfEmitter(CLICK_BALANCE_HANDLER));
