/**
 * Errors raised while building the infrastructure. Each message says what is wrong, the value
 * received, what is allowed and how to fix it, because it is read at synth time by someone who
 * did not write the construct.
 */

/** A construct was given props it cannot build safely. */
export class PolicyViolation extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyViolation';
  }
}

/** Policy rules found error-level violations during synth. */
export class PolicyCheckFailed extends Error {
  /** One line per violation: rule id, construct path and message. */
  public readonly violations: readonly string[];

  constructor(violations: readonly string[]) {
    super(`Policy check failed with ${violations.length} violation(s):\n${violations.map((v) => `  - ${v}`).join('\n')}`);
    this.name = 'PolicyCheckFailed';
    this.violations = violations;
  }
}
