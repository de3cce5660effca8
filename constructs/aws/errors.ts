/**
 * Errors raised while building the AWS side of an environment. Each message says what is
 * wrong, the value received, what is allowed and how to fix it: it is read at synth time by
 * someone who did not write the construct.
 */

/** A construct of the AWS stacks was given props it cannot build safely. */
export class AwsConstructError extends Error {
  /** Construct path (or prop) the problem was found at. */
  public readonly where: string;

  constructor(where: string, message: string, options?: { cause?: unknown }) {
    super(`${where}: ${message}`, options);
    this.name = 'AwsConstructError';
    this.where = where;
  }
}

/** A Lambda bundle the stack deploys has not been built. */
export class MissingBundleError extends Error {
  /** Directory that was expected to hold the bundle. */
  public readonly directory: string;

  constructor(bundleName: string, directory: string, missing: string, options?: { cause?: unknown }) {
    super(
      `Lambda bundle "${bundleName}" is missing ${missing} (looked in ${directory}). ` +
        'Run `npm run bundle` before synth; `npm run synth` does this for you.',
      options,
    );
    this.name = 'MissingBundleError';
    this.directory = directory;
  }
}
