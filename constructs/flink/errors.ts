import type { FlinkLintFinding } from './lint';

/**
 * Errors of the Flink statement wiring. Each message says what is wrong, the value received,
 * and how to fix it, because it is read at synth time by someone who did not write the code.
 */

/** A SQL file or directory under flink-sql/ is missing or malformed. */
export class FlinkSqlFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FlinkSqlFileError';
  }
}

/** A statement violates the Confluent dialect lint. */
export class FlinkLintError extends Error {
  /** Where the statement comes from (path relative to flink-sql/). */
  public readonly file: string;
  /** Every finding, in order. */
  public readonly findings: readonly FlinkLintFinding[];

  constructor(file: string, findings: readonly FlinkLintFinding[]) {
    super(`flink-sql/${file} fails the Confluent Cloud dialect lint:\n${findings.map((f) => `  - [${f.rule}] ${f.message}`).join('\n')}`);
    this.name = 'FlinkLintError';
    this.file = file;
    this.findings = findings;
  }
}

/** A released statement changed, or a version is deployed without being released. */
export class StatementLockError extends Error {
  /** Path relative to flink-sql/ of the offending statement, or the version directory. */
  public readonly file: string;

  constructor(file: string, message: string) {
    super(message);
    this.name = 'StatementLockError';
    this.file = file;
  }
}

/** A statement's wiring (name, properties, dependencies) is invalid. */
export class FlinkStatementError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FlinkStatementError';
  }
}

/**
 * A synthesized statement uses something the local engine's translation of Confluent-only
 * syntax does not understand; the message names the statement and the construct. The
 * translation never drops or reinterprets what it does not know.
 */
export class FlinkTranslationError extends Error {
  /** The statement name (or source table) the construct belongs to. */
  public readonly statement: string;

  constructor(statement: string, message: string) {
    super(`${statement}: ${message}`);
    this.name = 'FlinkTranslationError';
    this.statement = statement;
  }
}
