/**
 * What the operator commands (ledger, reconcile, replay, redrive) share: the database they act
 * on, from DATABASE_URL (in AWS: from a host inside the VPC, see docs/operations.md "Money looks
 * wrong"), and printing amounts as the exact strings Postgres returned.
 */
import { Pool } from 'pg';
import { UsageError } from './cli';

/** A pool on `DATABASE_URL` (one or two connections: these are one-shot commands). */
export function operatorPool(env: NodeJS.ProcessEnv = process.env): Pool {
  const url = env.DATABASE_URL;
  if (!url) throw new UsageError('DATABASE_URL is not set; it names the ledger database (postgres://user:password@host:5432/adstream?sslmode=verify-full)');
  const pool = new Pool({ connectionString: url, max: 2, application_name: 'adstream-operator' });
  pool.on('error', () => undefined);
  return pool;
}

/** `parseArgs` failures (unknown option, missing value) as usage errors with the usage text. */
export function usageFailure(error: unknown, usage: string): never {
  throw new UsageError(`${(error as Error).message}\n\n${usage}`);
}
