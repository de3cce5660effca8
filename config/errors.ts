/**
 * The one error type for configuration problems. Every message names the field (as a dotted
 * path from the environment file), the value received and what is allowed, so a failing synth
 * says how to fix it without reading code.
 */
export class ConfigError extends Error {
  /** Dotted path of the offending field, e.g. `prod.confluent.topics.ad-events.partitions`. */
  public readonly field: string;
  /** The value that was rejected, as given. */
  public readonly received: unknown;
  /** What would have been accepted. */
  public readonly allowed: string;

  constructor(field: string, received: unknown, allowed: string, options?: { cause?: unknown }) {
    super(`Invalid configuration at ${field}: got ${render(received)}; allowed: ${allowed}.`, options);
    this.name = 'ConfigError';
    this.field = field;
    this.received = received;
    this.allowed = allowed;
  }
}

function render(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Several configuration problems in one file, reported together. */
export class ConfigErrors extends Error {
  /** Every problem, in the order the sections are checked. */
  public readonly errors: readonly ConfigError[];

  constructor(errors: readonly ConfigError[]) {
    super(`${errors.length} configuration problems:\n${errors.map((e) => `  - ${e.message}`).join('\n')}`);
    this.name = 'ConfigErrors';
    this.errors = errors;
  }
}
