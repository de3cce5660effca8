/**
 * Records top-ups and manual adjustments as ledger entries, idempotent by an external reference
 * (lambdas/shared/ledger-entries.ts). See `npm run ledger -- --help`.
 */
import { parseArgs } from 'node:util';
import { parseBudgetTimeZone } from '../lambdas/shared/env';
import { recordLedgerEntry, type LedgerEntryResult } from '../lambdas/shared/ledger-entries';
import { runMain, UsageError } from './cli';
import { operatorPool, usageFailure } from './ops-db';

/** `npm run ledger -- --help`. */
export const LEDGER_USAGE = `usage: npm run ledger -- <topup|adjust> --advertiser <id> --amount <decimal> --ref <external reference> [options]

Records money an advertiser paid (topup) or a correction (adjust, signed, with --reason) in the
ledger and moves the balance by exactly that amount, in one transaction. The reference (payment
id, ticket) makes it idempotent: running the same command again moves nothing.
  --advertiser <id>   advertiser id
  --amount <decimal>  e.g. 100.00 (top-up: positive; adjust: signed, a negative one as --amount=-12.50)
  --ref <text>        external reference, unique across all top-ups and adjustments
  --reason <text>     why (required for adjust)
  --by <name>         who records it (default: $USER)
  --dry-run           show the balance before and after, write nothing
  --json              print the result as JSON
  --help              this text
Database: DATABASE_URL. Budget day of the entry: BUDGET_TIME_ZONE (default Asia/Seoul).`;

/** Runs the command; returns the printed lines and the exit code. */
export async function ledgerCommand(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; output: string; result?: LedgerEntryResult }> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        advertiser: { type: 'string' },
        amount: { type: 'string' },
        ref: { type: 'string' },
        reason: { type: 'string' },
        by: { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    usageFailure(error, LEDGER_USAGE);
  }
  const { values, positionals } = parsed;
  if (values.help) return { code: 0, output: LEDGER_USAGE };
  const [command, ...rest] = positionals;
  if (command !== 'topup' && command !== 'adjust')
    throw new UsageError(`ledger: expected topup or adjust, got ${JSON.stringify(command ?? '')}\n\n${LEDGER_USAGE}`);
  if (rest.length > 0) throw new UsageError(`ledger: unexpected argument ${JSON.stringify(rest[0])}\n\n${LEDGER_USAGE}`);
  for (const option of ['advertiser', 'amount', 'ref'] as const) {
    if (values[option] === undefined) throw new UsageError(`ledger: --${option} is required\n\n${LEDGER_USAGE}`);
  }
  const pool = operatorPool(env);
  try {
    const result = await recordLedgerEntry(pool, {
      type: command === 'topup' ? 'TOPUP' : 'ADJUSTMENT',
      advertiserId: values.advertiser as string,
      amount: values.amount as string,
      externalRef: values.ref as string,
      reason: values.reason,
      recordedBy: values.by ?? env.USER,
      dryRun: values['dry-run'] === true,
      budgetTimeZone: parseBudgetTimeZone(env),
    });
    const verb = { recorded: 'recorded', 'already-recorded': 'already recorded (nothing moved)', 'dry-run': 'dry run (nothing written): would record' }[
      result.outcome
    ];
    const line = `${verb} ${result.type} ${result.amount} for advertiser ${result.advertiserId}, ref ${result.externalRef}: balance ${result.balanceBefore} -> ${result.balanceAfter}`;
    return { code: 0, output: values.json ? JSON.stringify(result) : line, result };
  } finally {
    await pool.end();
  }
}

if (require.main === module) {
  runMain(async () => {
    const { code, output } = await ledgerCommand(process.argv.slice(2));
    console.log(output);
    return code;
  });
}
