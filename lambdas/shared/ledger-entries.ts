import type { Pool } from 'pg';
import { budgetDayOf } from './budget-day';
import { guardCheckedOutClient } from './db';
import { LedgerEntryError } from './errors';

/** A top-up (positive) or a manual adjustment (signed) of one advertiser's balance. */
export interface LedgerEntryRequest {
  /** `TOPUP` adds money; `ADJUSTMENT` corrects a balance either way. */
  readonly type: 'TOPUP' | 'ADJUSTMENT';
  /** The advertiser whose balance moves. */
  readonly advertiserId: string;
  /** Exact decimal string: positive for a top-up, non-zero and signed for an adjustment. */
  readonly amount: string;
  /** The payment id or ticket that makes the entry idempotent (recorded once, whatever the retries). */
  readonly externalRef: string;
  /** Why (required for an adjustment). */
  readonly reason?: string;
  /** Who recorded it (operator name, tool). */
  readonly recordedBy?: string;
  /** Show what would move, write nothing. */
  readonly dryRun?: boolean;
  /** Zone of the budget day the entry is dated with. */
  readonly budgetTimeZone: string;
  /** Clock (epoch ms). @default Date.now */
  readonly now?: number;
}

/** What recording an entry did (or, in a dry run, would do). */
export interface LedgerEntryResult {
  /** `recorded` now, `already-recorded` earlier under the same reference (nothing moved), `dry-run`. */
  readonly outcome: 'recorded' | 'already-recorded' | 'dry-run';
  readonly advertiserId: string;
  readonly type: 'TOPUP' | 'ADJUSTMENT';
  /** Amount as Postgres normalised it. */
  readonly amount: string;
  readonly externalRef: string;
  /** Balance before (for `already-recorded`: the current balance). */
  readonly balanceBefore: string;
  /** Balance after (for `dry-run`: what it would be). */
  readonly balanceAfter: string;
  /** event_id of the ledger row. */
  readonly eventId: string;
}

/** Amount syntax: at most 18 integer digits and 6 fraction digits, optional minus sign. */
const AMOUNT = /^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$/;

/** The ledger row's event_id for an external reference. */
export function ledgerEventId(externalRef: string): string {
  return `ledger:${externalRef}`;
}

function validate(request: LedgerEntryRequest): void {
  if (!/^[0-9]{1,18}$/.test(request.advertiserId))
    throw new LedgerEntryError(`advertiser must be a positive integer id, got ${JSON.stringify(request.advertiserId)}`);
  if (!AMOUNT.test(request.amount))
    throw new LedgerEntryError(`amount must be a decimal with at most 6 fraction digits (e.g. 100.00), got ${JSON.stringify(request.amount)}`);
  if (/^-?0(\.0+)?$/.test(request.amount)) throw new LedgerEntryError('amount must not be zero');
  if (request.type === 'TOPUP' && request.amount.startsWith('-'))
    throw new LedgerEntryError('a top-up amount must be positive; take money back with an adjustment');
  if (request.externalRef.length === 0 || request.externalRef.length > 200) throw new LedgerEntryError('the external reference must be 1 to 200 characters');
  if (request.type === 'ADJUSTMENT' && !request.reason?.trim()) throw new LedgerEntryError('an adjustment needs a reason');
}

/**
 * Records a top-up or an adjustment: one ledger row, the balance moved by the same amount, and
 * the external reference claimed in `ledger_entry_refs`, all in one transaction under the
 * advertiser's row lock. Recording the same reference again moves nothing and reports the
 * earlier entry; the same reference with another advertiser, type or amount is refused.
 */
export async function recordLedgerEntry(pool: Pool, request: LedgerEntryRequest): Promise<LedgerEntryResult> {
  validate(request);
  const eventId = ledgerEventId(request.externalRef);
  const spendDate = budgetDayOf(request.now ?? Date.now(), request.budgetTimeZone);
  const client = await pool.connect();
  const release = guardCheckedOutClient(client);
  try {
    await client.query('BEGIN');
    const advertiser = await client.query<{ balance: string }>('SELECT balance::text FROM advertisers WHERE advertiser_id = $1 FOR UPDATE', [
      request.advertiserId,
    ]);
    if (advertiser.rowCount === 0) throw new LedgerEntryError(`advertiser ${request.advertiserId} does not exist`);
    const balanceBefore = advertiser.rows[0].balance;
    const existing = await client.query<{ advertiser_id: string; type: string; amount: string; equal: boolean }>(
      'SELECT advertiser_id::text, type, amount::text, amount = $2::numeric AS equal FROM ledger_entry_refs WHERE external_ref = $1',
      [request.externalRef, request.amount],
    );
    const base = { advertiserId: request.advertiserId, type: request.type, externalRef: request.externalRef, eventId };
    if (existing.rowCount) {
      const row = existing.rows[0];
      if (row.advertiser_id !== request.advertiserId || row.type !== request.type || !row.equal) {
        throw new LedgerEntryError(
          `reference ${request.externalRef} was already recorded as ${row.type} ${row.amount} for advertiser ${row.advertiser_id}; nothing recorded`,
        );
      }
      await client.query('ROLLBACK');
      return { ...base, outcome: 'already-recorded', amount: row.amount, balanceBefore, balanceAfter: balanceBefore };
    }
    if (request.dryRun) {
      const after = await client.query<{ amount: string; after: string }>('SELECT $1::numeric::text AS amount, ($2::numeric + $1::numeric)::text AS after', [
        request.amount,
        balanceBefore,
      ]);
      await client.query('ROLLBACK');
      return { ...base, outcome: 'dry-run', amount: after.rows[0].amount, balanceBefore, balanceAfter: after.rows[0].after };
    }
    // The reference first: a concurrent recording of the same reference waits on it here and,
    // once this commits, finds it taken (unique violation → reported as already recorded by a retry).
    await client.query(
      `INSERT INTO ledger_entry_refs (external_ref, advertiser_id, type, amount, event_id, reason, recorded_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [request.externalRef, request.advertiserId, request.type, request.amount, eventId, request.reason ?? null, request.recordedBy ?? null],
    );
    await client.query(
      `INSERT INTO ad_balance_histories (event_id, type, amount, advertiser_id, campaign_id, spend_date, event_ts)
       VALUES ($1, $2, $3, $4, NULL, $5, now())`,
      [eventId, request.type, request.amount, request.advertiserId, spendDate],
    );
    const moved = await client.query<{ amount: string; balance: string }>(
      'UPDATE advertisers SET balance = balance + $2::numeric, updated_at = now() WHERE advertiser_id = $1 RETURNING balance::text, $2::numeric::text AS amount',
      [request.advertiserId, request.amount],
    );
    await client.query('COMMIT');
    return { ...base, outcome: 'recorded', amount: moved.rows[0].amount, balanceBefore, balanceAfter: moved.rows[0].balance };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((error as { code?: string }).code === '23505') {
      throw new LedgerEntryError(`reference ${request.externalRef} was recorded concurrently; run the command again to see the entry`);
    }
    throw error;
  } finally {
    release();
  }
}
