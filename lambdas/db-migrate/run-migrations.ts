import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PoolConfig } from 'pg';
import { createPoolProvider, guardCheckedOutClient, PoolProvider } from '../shared/db';
import { DatabaseConfig } from '../shared/env';
import { DatabaseUnavailableError, describeCause } from '../shared/errors';
import { Observability } from '../shared/observability';
import type { Credentials } from '../shared/secrets';
import { applyRolePasswords } from './role-passwords';

/** Name of the handler in logs. */
export const DB_MIGRATE_HANDLER = 'db-migrate';

/** Table node-pg-migrate records applied migrations in (the CLI's default, so both agree). */
export const MIGRATIONS_TABLE = 'pgmigrations';

/**
 * The migration's pool: the workers' settings without their time limits. A worker statement is
 * cut at 30 s (server) and 35 s (client) so a hung batch is retried; a data migration on a
 * production-size table runs longer, and the function's own timeout bounds the run.
 */
export const MIGRATION_POOL_OVERRIDES: Readonly<Pick<PoolConfig, 'query_timeout' | 'statement_timeout'>> = { query_timeout: 0, statement_timeout: 0 };

/** The pool provider db-migrate connects with. */
export function createMigrationPoolProvider(config: DatabaseConfig): PoolProvider {
  return createPoolProvider(config, { ...MIGRATION_POOL_OVERRIDES });
}

/**
 * How long one statement of a migration may wait for a lock. While a migration's ALTER or
 * ATTACH waits behind a long reader (a report, an open psql), every charge and refund touching
 * the same table queues behind the waiting ALTER: without a limit, for as long as the reader runs
 * (up to the workers' 30 s statement timeout, after which their batches fail and are retried).
 */
export const MIGRATION_LOCK_TIMEOUT_MS = 3_000;
/** Attempts before the deploy fails; each one that times out rolls everything back. */
export const MIGRATION_LOCK_ATTEMPTS = 6;
/** Wait before the second attempt; doubled for each later one, at most 30 s. */
export const MIGRATION_LOCK_RETRY_DELAY_MS = 2_000;

/** Postgres SQLSTATE `lock_not_available`: a lock wait reached `lock_timeout`. */
const LOCK_NOT_AVAILABLE = '55P03';

/** Result of a migration run. */
export interface MigrationRunSummary {
  /** Directory the migrations were read from. */
  readonly migrationsDir: string;
  /** Names of the migrations applied by this run (empty when up to date). */
  readonly applied: readonly string[];
  /** Function roles whose password this run set. */
  readonly rolesUpdated?: readonly string[];
  /** Attempts rolled back because a lock wait reached the lock timeout (the last attempt applied). */
  readonly lockTimeouts: number;
  /** Wall-clock time. */
  readonly elapsedMs: number;
}

/** Dependencies of the migration handler. */
export interface DbMigrateDeps {
  /** Pool to the target database (`createMigrationPoolProvider`: no statement or query timeout). */
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
  /** @default MIGRATION_LOCK_TIMEOUT_MS */
  readonly lockTimeoutMs?: number;
  /** @default MIGRATION_LOCK_ATTEMPTS */
  readonly lockAttempts?: number;
  /** @default MIGRATION_LOCK_RETRY_DELAY_MS */
  readonly lockRetryDelayMs?: number;
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

/** A lock wait reached `lock_timeout` (node-pg-migrate rethrows the driver's error). */
function isLockTimeout(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === LOCK_NOT_AVAILABLE;
}

/**
 * The sessions whose transaction has been open longer than `olderThanMs`: who a migration may
 * have waited for. Process id, role, application, state and age only: a statement's text can hold
 * literals (db-migrate's own ALTER ROLE … PASSWORD), so it is never read.
 */
const LONG_TRANSACTIONS = `
SELECT pid, usename AS role, application_name, state,
       round(extract(epoch FROM clock_timestamp() - xact_start) * 1000)::bigint AS open_ms
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND xact_start < clock_timestamp() - $1::integer * interval '1 millisecond'
 ORDER BY xact_start
 LIMIT 5`;

/**
 * Builds the db-migrate handler: applies pending migrations with node-pg-migrate's runner, in a
 * single transaction under its advisory lock (so two concurrent deploys cannot both migrate).
 * The session has no statement timeout and a lock timeout (`lockTimeoutMs`): an attempt whose
 * lock wait times out is rolled back whole and retried, up to `lockAttempts` times.
 * Throws on failure so the deploy that invoked it fails.
 */
export function createDbMigrateHandler(deps: DbMigrateDeps): (event?: unknown) => Promise<MigrationRunSummary> {
  const lockTimeoutMs = deps.lockTimeoutMs ?? MIGRATION_LOCK_TIMEOUT_MS;
  const lockAttempts = deps.lockAttempts ?? MIGRATION_LOCK_ATTEMPTS;
  const retryDelayMs = deps.lockRetryDelayMs ?? MIGRATION_LOCK_RETRY_DELAY_MS;
  return async () => {
    const started = performance.now();
    const { logger } = deps.observability;
    if (!existsSync(deps.migrationsDir)) {
      throw new Error(`migrations directory ${deps.migrationsDir} does not exist; set MIGRATIONS_DIR or bundle db/migrations beside the handler`);
    }
    for (let attempt = 1; ; attempt += 1) {
      try {
        const { applied, rolesUpdated } = await migrateOnce(deps, lockTimeoutMs);
        const summary: MigrationRunSummary = {
          migrationsDir: deps.migrationsDir,
          applied,
          ...(rolesUpdated ? { rolesUpdated } : {}),
          lockTimeouts: attempt - 1,
          elapsedMs: Math.round(performance.now() - started),
        };
        logger.info('migrations applied', { summary });
        return summary;
      } catch (error) {
        if (!isLockTimeout(error)) {
          logger.error('migration failed', { error: describeCause(error) });
          throw error;
        }
        const waitedFor = await longTransactions(deps.pool, lockTimeoutMs);
        if (attempt >= lockAttempts) {
          const message =
            `migrations not applied: ${attempt} attempts each waited ${lockTimeoutMs} ms for a lock another transaction holds, and each was rolled back; ` +
            'nothing was applied. Find the transaction in the log line before this one (or pg_stat_activity), let it finish or end it, then deploy again.';
          logger.error('migration failed: lock timeout on every attempt', { attempts: attempt, lockTimeoutMs, longTransactions: waitedFor });
          throw new Error(message, { cause: error });
        }
        const delayMs = Math.min(retryDelayMs * 2 ** (attempt - 1), 30_000);
        logger.warn('migration timed out waiting for a lock; rolled back, retrying', {
          attempt,
          of: lockAttempts,
          lockTimeoutMs,
          retryInMs: delayMs,
          longTransactions: waitedFor,
        });
        await sleep(delayMs);
      }
    }
  };
}

/** One attempt on its own connection, destroyed afterwards if it failed (its session may be in any state). */
async function migrateOnce(deps: DbMigrateDeps, lockTimeoutMs: number): Promise<{ applied: string[]; rolesUpdated?: string[] }> {
  let client;
  try {
    client = await (await deps.pool()).connect();
  } catch (cause) {
    throw new DatabaseUnavailableError('connecting to migrate', { cause });
  }
  const release = guardCheckedOutClient(client);
  let failure: Error | undefined;
  try {
    // Session settings, before node-pg-migrate's BEGIN: a migration may run longer than any worker
    // statement, but never waits long for a lock (the money path queues behind that wait).
    await client.query(`SET statement_timeout = 0; SET lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
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
      log: (message: string) => deps.observability.logger.debug(message),
    });
    const rolesUpdated = deps.roleCredentials ? await applyRolePasswords(client, await deps.roleCredentials()) : undefined;
    return { applied: applied.map((m) => m.name), rolesUpdated };
  } catch (error) {
    failure = error as Error;
    throw error;
  } finally {
    // A failed run may leave the session in any state: never hand it back to the pool.
    release(failure);
  }
}

/** LONG_TRANSACTIONS on a fresh connection; empty if it cannot be read (the failure is the migration's). */
async function longTransactions(pool: PoolProvider, olderThanMs: number): Promise<Array<Record<string, unknown>>> {
  try {
    const { rows } = await (await pool()).query(LONG_TRANSACTIONS, [olderThanMs]);
    return rows;
  } catch {
    return [];
  }
}
