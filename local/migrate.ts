// Runs the db-migrate worker (lambdas/db-migrate, the function the workers stack invokes on
// deploy) against DATABASE_URL: `npm run local` migrates its database with it on start. A child
// process of its own, because node-pg-migrate is ESM-only and a jest run cannot import it.
import path from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Pool } from 'pg';
import { createDbMigrateHandler } from '../lambdas/db-migrate/run-migrations';

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set');
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const pool = new Pool({ connectionString: url, max: 1 });
  try {
    const migrate = createDbMigrateHandler({
      pool: async () => pool,
      migrationsDir: path.resolve(__dirname, '../db/migrations'),
      observability: {
        logger: new Logger({ serviceName: 'db-migrate', logLevel: 'SILENT' }),
        metrics: new Metrics({ namespace: 'adstream-local', serviceName: 'db-migrate' }),
      },
    });
    const summary = await migrate({});
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await pool.end();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
