/**
 * Exact decimal amounts as strings. The handlers never do arithmetic on money in JavaScript:
 * Postgres NUMERIC does it. This module only checks that a string is a sane amount.
 */

/** Fraction digits a price may carry (NUMERIC in the database has no limit; this is sanity). */
const MAX_SCALE = 6;

/**
 * Largest price or refund accepted for one click, in the account currency. Anything above is
 * "absurd" and dead-lettered rather than charged (KRW CPCs are in the hundreds to thousands).
 */
export const MAX_CLICK_AMOUNT = '10000000';

const DECIMAL = /^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$/;

/** Amount in millionths as a bigint, or undefined when `text` is not a plain non-negative decimal. */
export function toMicros(text: string): bigint | undefined {
  const match = DECIMAL.exec(text);
  if (!match) return undefined;
  const fraction = (match[2] ?? '.').slice(1).padEnd(MAX_SCALE, '0');
  return BigInt(match[1]) * 1_000_000n + BigInt(fraction);
}

const MAX_MICROS = toMicros(MAX_CLICK_AMOUNT) as bigint;

/** Why an amount is unacceptable, or undefined when it is a positive amount within bounds. */
export function checkClickAmount(text: string): string | undefined {
  if (text.startsWith('-')) return `must not be negative, got ${text.slice(0, 32)}`;
  const micros = toMicros(text);
  if (micros === undefined) return `must be a decimal with at most ${MAX_SCALE} fraction digits, got ${JSON.stringify(text.slice(0, 32))}`;
  if (micros === 0n) return 'must be greater than zero';
  if (micros > MAX_MICROS) return `must be at most ${MAX_CLICK_AMOUNT}, got ${text}`;
  return undefined;
}

/** True when `text` is a usable per-click price (used to distrust a corrupted cache value). */
export function isClickPrice(text: string | null | undefined): text is string {
  return typeof text === 'string' && checkClickAmount(text) === undefined;
}

/**
 * A non-negative decimal with at most 7 integer digits (below MAX_CLICK_AMOUNT, 10^7) and at most
 * MAX_SCALE fraction digits: an amount `informationalAmountProblem` accepts, told by one match.
 */
const PLAINLY_WITHIN_BOUNDS = /^(?:0|[1-9][0-9]{0,6})(?:\.[0-9]{1,6})?$/;

/** Why an informational amount (quoted price, refund quote) is unacceptable: negative or absurd. */
export function checkInformationalAmount(text: string): string | undefined {
  // Checked on every click: the usual quoted price needs no BigInt arithmetic.
  return PLAINLY_WITHIN_BOUNDS.test(text) ? undefined : informationalAmountProblem(text);
}

/** The whole check behind `checkInformationalAmount`, without its shortcut for plain amounts. */
export function informationalAmountProblem(text: string): string | undefined {
  // "-0.00" is zero, not a negative amount.
  const negative = text.startsWith('-');
  const micros = toMicros(negative ? text.slice(1) : text);
  if (negative && micros !== 0n) return `must not be negative, got ${text.slice(0, 32)}`;
  if (micros === undefined) return `must be a decimal with at most ${MAX_SCALE} fraction digits, got ${JSON.stringify(text.slice(0, 32))}`;
  if (micros > MAX_MICROS) return `must be at most ${MAX_CLICK_AMOUNT}, got ${text}`;
  return undefined;
}

const NON_NEGATIVE_DECIMAL = /^([0-9]+)(?:\.([0-9]+))?$/;

/**
 * Exact sum of two non-negative decimal strings as Postgres prints NUMERIC (`"12.50"`), at the
 * larger of their scales. For totals the database computed in separate statements (the
 * compensation waves); never for deciding an amount.
 */
export function addAmounts(a: string, b: string): string {
  const [ma, mb] = [NON_NEGATIVE_DECIMAL.exec(a), NON_NEGATIVE_DECIMAL.exec(b)];
  if (!ma || !mb) throw new RangeError(`addAmounts takes non-negative decimals, got ${JSON.stringify(a.slice(0, 32))} and ${JSON.stringify(b.slice(0, 32))}`);
  const scale = Math.max(ma[2]?.length ?? 0, mb[2]?.length ?? 0);
  const units = (m: RegExpExecArray) => BigInt(m[1] + (m[2] ?? '').padEnd(scale, '0'));
  const digits = (units(ma) + units(mb)).toString().padStart(scale + 1, '0');
  return scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}
