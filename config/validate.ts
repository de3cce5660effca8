import { ConfigError } from './errors';

/**
 * Small readers for untrusted configuration objects. Each takes the raw value and the dotted
 * path it was found at, and either returns a typed value or throws a ConfigError naming both.
 */

/** A plain object, or throws. */
export function readObject(raw: unknown, path: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(path, raw, 'an object');
  }
  return raw as Record<string, unknown>;
}

/** A non-empty string matching `pattern` (described by `allowed`), or throws. */
export function readString(raw: unknown, path: string, pattern?: RegExp, allowed?: string): string {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new ConfigError(path, raw, allowed ?? 'a non-empty string');
  }
  if (pattern && !pattern.test(raw)) {
    throw new ConfigError(path, raw, allowed ?? `a string matching ${pattern}`);
  }
  return raw;
}

/** An integer in [min, max], or `fallback` when absent, or throws. */
export function readInt(raw: unknown, path: string, min: number, max: number, fallback?: number): number {
  if (raw === undefined && fallback !== undefined) return fallback;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) {
    throw new ConfigError(path, raw, `an integer from ${min} to ${max}`);
  }
  return raw;
}

/** A boolean, or `fallback` when absent, or throws. */
export function readBoolean(raw: unknown, path: string, fallback?: boolean): boolean {
  if (raw === undefined && fallback !== undefined) return fallback;
  if (typeof raw !== 'boolean') throw new ConfigError(path, raw, 'true or false');
  return raw;
}

/** One of a closed set of values, or `fallback` when absent, or throws. */
export function readOneOf<const T extends string | number>(raw: unknown, path: string, values: readonly T[], fallback?: T): T {
  if (raw === undefined && fallback !== undefined) return fallback;
  if (!values.includes(raw as T)) {
    throw new ConfigError(path, raw, `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`);
  }
  return raw as T;
}

/** An array whose every item `readItem` accepts, with at least `minItems` items, or throws. */
export function readArray<T>(raw: unknown, path: string, readItem: (item: unknown, itemPath: string) => T, minItems = 0): T[] {
  if (!Array.isArray(raw) || raw.length < minItems) {
    throw new ConfigError(path, raw, minItems > 0 ? `an array with at least ${minItems} item(s)` : 'an array');
  }
  return raw.map((item, index) => readItem(item, `${path}[${index}]`));
}

/** Rejects keys the schema does not know, which are almost always typos. */
export function rejectUnknownKeys(raw: Record<string, unknown>, path: string, known: readonly string[]): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new ConfigError(`${path}.${key}`, raw[key], `no such field; known fields are ${known.join(', ')}`);
    }
  }
}

/** An IANA time zone that this Node.js runtime knows, or throws. */
export function readTimeZone(raw: unknown, path: string, fallback: string): string {
  const zone = raw === undefined ? fallback : readString(raw, path);
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch (cause) {
    throw new ConfigError(path, raw, 'an IANA time zone such as "Asia/Seoul"', { cause });
  }
  return zone;
}
