import { existsSync } from 'node:fs';
import path from 'node:path';
import { guardCheckedOutClient, PoolProvider } from '../shared/db';
import { DatabaseUnavailableError, describeCause } from '../shared/errors';
import { Observability } from '../shared/observability';
import type { Credentials } from '../shared/secrets';
import { applyRolePasswords } from './role-passwords';

/** Name of the handler in logs. */
export const DB_MIGRATE_HANDLER = 'db-migrate';

/** Table node-pg-migrate records applied migrations in (the CLI's default, so both agree). */
export const MIGRATIONS_TABLE = 'pgmigrations';

/** Result of a migration run. */
export interface MigrationRunSummary {
  /** Directory the migrations were read from. */
  readonly migrationsDir: string;
  /** Names of the migrations applied by this run (empty when up to date). */
  readonly applied: readonly string[];
  /** Function roles whose password this run set. */
  readonly rolesUpdated?: readonly string[];
  /** Wall-clock time. */
  readonly elapsedMs: number;
}

/** Dependencies of the migration handler. */
export interface DbMigrateDeps {
  /** Pool to the target database. */
  readonly pool: PoolProvider;
  /** Where the SQL migrations are. */
  readonly migrationsDir: string;
  /** Logger. */
  readonly observability: Observability;
  /**
   * The function roles' credentials, applied after the migrations (role-passwords.ts).
   * @default - none: the roles keep no password (local runs)
   */
  readonly roleCredentials?: () => Promise<readonly Credentials[]>;
}

/**
 * Where the migrations are: `MIGRATIONS_DIR` if set; else `migrations/` beside the bundle (the
 * bundler copies db/migrations there); else the repository's db/migrations (local runs).
 */
export function resolveMigrationsDir(configured: string | undefined, moduleDir: string = __dirname): string {
  if (configured) return path.resolve(configured);
  const beside = path.join(moduleDir, 'migrations');
  if (existsSync(beside)) return beside;
  return path.resolve(moduleDir, '../../db/migrations');
}

/**
 * Builds the db-migrate handler: applies pending migrations with node-pg-migrate's runner, in a
 * single transaction under its advisory lock (so two concurrent deploys cannot both migrate).
 * Throws on failure so the deploy that invoked it fails.
 */
export function createDbMigrateHandler(deps: DbMigrateDeps): (event?: unknown) => Promise<MigrationRunSummary> {
  return async () => {
    const started = performance.now();
    const { logger } = deps.observability;
    if (!existsSync(deps.migrationsDir)) {
      throw new Error(`migrations directory ${deps.migrationsDir} does not exist; set MIGRATIONS_DIR or bundle db/migrations beside the handler`);
    }
    let client;
    try {
      client = await (await deps.pool()).connect();
    } catch (cause) {
      throw new DatabaseUnavailableError('connecting to migrate', { cause });
    }
    const release = guardCheckedOutClient(client);
    let failure: Error | undefined;
    try {
      // Loaded on use: node-pg-migrate is ESM-only, and only this handler needs it.
      const { runner } = await import('node-pg-migrate');
      const applied = await runner({
        dbClient: client,
        dir: deps.migrationsDir,
        useGlob: false,
        migrationsTable: MIGRATIONS_TABLE,
        direction: 'up',
        count: Infinity,
        singleTransaction: true,
        checkOrder: true,
        log: (message: string) => logger.debug(message),
      });
      const rolesUpdated = deps.roleCredentials ? await applyRolePasswords(client, await deps.roleCredentials()) : [];
      const summary = {
        migrationsDir: deps.migrationsDir,
        applied: applied.map((m) => m.name),
        ...(deps.roleCredentials ? { rolesUpdated } : {}),
        elapsedMs: Math.round(performance.now() - started),
      };
      logger.info('migrations applied', { summary });
      return summary;
    } catch (error) {
      failure = error as Error;
      logger.error('migration failed', { error: describeCause(error) });
      throw error;
    } finally {
      // A failed run may leave the session in any state: never hand it back to the pool.
      release(failure);
    }
  };
}
