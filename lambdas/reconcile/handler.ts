import { createPoolProvider } from '../shared/db';
import { parseDatabaseEnv } from '../shared/env';
import { createObservability, withLambdaContext } from '../shared/observability';
import { createReconcileHandler, OUTBOX_GRACE_MINUTES, RECONCILE_HANDLER, RECONCILE_POOL_OVERRIDES } from './reconcile-ledger';
import { ConfigError } from '../shared/errors';

// Module scope: parsed once per container; a bad environment fails the cold start, loudly.
const grace = process.env.RECONCILE_OUTBOX_GRACE_MINUTES ?? String(OUTBOX_GRACE_MINUTES);
if (!/^[1-9][0-9]{0,4}$/.test(grace))
  throw new ConfigError('RECONCILE_OUTBOX_GRACE_MINUTES', `must be a whole number of minutes, got ${JSON.stringify(grace)}`);

const observability = createObservability(RECONCILE_HANDLER);

/** Lambda entry point (EventBridge Scheduler): checks that the ledger reconciles and reports drift. */
export const handler = withLambdaContext(
  observability,
  createReconcileHandler({
    pool: createPoolProvider(parseDatabaseEnv(process.env), { ...RECONCILE_POOL_OVERRIDES }),
    observability,
    options: { outboxGraceMinutes: Number(grace) },
  }),
);
