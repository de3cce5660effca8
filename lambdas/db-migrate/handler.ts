import { withLambdaContext } from '../shared/observability';
import { loadWorkerDeps } from '../shared/runtime';
import { createDbMigrateHandler, createMigrationPoolProvider, DB_MIGRATE_HANDLER, resolveMigrationsDir } from './run-migrations';
import { parseRoleSecretArns, readRoleCredentials } from './role-passwords';

const deps = loadWorkerDeps(DB_MIGRATE_HANDLER);
const roleSecretArns = parseRoleSecretArns(process.env);

/** Lambda entry point, invoked by the AWS stack on deploy when the migrations change. */
export const handler = withLambdaContext(
  deps.observability,
  createDbMigrateHandler({
    // Not the workers' pool: no 30 s statement or 35 s query timeout (a lock timeout instead).
    pool: createMigrationPoolProvider(deps.env.database),
    observability: deps.observability,
    migrationsDir: resolveMigrationsDir(deps.env.migrationsDir),
    roleCredentials: roleSecretArns.length > 0 ? () => readRoleCredentials(roleSecretArns) : undefined,
  }),
);
