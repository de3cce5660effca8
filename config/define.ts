/**
 * The shape an environment file exports before validation. Required sections are typed loosely
 * here on purpose: `parseEnvironment` is the single place that validates them, with messages
 * that name the field, so a file that type-checks can still fail synth with a precise reason.
 */
export interface EnvironmentInput {
  /** Short environment name, e.g. `staging`. */
  readonly name: string;
  /** Whether this is production. */
  readonly production: boolean;
  /** Every other section, checked by `parseEnvironment`. */
  readonly [section: string]: unknown;
}

/** Declares an environment file's content (identity, for typing and discoverability). */
export function defineEnvironment<const T extends EnvironmentInput>(input: T): T {
  return input;
}
