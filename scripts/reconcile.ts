/**
 * Runs the ledger reconciliation (lambdas/reconcile/reconcile-ledger.ts) against DATABASE_URL
 * and prints every check; exits 1 when anything drifted. See `npm run reconcile -- --help`.
 */
import { parseArgs } from 'node:util';
import { OUTBOX_GRACE_MINUTES, reconcileLedger, type ReconcileReport } from '../lambdas/reconcile/reconcile-ledger';
import { runMain, UsageError } from './cli';
import { operatorPool, usageFailure } from './ops-db';

/** `npm run reconcile -- --help`. */
export const RECONCILE_USAGE = `usage: npm run reconcile [-- --outbox-grace-minutes <n>] [-- --json]

Checks, in one snapshot: per advertiser balance = Σ ledger (opening balance, top-ups and
adjustments included); per campaign and budget day spend = Σ charges − Σ refunds; no click both
charged and voided; no click charged twice (on two budget days); no refund without its charge;
each duplicate refunded at most once; no original of a refunded duplicate refunded; every
outbox row published within the grace period. Writes nothing. Exit 0 when the
ledger reconciles, 1 when anything drifted (the offending ids are printed).
  --outbox-grace-minutes <n>  minutes an outbox row may stay unpublished (default ${OUTBOX_GRACE_MINUTES})
  --json                      print the report as JSON
  --help                      this text
Database: DATABASE_URL.`;

/** Formats a report for a terminal. */
export function formatReport(report: ReconcileReport): string {
  const lines = [report.drift === 0 ? 'ledger reconciles: no drift' : `ledger does NOT reconcile: ${report.drift} offending rows`];
  for (const [name, check] of Object.entries(report.checks)) {
    lines.push(`  ${name.padEnd(18)} ${(check.count === 0 ? 'ok' : `${check.count} offending`).padEnd(14)} ${(check.durationMs / 1000).toFixed(1)} s`);
    for (const row of check.rows)
      lines.push(
        `    ${Object.entries(row)
          .map(([key, value]) => `${key}=${value}`)
          .join(' ')}`,
      );
    if (check.count > check.rows.length) lines.push(`    … and ${check.count - check.rows.length} more`);
  }
  return lines.join('\n');
}

/** Runs the command; returns the printed text and the exit code. */
export async function reconcileCommand(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; output: string; report?: ReconcileReport }> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: { 'outbox-grace-minutes': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (error) {
    usageFailure(error, RECONCILE_USAGE);
  }
  if (values.help) return { code: 0, output: RECONCILE_USAGE };
  const grace = values['outbox-grace-minutes'] ?? String(OUTBOX_GRACE_MINUTES);
  if (!/^[0-9]{1,5}$/.test(grace)) throw new UsageError(`reconcile: --outbox-grace-minutes must be a whole number, got ${JSON.stringify(grace)}`);
  const pool = operatorPool(env);
  try {
    const report = await reconcileLedger(pool, { outboxGraceMinutes: Number(grace) });
    return { code: report.drift === 0 ? 0 : 1, output: values.json ? JSON.stringify(report) : formatReport(report), report };
  } finally {
    await pool.end();
  }
}

if (require.main === module) {
  runMain(async () => {
    const { code, output } = await reconcileCommand(process.argv.slice(2));
    console.log(output);
    return code;
  });
}
