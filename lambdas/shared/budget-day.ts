/**
 * The budget day: the calendar day, in the budget time zone, that spend and thresholds belong to.
 * Every handler decides "the current budget day" from its own clock (`WorkerDeps.now`), so
 * click-balance and budget-reset agree on it and tests can pin it.
 */

const formats = new Map<string, Intl.DateTimeFormat>();

/** `YYYY-MM-DD` of `epochMs` in `timeZone` (an IANA zone checked at cold start). */
export function budgetDayOf(epochMs: number, timeZone: string): string {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    formats.set(timeZone, format);
  }
  return format.format(epochMs);
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True when `text` is `YYYY-MM-DD` naming a day that exists (not 2026-02-30). */
export function isCalendarDay(text: string): boolean {
  const match = DAY.exec(text);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return year >= 1 && date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}
