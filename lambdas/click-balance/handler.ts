import { loadWorkerDeps } from '../shared/runtime';
import { CLICK_BALANCE_HANDLER, createClickBalanceHandler } from './charge-clicks';

/** Lambda entry point: environment parsed and clients created once, at module load. */
export const handler = createClickBalanceHandler(loadWorkerDeps(CLICK_BALANCE_HANDLER));
