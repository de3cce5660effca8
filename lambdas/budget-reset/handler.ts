import { loadWorkerDeps } from '../shared/runtime';
import { withLambdaContext } from '../shared/observability';
import { ledgerHistoryFromEnv } from './ledger-history';
import { BUDGET_RESET_HANDLER, createBudgetResetHandler } from './resume-campaigns';

const deps = loadWorkerDeps(BUDGET_RESET_HANDLER);

/** Lambda entry point (EventBridge Scheduler, every hour of BUDGET_TIME_ZONE: the first run of a day opens it). */
export const handler = withLambdaContext(deps.observability, createBudgetResetHandler(deps, ledgerHistoryFromEnv(process.env)));
