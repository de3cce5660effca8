/**
 * Runs db-migrate's handler (lambdas/db-migrate/run-migrations.ts) once in its own process:
 * node-pg-migrate is ESM-only and loads by dynamic import, which Jest's module system does not
 * run. Run with tsx by db-migrate.test.ts; argv[2] is a JSON `RunOptions`. Prints one JSON line,
 * `{"summary": …}` or `{"error": "<message>"}`, and exits 0 either way.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createDbMigrateHandler, createMigrationPoolProvider } from '../../../lambdas/db-migrate/run-migrations';
import { createPoolProvider } from '../../../lambdas/shared/db';

/** What the test asks for. */
export interface RunOptions {
  readonly url: string;
  readonly migrationsDir: string;
  readonly lockTimeoutMs?: number;
  readonly lockAttempts?: number;
  readonly lockRetryDelayMs?: number;
  /** Connect with the workers' pool and this statement timeout instead of the migration's pool. */
  readonly workerStatementTimeoutMs?: number;
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2]) as RunOptions;
  const config = { kind: 'url', url: options.url } as const;
  const pool = options.workerStatementTimeoutMs
    ? createPoolProvider(config, { statement_timeout: options.workerStatementTimeoutMs })
    : createMigrationPoolProvider(config);
  const handler = createDbMigrateHandler({
    pool,
    migrationsDir: options.migrationsDir,
    observability: {
      logger: new Logger({ serviceName: 'test', logLevel: 'SILENT' }),
      metrics: new Metrics({ namespace: 'adstream-test', serviceName: 'test' }),
    },
    lockTimeoutMs: options.lockTimeoutMs,
    lockAttempts: options.lockAttempts,
    lockRetryDelayMs: options.lockRetryDelayMs,
  });
  try {
    console.log(JSON.stringify({ summary: await handler({}) }));
  } catch (error) {
    console.log(JSON.stringify({ error: error instanceof Error ? error.message : String(error) }));
  } finally {
    await (await pool()).end();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  },
);
