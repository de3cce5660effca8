/**
 * What every command-line entry point of the project shares: known errors (configuration, a
 * stale or missing bundle, the Flink lock and lint, flink:check settings, a failed deploy step)
 * print their message, without a stack trace, and exit 1. Anything else is a bug and keeps its
 * stack trace.
 */

/** `Error.name` of every error whose message alone tells the user what to do. */
export const KNOWN_ERROR_NAMES: ReadonlySet<string> = new Set([
  'ConfigError',
  'ConfigErrors',
  'AwsConstructError',
  'MissingBundleError',
  'StaleBundleError',
  'PolicyViolation',
  'PolicyCheckFailed',
  'FlinkSqlFileError',
  'FlinkLintError',
  'StatementLockError',
  'FlinkStatementError',
  'FlinkCheckConfigError',
  'DeployStepFailed',
  'UsageError',
  'LedgerEntryError',
  'RecoveryRequestError',
]);

/** Whether `error` is one of the project's known, self-explaining errors. */
export function isKnownError(error: unknown): error is Error {
  return error instanceof Error && KNOWN_ERROR_NAMES.has(error.name);
}

/** A command line the script cannot run (unknown option, missing value). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Prints a known error's message (or an unknown one's stack) and returns the exit code 1. */
export function reportError(error: unknown): number {
  if (isKnownError(error)) console.error(error.message);
  else console.error(error);
  return 1;
}

/** Runs a script's main function and exits with its code; known errors exit 1 without a stack trace. */
export function runMain(main: () => Promise<number> | number): void {
  Promise.resolve()
    .then(main)
    .then(
      (code) => process.exit(code),
      (error: unknown) => process.exit(reportError(error)),
    );
}
