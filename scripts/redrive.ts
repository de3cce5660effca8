/**
 * Re-drives dead letters whose cause is fixed: each row's stored record goes through its
 * handler again, in Lambda's event shape, at most once. See `npm run redrive -- --help`.
 *
 * Each row is re-driven in one transaction that claims the row (a second re-drive of it waits on
 * the row lock, then finds it re-driven), runs the handler, and marks the row, so the mark and
 * the money commit together. The claim takes the row out of the dead-letter key for the length
 * of the transaction: if the record still fails, the handler records it again with its current
 * reason, and that reason goes back into the original row, which stays in place.
 */
import { parseArgs } from 'node:util';
import { loadEnvironment } from '../config';
import { parseBudgetTimeZone } from '../lambdas/shared/env';
import { NO_TIMESTAMP_DAY } from '../lambdas/shared/dead-letter';
import { describeCause, RecoveryRequestError } from '../lambdas/shared/errors';
import type { LambdaKafkaEvent } from '../lambdas/shared/kafka-event';
import { runMain, UsageError } from './cli';
import { usageFailure } from './ops-db';
import {
  addSummary,
  emptyTotals,
  formatMoney,
  formatTotals,
  type MoneyMoved,
  parseHandlerName,
  RECOVERY_HANDLERS,
  RecoveryHandler,
  type RecoveryHandlerName,
  recoveryHandler,
  RecoverySession,
  type RecoveryTotals,
  withRecoverySession,
} from './recovery';

/** `npm run redrive -- --help`. */
export const REDRIVE_USAGE = `usage: npm run redrive -- [--cause <reason>]... [--id <id>]... [--handler <name>] [options]

Feeds dead letters (dead_letters rows not re-driven yet) through their handler again, oldest
first, once the cause is fixed (a click dead-lettered UNKNOWN_CAMPAIGN after the campaign was
loaded). A row that now applies is marked re-driven, in the transaction that moves its money,
and is never re-driven again; two re-drives running at once apply it once. A row that still
fails stays in place with its current reason (first_reason keeps the original one). A click or
compensation of a day whose ledger, voids or duplicate log may be expired (the oldest day they
all keep in daily partitions, or earlier) fails with HISTORY_EXPIRED and moves no money.
  --env <env>          environment whose budget time zone applies (default: BUDGET_TIME_ZONE, else Asia/Seoul)
  --cause <reason>     only rows with this reason (repeatable), e.g. UNKNOWN_CAMPAIGN
  --id <id>            only this row (repeatable)
  --handler <name>     only rows of click-balance, compensation or ranking-cache
  --limit <n>          at most this many rows (default 1000)
  --dry-run            run everything in a transaction that is rolled back: print what each row
                       would do and the money that would move, write nothing
  --json               print the result as JSON
  --help               this text
At least one of --cause, --id or --handler is required.
Database: DATABASE_URL. Redis (optional; required for ranking-cache): REDIS_URL, REDIS_KEY_PREFIX.`;

/** What happened to one dead letter. */
export type RedriveOutcome =
  /** The record charged a click now. */
  | 'CHARGED'
  /** It refunded a duplicate now. */
  | 'REFUNDED'
  /** It went through without moving money: voided before its charge, settled already, a ranking written, or applied meanwhile by a replay. */
  | 'APPLIED'
  /** It failed again; the row stays, with this reason. */
  | 'STILL_FAILING'
  /** Another re-drive took it first. */
  | 'ALREADY_REDRIVEN'
  /** Its stored value was truncated (larger than the table keeps): it cannot be re-driven. */
  | 'NOT_REDRIVABLE';

/** One re-driven row. */
export interface RedriveRow {
  /** `dead_letters.id`. */
  readonly id: string;
  /** Handler. */
  readonly handler: string;
  /** `topic-partition@offset`. */
  readonly coordinates: string;
  /** Reason it was dead-lettered with, before this re-drive. */
  readonly reason: string;
  /** What happened. */
  readonly outcome: RedriveOutcome;
  /** The reason and detail it failed with now (STILL_FAILING). */
  readonly failure?: { readonly reason: string; readonly detail: string };
}

/** The result of a re-drive. */
export interface RedriveResult {
  /** Whether nothing was committed. */
  readonly dryRun: boolean;
  /** Each row, in id order. */
  readonly rows: readonly RedriveRow[];
  /** Record counts over all handlers. */
  readonly totals: RecoveryTotals;
  /** Money moved, or that would move. */
  readonly money: MoneyMoved;
}

/** Which rows to re-drive. */
export interface RedriveFilter {
  /** Reasons. */
  readonly causes?: readonly string[];
  /** Row ids. */
  readonly ids?: readonly string[];
  /** Handler. */
  readonly handler?: RecoveryHandlerName;
  /** Most rows. */
  readonly limit: number;
}

interface Candidate {
  id: string;
  handler: RecoveryHandlerName;
  topic: string;
  kafka_partition: number;
  kafka_offset: string;
  reason: string;
  record_day: string;
  kafka_timestamp: string | null;
  raw_key: Buffer | null;
  raw_value: Buffer | null;
  truncated: boolean;
}

// kafka_timestamp: the record's own, else (a row recorded before the table kept it) noon of its
// day in the budget zone, so the re-driven record maps to the row's day; a row of the
// no-timestamp day is re-driven without one, as it was delivered.
const CANDIDATES = `
SELECT id::text, handler, topic, kafka_partition, kafka_offset::text, reason, record_day::text, raw_key, raw_value,
       coalesce(kafka_timestamp, CASE WHEN record_day <> $5::date
                                      THEN (extract(epoch FROM (record_day + time '12:00') AT TIME ZONE $6) * 1000)::bigint END)::text AS kafka_timestamp,
       coalesce(raw_value_bytes > octet_length(raw_value), false) AS truncated
  FROM dead_letters
 WHERE redriven_at IS NULL
   AND handler = ANY($1::text[])
   AND ($2::text[] IS NULL OR reason = ANY($2::text[]))
   AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[]))
 ORDER BY id
 LIMIT $4`;

/**
 * The oldest day whose ledger, voids and duplicate log are all kept in daily partitions (the
 * latest of the three tables' oldest daily partitions), or null when none is partitioned. A dead
 * letter can outlive the retention (its day is kept while it is pending); the history of its day
 * may not, so a record of that day or earlier is not applied (HISTORY_EXPIRED). Days before the
 * first partitions (in the default partitions, never expired) are refused too: safe, if cautious.
 */
const HISTORY_SINCE = `
SELECT max(oldest)::text AS since FROM (
  SELECT min(to_date(substring(c.relname FROM '[0-9]{8}$'), 'YYYYMMDD')) AS oldest
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
   WHERE p.relname IN ('ad_balance_histories', 'click_voids', 'duplicate_clicks') AND p.relnamespace = 'public'::regnamespace
     AND c.relname ~ ('^' || p.relname || '_p[0-9]{8}$')
   GROUP BY p.relname
) t`;

/** Takes the row out of the dead-letter key for this transaction; waits for a re-drive holding it. */
const CLAIM = `
UPDATE dead_letters SET handler = handler || ' (re-driving)'
 WHERE id = $1 AND record_day = $3::date AND handler = $2 AND redriven_at IS NULL
RETURNING id`;

/**
 * The row the handler recorded again for the same record (it still fails): in the row's day, or
 * the day before or after when the re-drive runs under another budget zone than the recording.
 */
const RECORDED_AGAIN = `
DELETE FROM dead_letters
 WHERE topic = $1 AND kafka_partition = $2 AND kafka_offset = $3 AND handler = $4 AND id <> $5
   AND record_day BETWEEN $6::date - 1 AND $6::date + 1
RETURNING reason, detail`;

const STILL_FAILING = `
UPDATE dead_letters
   SET handler = $2, first_reason = coalesce(first_reason, reason), reason = $3, detail = $4,
       redrive_attempts = redrive_attempts + 1, last_redrive_at = now()
 WHERE id = $1 AND record_day = $5::date`;

const REDRIVEN = `
UPDATE dead_letters
   SET handler = $2, redriven_at = now(), redrive_outcome = $3, last_redrive_at = now(), first_reason = coalesce(first_reason, reason)
 WHERE id = $1 AND record_day = $4::date`;

/** The one-record Lambda event of a dead letter, as the trigger delivered it. */
function eventOf(row: Candidate): LambdaKafkaEvent {
  return {
    eventSource: 'SelfManagedKafka',
    records: {
      [`${row.topic}-${row.kafka_partition}`]: [
        {
          topic: row.topic,
          partition: row.kafka_partition,
          offset: Number(row.kafka_offset),
          ...(row.kafka_timestamp === null ? {} : { timestamp: Number(row.kafka_timestamp) }),
          timestampType: 'CREATE_TIME',
          ...(row.raw_key ? { key: row.raw_key.toString('base64') } : {}),
          value: row.raw_value === null ? null : row.raw_value.toString('base64'),
          headers: [],
        },
      ],
    },
  };
}

/** Re-drives the dead letters `filter` selects; see {@link REDRIVE_USAGE}. */
export async function redrive(options: { filter: RedriveFilter; dryRun: boolean; budgetTimeZone: string; env: NodeJS.ProcessEnv }): Promise<RedriveResult> {
  const { filter, dryRun, env } = options;
  const totals = emptyTotals();
  const rows: RedriveRow[] = [];
  return withRecoverySession(env, dryRun, async (session, cache) => {
    const candidates = await session.query<Candidate>(CANDIDATES, [
      filter.handler ? [filter.handler] : [...RECOVERY_HANDLERS],
      filter.causes && filter.causes.length > 0 ? filter.causes : null,
      filter.ids && filter.ids.length > 0 ? filter.ids : null,
      filter.limit,
      NO_TIMESTAMP_DAY,
      options.budgetTimeZone,
    ]);
    const history = await session.query<{ since: string | null }>(HISTORY_SINCE);
    const historySince = history.rows[0]?.since ?? undefined;
    const handlers = new Map<RecoveryHandlerName, RecoveryHandler>();
    for (const row of candidates.rows) {
      const base = { id: row.id, handler: row.handler, coordinates: `${row.topic}-${row.kafka_partition}@${row.kafka_offset}`, reason: row.reason };
      if (row.truncated) {
        rows.push({ ...base, outcome: 'NOT_REDRIVABLE' });
        continue;
      }
      let handler = handlers.get(row.handler);
      if (!handler) {
        handler = recoveryHandler(row.handler, session, cache, { budgetTimeZone: options.budgetTimeZone, env, historySince });
        handlers.set(row.handler, handler);
      }
      rows.push({ ...base, ...(await redriveOne(session, handler, row, totals, dryRun, rows.length)) });
    }
    return { dryRun, rows, totals };
  });
}

/** Claims, re-drives and marks one row, in one transaction (in a dry run: inside the dry run's). */
async function redriveOne(
  session: RecoverySession,
  handler: RecoveryHandler,
  row: Candidate,
  totals: RecoveryTotals,
  dryRun: boolean,
  done: number,
): Promise<Pick<RedriveRow, 'outcome' | 'failure'>> {
  await session.begin();
  const claimed = await session.query(CLAIM, [row.id, row.handler, row.record_day]);
  if (claimed.rowCount === 0) {
    await session.commit();
    return { outcome: 'ALREADY_REDRIVEN' };
  }
  const before = await session.ledgerRowsOfTransaction();
  try {
    addSummary(totals, await handler(eventOf(row)));
  } catch (error) {
    throw new RecoveryRequestError(
      `${row.handler} failed on dead letter ${row.id} (${row.topic}-${row.kafka_partition}@${row.kafka_offset}): ${describeCause(error)}. ` +
        (dryRun ? 'Dry run: nothing was written.' : `The ${done} rows before it are done; fix the cause and run the same command again.`),
    );
  }
  const again = await session.query<{ reason: string; detail: string }>(RECORDED_AGAIN, [
    row.topic,
    row.kafka_partition,
    row.kafka_offset,
    row.handler,
    row.id,
    row.record_day,
  ]);
  let result: Pick<RedriveRow, 'outcome' | 'failure'>;
  if (again.rows.length > 0) {
    const failure = again.rows[0];
    await session.query(STILL_FAILING, [row.id, row.handler, failure.reason, failure.detail, row.record_day]);
    result = { outcome: 'STILL_FAILING', failure };
  } else {
    const after = await session.ledgerRowsOfTransaction();
    const outcome: RedriveOutcome = after.deducts > before.deducts ? 'CHARGED' : after.refunds > before.refunds ? 'REFUNDED' : 'APPLIED';
    await session.query(REDRIVEN, [row.id, row.handler, outcome, row.record_day]);
    result = { outcome };
  }
  await session.commit();
  return result;
}

/** Formats a result for a terminal. */
export function formatRedrive(result: RedriveResult): string {
  const lines = [result.dryRun ? 'dry run (rolled back, nothing moved):' : `re-drove ${result.rows.length} dead letters:`];
  if (result.rows.length === 0) lines.push('  no dead letter matches (or every match was re-driven already)');
  for (const row of result.rows) {
    const what = row.failure ? `STILL_FAILING ${row.failure.reason}: ${row.failure.detail} (left in place)` : row.outcome;
    lines.push(`  ${row.id} ${row.handler} ${row.coordinates} ${row.reason} -> ${what}`);
  }
  lines.push(`  ${formatTotals(result.totals)}`, ...formatMoney(result.money, result.dryRun));
  return lines.join('\n');
}

/** Runs the command; returns the printed text and the exit code. */
export async function redriveCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string; result?: RedriveResult }> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        env: { type: 'string' },
        cause: { type: 'string', multiple: true },
        id: { type: 'string', multiple: true },
        handler: { type: 'string' },
        limit: { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    usageFailure(error, REDRIVE_USAGE);
  }
  if (values.help) return { code: 0, output: REDRIVE_USAGE };
  if (!values.cause && !values.id && !values.handler)
    throw new UsageError(`redrive: give --cause, --id or --handler (re-driving every dead letter at once is not what you want)\n\n${REDRIVE_USAGE}`);
  for (const cause of values.cause ?? []) {
    if (!/^[A-Z][A-Z0-9_]{0,63}$/.test(cause))
      throw new UsageError(`redrive: --cause is a dead-letter reason such as UNKNOWN_CAMPAIGN, got ${JSON.stringify(cause)}`);
  }
  for (const id of values.id ?? []) {
    if (!/^[0-9]{1,18}$/.test(id)) throw new UsageError(`redrive: --id is a dead_letters id, got ${JSON.stringify(id)}`);
  }
  const limit = values.limit ?? '1000';
  if (!/^[0-9]{1,6}$/.test(limit) || Number(limit) < 1) throw new UsageError(`redrive: --limit must be 1 to 999999, got ${JSON.stringify(limit)}`);
  const result = await redrive({
    filter: {
      causes: values.cause,
      ids: values.id,
      handler: values.handler === undefined ? undefined : parseHandlerName(values.handler),
      limit: Number(limit),
    },
    dryRun: values['dry-run'] === true,
    budgetTimeZone: values.env === undefined ? parseBudgetTimeZone(env) : loadEnvironment(values.env).workers.budgetTimeZone,
    env,
  });
  return { code: 0, output: values.json ? JSON.stringify(result) : formatRedrive(result), result };
}

if (require.main === module) {
  runMain(async () => {
    const { code, output } = await redriveCommand(process.argv.slice(2));
    console.log(output);
    return code;
  });
}
