import { loadWorkerDeps } from '../shared/runtime';
import { ledgerHistoryFromEnv } from './ledger-history';
import { BUDGET_RESET_HANDLER, createBudgetResetHandler } from './resume-campaigns';

/** Lambda entry point (EventBridge Scheduler, local midnight of BUDGET_TIME_ZONE). */
export const handler = createBudgetResetHandler(loadWorkerDeps(BUDGET_RESET_HANDLER), ledgerHistoryFromEnv(process.env));
