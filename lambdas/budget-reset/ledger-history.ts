import { ConfigError } from '../shared/errors';

/**
 * Retention of the day-partitioned ledger, as the workers stack passes it to budget-reset from
 * the environment's config (`database.history`).
 */
export interface LedgerHistory {
  /** Days of ledger kept in daily partitions. */
  readonly retentionDays: number;
  /** Daily partitions kept created ahead of the current budget day. */
  readonly aheadDays: number;
  /** What happens to an expired partition: detached and kept (`archived_<name>`), or dropped. */
  readonly expired: 'detach' | 'drop';
}

/** The defaults of config `database.history`, for a function started without the variables. */
export const DEFAULT_LEDGER_HISTORY: LedgerHistory = { retentionDays: 400, aheadDays: 7, expired: 'detach' };

/** One thing `adstream_maintain_history()` did. */
export interface HistoryAction {
  /**
   * `kept-pending`: an expired outbox or dead-letter day still holding a row not published or not
   * re-driven, or a ledger, void or duplicate-log day holding a row written within the retention.
   */
  readonly action: 'created' | 'kept-in-default' | 'detached' | 'dropped' | 'kept-pending';
  readonly partition_name: string;
}

/**
 * Reads `LEDGER_RETENTION_DAYS`, `LEDGER_PARTITIONS_AHEAD_DAYS` and `LEDGER_EXPIRED_PARTITIONS`
 * (each optional, defaulting as config does); throws `ConfigError` naming a bad one.
 */
export function ledgerHistoryFromEnv(source: Readonly<Record<string, string | undefined>>): LedgerHistory {
  const int = (name: string, min: number, max: number, fallback: number): number => {
    const raw = source[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(name, `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const expired = source.LEDGER_EXPIRED_PARTITIONS ?? DEFAULT_LEDGER_HISTORY.expired;
  if (expired !== 'detach' && expired !== 'drop')
    throw new ConfigError('LEDGER_EXPIRED_PARTITIONS', `must be "detach" or "drop", got ${JSON.stringify(expired)}`);
  return {
    retentionDays: int('LEDGER_RETENTION_DAYS', 35, 3650, DEFAULT_LEDGER_HISTORY.retentionDays),
    aheadDays: int('LEDGER_PARTITIONS_AHEAD_DAYS', 2, 60, DEFAULT_LEDGER_HISTORY.aheadDays),
    expired,
  };
}

/**
 * The day-partitioned history tables, in the order the upkeep keeps them: every table
 * `adstream_maintain_history()` knows (it refuses any other name).
 */
export const HISTORY_TABLES = ['ad_balance_histories', 'click_voids', 'duplicate_clicks', 'dead_letters', 'outbox'] as const;

/**
 * Creates one history table's daily partitions ahead of `today` and expires those older than
 * the retention ($5 names the table; the migrations' SECURITY DEFINER function). One statement
 * per table, each its own transaction, outside the reset's: its DDL locks the table's parent for
 * a moment, and holding one table's locks at a time is what keeps it from deadlocking with a
 * charge, which locks the voids before the ledger (migration 1765040000000). The function gives
 * up after waiting 2 s for a lock (SQLSTATE 55P03); the table is then postponed to the next run.
 */
export const MAINTAIN_HISTORY = `SELECT action, partition_name FROM adstream_maintain_history($1::date, $2::int, $3::int, $4::text, $5::text)`;

/** SQLSTATE of a lock not obtained within `lock_timeout`. */
export const LOCK_NOT_AVAILABLE = '55P03';
