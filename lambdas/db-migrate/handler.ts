import { loadWorkerDeps } from '../shared/runtime';
import { createDbMigrateHandler, DB_MIGRATE_HANDLER, resolveMigrationsDir } from './run-migrations';

const deps = loadWorkerDeps(DB_MIGRATE_HANDLER);

/** Lambda entry point, invoked by the AWS stack on deploy when the migrations change. */
export const handler = createDbMigrateHandler({
  pool: deps.pool,
  observability: deps.observability,
  migrationsDir: resolveMigrationsDir(deps.env.migrationsDir),
});
