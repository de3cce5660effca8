import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Construct } from 'constructs';
import { Fn } from 'cdktf';
import { LambdaInvocation } from '@cdktf/provider-aws/lib/lambda-invocation';
import { MissingBundleError } from './errors';
import type { WorkerFunction } from './worker-function';

/** sha256 over (name, content) of every `*.sql` file in `directory`, in name order. */
export function migrationsDigest(directory: string): { digest: string; files: string[] } {
  const files = existsSync(directory)
    ? readdirSync(directory)
        .filter((file) => file.endsWith('.sql'))
        .sort()
    : [];
  const hash = createHash('sha256');
  for (const file of files)
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(directory, file)))
      .update('\0');
  return { digest: hash.digest('hex'), files };
}

/** Props of {@link SchemaMigration}. */
export interface SchemaMigrationProps {
  /** The db-migrate function (its bundle carries the SQL files under `migrations/`). */
  readonly migrator: WorkerFunction;
  /** The db-migrate bundle directory, whose `migrations/` is hashed. */
  readonly bundleDirectory: string;
  /**
   * Secrets whose replacement must re-run db-migrate (the function roles' secrets: a new
   * secret means a new password to set on its role).
   * @default - none
   */
  readonly rerunOnSecrets?: readonly string[];
}

/**
 * Runs the database migrations during `terraform apply`, exactly when they change: the
 * invocation's trigger is the digest of the SQL files shipped in the db-migrate bundle, so an
 * unchanged schema is not re-invoked, and a failing migration fails the apply. Consumers are
 * created after it (see `KafkaTrigger.after`), so no batch meets an unmigrated schema.
 */
export class SchemaMigration extends Construct {
  /** Digest of the migrations this deploy applies. */
  public readonly digest: string;
  /** The invocation, for `dependsOn`. */
  public readonly invocation: LambdaInvocation;

  constructor(scope: Construct, id: string, props: SchemaMigrationProps) {
    super(scope, id);
    const directory = join(props.bundleDirectory, 'migrations');
    const { digest, files } = migrationsDigest(directory);
    if (files.length === 0) {
      throw new MissingBundleError('db-migrate', props.bundleDirectory, 'migrations/*.sql');
    }
    this.digest = digest;
    this.invocation = new LambdaInvocation(this, 'run', {
      functionName: props.migrator.functionName,
      input: JSON.stringify({ action: 'migrate', migrations: files, digest }),
      triggers: {
        migrations: digest,
        ...(props.rerunOnSecrets && props.rerunOnSecrets.length > 0 ? { roleSecrets: Fn.join(',', [...props.rerunOnSecrets]) } : {}),
      },
      dependsOn: [props.migrator.resource, props.migrator.rolePolicy],
    });
  }
}
