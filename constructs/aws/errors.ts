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

/** A Lambda bundle is older than the sources it was built from: deploying it would ship old code. */
export class StaleBundleError extends Error {
  /** Directory holding the bundles. */
  public readonly directory: string;
  /** One line per stale handler: its name and the files that changed. */
  public readonly stale: readonly string[];

  constructor(directory: string, stale: readonly string[]) {
    super(
      `Lambda bundles in ${directory} are older than their sources, so deploying them would ship old code:\n` +
        stale.map((line) => `  - ${line}`).join('\n') +
        '\nRun `npm run bundle` (or `npm run synth`, `npx cdktf synth`, which bundle first) and synthesize again.',
    );
    this.name = 'StaleBundleError';
    this.directory = directory;
    this.stale = stale;
  }
}
