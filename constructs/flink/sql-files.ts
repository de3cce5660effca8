import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FlinkPipelineId } from '../../config/flink';
import { FlinkSqlFileError, StatementLockError } from './errors';
import { stripLineComments } from './sql-text';

/** The directory holding the statements, resolved from this module (never the working directory). */
export const FLINK_SQL_ROOT = join(__dirname, '..', '..', 'flink-sql');

/** Name of the lock file, inside the SQL root. */
export const STATEMENT_LOCK_FILE = 'statements.lock.json';

/** One statement file of one pipeline version. */
export interface FlinkSqlFile {
  /** Pipeline the file belongs to. */
  readonly pipeline: FlinkPipelineId;
  /** Version directory (`v<version>`). */
  readonly version: number;
  /** Two-digit order within the version, e.g. `02`. */
  readonly sequence: string;
  /** What the statement does, from the file name, e.g. `insert-rtb-rankings`. */
  readonly title: string;
  /** Path relative to the SQL root, with forward slashes; the lock key. */
  readonly relativePath: string;
  /** The SQL as written minus `--` comments: the template the lock fingerprints. */
  readonly template: string;
}

const PIPELINE_DIRECTORY = /^(\d{2})-([a-z0-9-]+)$/;
const STATEMENT_FILE = /^(\d{2})-([a-z0-9-]+)\.sql$/;

/** The `<nn>-<pipeline>` directory of a pipeline. */
export function pipelineDirectory(root: string, pipeline: FlinkPipelineId): string {
  if (!existsSync(root)) throw new FlinkSqlFileError(`The Flink SQL directory ${root} does not exist.`);
  const matches = readdirSync(root).filter((entry) => PIPELINE_DIRECTORY.exec(entry)?.[2] === pipeline);
  if (matches.length !== 1) {
    throw new FlinkSqlFileError(
      `Expected exactly one directory named <nn>-${pipeline} under ${root}, found ${matches.length === 0 ? 'none' : matches.join(', ')}.`,
    );
  }
  return matches[0];
}

/** The statement files of one pipeline version, in file order. */
export function loadPipelineVersion(root: string, pipeline: FlinkPipelineId, version: number): FlinkSqlFile[] {
  const directory = pipelineDirectory(root, pipeline);
  const versionDirectory = join(root, directory, `v${version}`);
  if (!existsSync(versionDirectory)) {
    throw new FlinkSqlFileError(
      `Pipeline ${pipeline} version ${version} is configured but flink-sql/${directory}/v${version}/ does not exist. Create it (copy the previous version and edit the copy) or fix flink.pipelines in the environment config.`,
    );
  }
  const entries = readdirSync(versionDirectory).sort();
  const files: FlinkSqlFile[] = [];
  for (const entry of entries) {
    const match = STATEMENT_FILE.exec(entry);
    if (!match) {
      throw new FlinkSqlFileError(
        `flink-sql/${directory}/v${version}/${entry}: statement files are named <nn>-<what-it-does>.sql (two digits, lowercase, hyphens) so the order reads; rename it.`,
      );
    }
    if (files.some((f) => f.sequence === match[1])) {
      throw new FlinkSqlFileError(`flink-sql/${directory}/v${version}/: two files share the number ${match[1]}; each statement needs its own.`);
    }
    const template = stripLineComments(readFileSync(join(versionDirectory, entry), 'utf8'));
    if (template.length === 0) throw new FlinkSqlFileError(`flink-sql/${directory}/v${version}/${entry} holds no SQL.`);
    files.push({
      pipeline,
      version,
      sequence: match[1],
      title: match[2],
      relativePath: `${directory}/v${version}/${entry}`,
      template,
    });
  }
  if (files.length === 0) throw new FlinkSqlFileError(`flink-sql/${directory}/v${version}/ holds no .sql files.`);
  return files;
}

/** What the lock records for one released statement. */
export interface StatementLockEntry {
  /** sha256 of the statement template (the file minus `--` comments). */
  readonly sha256: string;
  /** Template parameters as released (e.g. `RANKING_TOP_N`). */
  readonly parameters: Readonly<Record<string, string>>;
  /** Environment-independent statement properties as released (e.g. `sql.state-ttl`). */
  readonly properties: Readonly<Record<string, string>>;
}

/** The lock file: every released statement, keyed by its path relative to flink-sql/. */
export interface StatementLock {
  /** Released statements. */
  readonly statements: Readonly<Record<string, StatementLockEntry>>;
}

/** sha256 hex of a template. */
export function fingerprint(template: string): string {
  return createHash('sha256').update(template, 'utf8').digest('hex');
}

/** Reads the lock file of a SQL root (an empty lock when the file is absent). */
export function readStatementLock(root: string): StatementLock {
  const path = join(root, STATEMENT_LOCK_FILE);
  if (!existsSync(path)) return { statements: {} };
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as { statements?: Record<string, StatementLockEntry> };
    return { statements: parsed.statements ?? {} };
  } catch (cause) {
    throw new FlinkSqlFileError(`flink-sql/${STATEMENT_LOCK_FILE} is not valid JSON; restore it from git.`, { cause });
  }
}

/** Writes the lock file with sorted keys so diffs stay small. */
export function writeStatementLock(root: string, lock: StatementLock): void {
  const statements: Record<string, StatementLockEntry> = {};
  for (const key of Object.keys(lock.statements).sort()) statements[key] = lock.statements[key];
  const document = {
    '//': 'Released Flink statements. Generated by `npx tsx flink-sql/release.ts <pipeline> <version>`; never edit by hand. A released statement is immutable: change it by releasing a new version (flink-sql/README.md).',
    statements,
  };
  writeFileSync(join(root, STATEMENT_LOCK_FILE), `${JSON.stringify(document, null, 2)}\n`);
}

/** A statement as it will be deployed, for the lock check. */
export interface LockCandidate {
  /** The file it comes from. */
  readonly file: FlinkSqlFile;
  /** Parameters rendered into the template. */
  readonly parameters: Readonly<Record<string, string>>;
  /** Environment-independent properties. */
  readonly properties: Readonly<Record<string, string>>;
}

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((key) => a[key] === b[key]);
}

function describeRecord(record: Readonly<Record<string, string>>): string {
  const entries = Object.entries(record);
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

/**
 * Checks one pipeline version against the lock. A released version must match the lock
 * exactly (same files, same SQL, same parameters and properties); an unreleased one is
 * accepted only when `allowUnreleased` (development).
 */
export function verifyAgainstLock(lock: StatementLock, candidates: readonly LockCandidate[], allowUnreleased: boolean): void {
  if (candidates.length === 0) return;
  const { pipeline, version } = candidates[0].file;
  const versionPrefix = candidates[0].file.relativePath.replace(/[^/]+$/, '');
  const lockedPaths = Object.keys(lock.statements).filter((key) => key.startsWith(versionPrefix));
  const bump = `Released statements are immutable: editing one in place makes Terraform delete and re-create it, which loses its state and re-reads its inputs from the earliest offset (re-emitting every past result). Copy flink-sql/${versionPrefix} to v${version + 1}, make the change there, run \`npx tsx flink-sql/release.ts ${pipeline} ${version + 1}\`, set flink.pipelines.<${pipeline}>.version = ${version + 1} with retiredVersions [${version}], and follow the upgrade runbook in flink-sql/README.md.`;
  if (lockedPaths.length === 0) {
    if (allowUnreleased) return;
    throw new StatementLockError(
      versionPrefix,
      `Pipeline ${pipeline} version ${version} (flink-sql/${versionPrefix}) is not released: it has no entries in flink-sql/${STATEMENT_LOCK_FILE}. Run \`npx tsx flink-sql/release.ts ${pipeline} ${version}\` and commit the lock file; unreleased versions deploy only where flink.allowUnreleasedVersions is true (never production).`,
    );
  }
  for (const candidate of candidates) {
    const path = candidate.file.relativePath;
    const entry = lock.statements[path];
    if (!entry) {
      throw new StatementLockError(path, `flink-sql/${path} was added to released version ${version} of ${pipeline}. ${bump}`);
    }
    const actual = fingerprint(candidate.file.template);
    if (entry.sha256 !== actual) {
      throw new StatementLockError(
        path,
        `flink-sql/${path} changed after release (sha256 ${actual.slice(0, 12)}…, released ${entry.sha256.slice(0, 12)}…). ${bump}`,
      );
    }
    if (!sameRecord(entry.parameters, candidate.parameters)) {
      throw new StatementLockError(
        path,
        `flink-sql/${path} was released with parameters ${describeRecord(entry.parameters)} but the configuration now renders ${describeRecord(candidate.parameters)}: that changes the deployed SQL. ${bump}`,
      );
    }
    if (!sameRecord(entry.properties, candidate.properties)) {
      throw new StatementLockError(
        path,
        `flink-sql/${path} was released with properties ${describeRecord(entry.properties)} but would now deploy with ${describeRecord(candidate.properties)}; Confluent rejects property changes on a running statement. ${bump}`,
      );
    }
  }
  for (const locked of lockedPaths) {
    if (!candidates.some((c) => c.file.relativePath === locked)) {
      throw new StatementLockError(locked, `flink-sql/${locked} is released but the file is gone. ${bump}`);
    }
  }
}
