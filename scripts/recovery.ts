/**
 * What the recovery commands (replay, redrive) share: the real handlers, run on one dedicated
 * database connection whose transactions the command watches. Before each of a handler's
 * COMMITs the session reads back the ledger rows that transaction wrote (the money that moved);
 * in a dry run every handler transaction of the command runs inside one outer transaction that
 * is rolled back at the end, so later batches see earlier ones exactly as a real run would, and
 * nothing is committed. Money is summed by Postgres, never in JavaScript.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { Pool, PoolClient, QueryResult } from 'pg';
import { adEventContract, compensationEventContract, RTB_RANKINGS_TOPIC } from '../contracts';
import { CLICK_BALANCE_HANDLER, createClickBalanceHandler } from '../lambdas/click-balance/charge-clicks';
import { COMPENSATION_HANDLER, createCompensationHandler } from '../lambdas/compensation/refund-duplicates';
import {
  createRankingCacheHandler,
  parseRankingFreshnessSeconds,
  parseRankingRowsVersioned,
  RANKING_CACHE_HANDLER,
} from '../lambdas/ranking-cache/ranking-cache';
import type { PoolProvider } from '../lambdas/shared/db';
import { RecoveryRequestError } from '../lambdas/shared/errors';
import type { InvocationSummary } from '../lambdas/shared/observability';
import { createRedisClientProvider, RedisCache } from '../lambdas/shared/redis';
import type { WorkerDeps } from '../lambdas/shared/runtime';
import { operatorPool } from './ops-db';

/** The handlers a record can be replayed or re-driven through (`dead_letters.handler`). */
export const RECOVERY_HANDLERS = [CLICK_BALANCE_HANDLER, COMPENSATION_HANDLER, RANKING_CACHE_HANDLER] as const;
/** One of {@link RECOVERY_HANDLERS}. */
export type RecoveryHandlerName = (typeof RECOVERY_HANDLERS)[number];

/** The handler whose trigger consumes each contract topic. */
export const HANDLER_OF_TOPIC: Readonly<Record<string, RecoveryHandlerName>> = {
  [adEventContract.topic]: CLICK_BALANCE_HANDLER,
  [compensationEventContract.topic]: COMPENSATION_HANDLER,
  [RTB_RANKINGS_TOPIC]: RANKING_CACHE_HANDLER,
};

/** Parses a `--handler` value. */
export function parseHandlerName(value: string): RecoveryHandlerName {
  if ((RECOVERY_HANDLERS as readonly string[]).includes(value)) return value as RecoveryHandlerName;
  throw new RecoveryRequestError(`unknown handler ${JSON.stringify(value)}; expected one of ${RECOVERY_HANDLERS.join(', ')}`);
}

/** A handler as the recovery commands call it. */
export type RecoveryHandler = (event: unknown) => Promise<InvocationSummary>;

/** Ledger rows one transaction wrote, per advertiser, campaign and type (amount as Postgres printed it). */
interface LedgerDelta {
  advertiser_id: string;
  campaign_id: string;
  type: 'DEDUCT' | 'REFUND';
  records: number;
  amount: string;
}

/** Money that moved (or would move) for one advertiser and campaign. */
export interface CampaignMoney {
  /** Advertiser id. */
  readonly advertiserId: string;
  /** Campaign id. */
  readonly campaignId: string;
  /** Clicks newly charged. */
  readonly charges: number;
  /** Their total, exact. */
  readonly charged: string;
  /** Duplicates newly refunded. */
  readonly refunds: number;
  /** Their total, exact. */
  readonly refunded: string;
}

/** Net balance change of one advertiser (refunded − charged), exact. */
export interface AdvertiserMoney {
  /** Advertiser id. */
  readonly advertiserId: string;
  /** Signed change of the balance. */
  readonly balanceChange: string;
}

/** What a recovery command did, or in a dry run would do. */
export interface RecoveryTotals {
  /** Records fed to a handler. */
  records: number;
  /** Handler invocations (batches). */
  invocations: number;
  /** Clicks newly charged. */
  charged: number;
  /** Duplicates newly refunded. */
  refunded: number;
  /** Clicks voided before being charged. */
  voided: number;
  /** Records the handler dead-lettered (new, or already in `dead_letters`). */
  deadLettered: number;
  /** Records applied already, or not for this handler (impressions). */
  skipped: number;
}

/** A zeroed {@link RecoveryTotals}. */
export function emptyTotals(): RecoveryTotals {
  return { records: 0, invocations: 0, charged: 0, refunded: 0, voided: 0, deadLettered: 0, skipped: 0 };
}

/** Adds one invocation summary to `totals`. */
export function addSummary(totals: RecoveryTotals, summary: InvocationSummary): void {
  totals.records += summary.records;
  totals.invocations += 1;
  totals.charged += summary.charged;
  totals.refunded += summary.refunded;
  totals.voided += summary.voided;
  totals.deadLettered += summary.deadLettered;
  totals.skipped += summary.skipped;
}

/** The money of a whole command, per campaign and per advertiser. */
export interface MoneyMoved {
  /** Per advertiser and campaign. */
  readonly campaigns: CampaignMoney[];
  /** Per advertiser. */
  readonly advertisers: AdvertiserMoney[];
}

/**
 * Ledger rows written by the current transaction, its subtransactions (savepoints, a plpgsql
 * exception block) included: ids above the sequence value at session start whose inserting xid
 * is this transaction's own. `xmin` holds the low 32 bits of that xid; this transaction's xids
 * are its top-level xid and the ones assigned after it, so `xmin` is widened to the full xid at
 * or above the top-level one. Rows of transactions older than ours then land 2^31 or more past
 * it (they are recent: ids above the floor) and are not ours; the others are committed or ours.
 * Other sessions' uncommitted rows are invisible here, so "in progress" then means ours.
 */
const LEDGER_DELTA = `
WITH me AS (SELECT pg_current_xact_id()::text::numeric AS top),
candidates AS (
  SELECT h.advertiser_id, h.campaign_id, h.type, h.amount, me.top,
         me.top + mod(h.xmin::text::numeric - mod(me.top, 4294967296) + 4294967296, 4294967296) AS xid
    FROM ad_balance_histories h, me
   WHERE h.id > $1::bigint AND h.type IN ('DEDUCT', 'REFUND')
)
SELECT advertiser_id::text, campaign_id::text, type, count(*)::int AS records, sum(amount)::text AS amount
  FROM candidates
 WHERE CASE WHEN xid < top + 2147483648 THEN pg_xact_status(xid::text::xid8) END = 'in progress'
 GROUP BY advertiser_id, campaign_id, type`;

const MONEY_TOTALS = `
WITH d AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(advertiser_id bigint, campaign_id bigint, type text, records int, amount numeric)
), per_campaign AS (
  SELECT advertiser_id, campaign_id,
         coalesce(sum(records) FILTER (WHERE type = 'DEDUCT'), 0)::int AS charges,
         coalesce(sum(amount) FILTER (WHERE type = 'DEDUCT'), 0) AS charged,
         coalesce(sum(records) FILTER (WHERE type = 'REFUND'), 0)::int AS refunds,
         coalesce(sum(amount) FILTER (WHERE type = 'REFUND'), 0) AS refunded
    FROM d GROUP BY advertiser_id, campaign_id
)
SELECT (SELECT coalesce(json_agg(json_build_object('advertiserId', advertiser_id::text, 'campaignId', campaign_id::text,
          'charges', charges, 'charged', charged::text, 'refunds', refunds, 'refunded', refunded::text)
          ORDER BY advertiser_id, campaign_id), '[]'::json) FROM per_campaign) AS campaigns,
       (SELECT coalesce(json_agg(json_build_object('advertiserId', advertiser_id::text, 'balanceChange', change::text)
          ORDER BY advertiser_id), '[]'::json)
          FROM (SELECT advertiser_id, sum(refunded) - sum(charged) AS change FROM per_campaign GROUP BY advertiser_id) a) AS advertisers`;

type Query = (text: string, values?: unknown[]) => Promise<QueryResult>;

/**
 * One dedicated connection the recovery command runs every handler transaction on, handed to
 * the handlers as their pool. See the file comment.
 */
export class RecoverySession {
  /** The pool the handlers get. */
  readonly pool: PoolProvider;

  private readonly deltas: LedgerDelta[] = [];
  /** Whether the command's own transaction is open (the handlers' transactions then nest in it). */
  private outer = false;
  /** A dry run whose transaction a failing handler rolled back. */
  private aborted = false;
  /** Between a handler's BEGIN and its COMMIT or ROLLBACK. */
  private inHandlerTransaction = false;

  private constructor(
    private readonly client: PoolClient,
    /** True: nothing is committed. */
    readonly dryRun: boolean,
    private readonly ledgerIdFloor: string,
  ) {
    const query: Query = (text, values) => this.handlerQuery(text, values);
    const facadeClient = { query, release: () => undefined, on: () => facadeClient, removeListener: () => facadeClient };
    const facade = { connect: async () => facadeClient, query };
    this.pool = async () => facade as unknown as Pool;
  }

  /** Checks out a connection from `pool`; in a dry run, opens the transaction every handler runs in. */
  static async open(pool: Pool, dryRun: boolean): Promise<RecoverySession> {
    const client = await pool.connect();
    try {
      const floor = await client.query<{ floor: string }>(
        `SELECT (CASE WHEN is_called THEN last_value ELSE last_value - 1 END)::text AS floor FROM ad_balance_histories_id_seq`,
      );
      const session = new RecoverySession(client, dryRun, floor.rows[0].floor);
      if (dryRun) await session.begin();
      return session;
    } catch (error) {
      client.release();
      throw error;
    }
  }

  /** Runs a statement of the command's own on the session connection (inside its transaction, if open). */
  query<R extends object = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    return this.client.query<R>(text, values);
  }

  /**
   * Opens the command's own transaction: until `commit`, the handlers' BEGIN and COMMIT nest in
   * it, so what the command writes around a handler (a re-drive's mark) commits with its money.
   * A dry run is one such transaction from `open` to `finish`.
   */
  async begin(): Promise<void> {
    if (this.outer) return;
    await this.client.query('BEGIN');
    this.outer = true;
  }

  /** Commits the command's own transaction (a dry run keeps it open until `finish` rolls it back). */
  async commit(): Promise<void> {
    if (this.dryRun || !this.outer) return;
    await this.captureLedgerDelta();
    await this.client.query('COMMIT');
    this.outer = false;
  }

  /** DEDUCT and REFUND rows the open transaction has written so far. */
  async ledgerRowsOfTransaction(): Promise<{ deducts: number; refunds: number }> {
    const rows = (await this.client.query<LedgerDelta>(LEDGER_DELTA, [this.ledgerIdFloor])).rows;
    const count = (type: string) => rows.filter((r) => r.type === type).reduce((n, r) => n + r.records, 0);
    return { deducts: count('DEDUCT'), refunds: count('REFUND') };
  }

  private async handlerQuery(text: string, values?: unknown[]): Promise<QueryResult> {
    const statement = typeof text === 'string' ? text.trim().toUpperCase() : '';
    const nothing = { rows: [], rowCount: null } as unknown as QueryResult;
    if (statement === 'BEGIN') {
      this.inHandlerTransaction = true;
      return this.outer ? nothing : this.client.query('BEGIN');
    }
    if (statement === 'COMMIT') {
      this.inHandlerTransaction = false;
      if (this.outer) return nothing;
      await this.captureLedgerDelta();
      return this.client.query('COMMIT');
    }
    if (statement === 'ROLLBACK') {
      this.inHandlerTransaction = false;
      // A handler failure rolls back the command's transaction with it (a dry run is then over).
      if (this.outer && this.dryRun) this.aborted = true;
      this.outer = false;
      return this.client.query('ROLLBACK');
    }
    if (!this.inHandlerTransaction) return this.standalone(text, values);
    return this.client.query(text, values);
  }

  /**
   * A statement a handler sends on its own, outside any BEGIN (autocommit: click-balance's
   * one-round-trip charge). Inside the command's transaction it runs under a savepoint, so that
   * its refusal (SQLSTATE AS001, nothing applied) leaves the transaction usable for the
   * handler's long way, exactly as autocommit would; otherwise it gets a transaction of its own
   * so that its ledger rows are read back before it commits, like any handler transaction.
   */
  private async standalone(text: string, values?: unknown[]): Promise<QueryResult> {
    const [open, close, undo] = this.outer
      ? ['SAVEPOINT recovery_statement', 'RELEASE SAVEPOINT recovery_statement', 'ROLLBACK TO SAVEPOINT recovery_statement']
      : ['BEGIN', 'COMMIT', 'ROLLBACK'];
    await this.client.query(open);
    try {
      const result = await this.client.query(text, values);
      if (!this.outer) await this.captureLedgerDelta();
      await this.client.query(close);
      return result;
    } catch (error) {
      await this.client.query(undo);
      throw error;
    }
  }

  private async captureLedgerDelta(): Promise<void> {
    const delta = await this.client.query<LedgerDelta>(LEDGER_DELTA, [this.ledgerIdFloor]);
    this.deltas.push(...delta.rows);
  }

  /**
   * Ends the session: a dry run reads what its transaction wrote and rolls it back. Returns the
   * money moved (or that would have moved), summed by Postgres.
   */
  async finish(): Promise<MoneyMoved> {
    if (this.aborted) throw new RecoveryRequestError('the dry run was rolled back by a failing handler; nothing was written');
    if (this.outer) {
      await this.captureLedgerDelta();
      await this.client.query(this.dryRun ? 'ROLLBACK' : 'COMMIT');
      this.outer = false;
    }
    const totals = await this.client.query<{ campaigns: CampaignMoney[]; advertisers: AdvertiserMoney[] }>(MONEY_TOTALS, [JSON.stringify(this.deltas)]);
    return totals.rows[0];
  }

  /** Returns the connection, rolling back a transaction left open. */
  async release(): Promise<void> {
    if (this.outer) await this.client.query('ROLLBACK').catch(() => undefined);
    this.outer = false;
    this.client.release();
  }
}

/**
 * Runs `work` on a fresh session (a database connection from DATABASE_URL, Redis when
 * configured and not a dry run), finishes it, and closes everything; returns what `work`
 * returned with the money moved (or, in a dry run, that would have moved).
 */
export async function withRecoverySession<T extends object>(
  env: NodeJS.ProcessEnv,
  dryRun: boolean,
  work: (session: RecoverySession, cache: RedisCache) => Promise<T>,
): Promise<T & { money: MoneyMoved }> {
  const pool = operatorPool(env);
  const cache = recoveryCache(env, dryRun);
  try {
    const session = await RecoverySession.open(pool, dryRun);
    try {
      const result = await work(session, cache);
      return { ...result, money: await session.finish() };
    } finally {
      await session.release();
    }
  } finally {
    await cache.close();
    await pool.end();
  }
}

/** Where the recovery commands take Redis from: `REDIS_URL` (and `REDIS_KEY_PREFIX`), as the workers do locally. */
export function recoveryCache(env: NodeJS.ProcessEnv, dryRun: boolean): RedisCache {
  // A dry run writes nothing anywhere: the cache mirrors stay as they are.
  if (dryRun || !env.REDIS_URL) return RedisCache.disabled();
  return new RedisCache(createRedisClientProvider({ kind: 'url', url: env.REDIS_URL }, env.REDIS_KEY_PREFIX ?? ''));
}

/** Builds the real handler `name` on the session's connection. */
export function recoveryHandler(
  name: RecoveryHandlerName,
  session: RecoverySession,
  cache: RedisCache,
  options: { budgetTimeZone: string; env: NodeJS.ProcessEnv; historySince?: string },
): RecoveryHandler {
  // The handlers' invocation logs and EMF metrics belong to Lambda; the command prints its own summary.
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const observability = {
    logger: new Logger({ serviceName: `adstream-recovery-${name}`, logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'adstream-recovery', serviceName: name }),
  };
  if (name === RANKING_CACHE_HANDLER) {
    if (session.dryRun) throw new RecoveryRequestError('ranking-cache moves no money and writes only Redis: there is nothing to dry-run');
    if (!options.env.REDIS_URL) throw new RecoveryRequestError('ranking-cache writes Redis: set REDIS_URL (and REDIS_KEY_PREFIX if the workers use one)');
    return createRankingCacheHandler({
      pool: session.pool,
      cache,
      observability,
      budgetTimeZone: options.budgetTimeZone,
      freshnessSeconds: parseRankingFreshnessSeconds(options.env),
      versionedRows: parseRankingRowsVersioned(options.env),
    });
  }
  // No outbox publishers: rows a replay writes are published by the scheduled outbox sweep.
  const deps: WorkerDeps = {
    pool: session.pool,
    cache,
    publishers: {},
    observability,
    budgetTimeZone: options.budgetTimeZone,
    ...(options.historySince === undefined ? {} : { historySince: options.historySince }),
  };
  return name === CLICK_BALANCE_HANDLER ? createClickBalanceHandler(deps) : createCompensationHandler(deps);
}

/** The money lines of a report. */
export function formatMoney(money: MoneyMoved, dryRun: boolean): string[] {
  const verb = dryRun ? 'would move' : 'moved';
  if (money.campaigns.length === 0) return [`money ${verb}: none`];
  const lines = [`money ${verb}:`];
  for (const c of money.campaigns) {
    lines.push(`  advertiser ${c.advertiserId} campaign ${c.campaignId}: ${c.charges} charged = ${c.charged}, ${c.refunds} refunded = ${c.refunded}`);
  }
  for (const a of money.advertisers) lines.push(`  advertiser ${a.advertiserId}: balance ${a.balanceChange.startsWith('-') ? '' : '+'}${a.balanceChange}`);
  return lines;
}

/** The record counts of a report. */
export function formatTotals(totals: RecoveryTotals): string {
  return `${totals.records} records in ${totals.invocations} invocations: ${totals.charged} charged, ${totals.refunded} refunded, ${totals.voided} voided, ${totals.deadLettered} dead-lettered, ${totals.skipped} skipped (already applied, or not for this handler)`;
}
