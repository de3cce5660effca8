import type { ClientBase } from 'pg';
import { ConfigError } from '../shared/errors';
import { readCredentials, type Credentials } from '../shared/secrets';

/** What a function role's name may look like (the migrations create `adstream_<function>`). */
const ROLE_NAME = /^adstream_[a-z][a-z_]{0,50}$/;
/** Secrets Manager secret ARN. */
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;

/**
 * ARNs of the function roles' `{"username","password"}` secrets, from
 * `DATABASE_ROLE_SECRET_ARNS` (comma-separated; set by the workers stack on db-migrate only).
 * Absent locally: the roles then keep no password (tests connect through trust auth).
 */
export function parseRoleSecretArns(source: Readonly<Record<string, string | undefined>>): string[] {
  const raw = source.DATABASE_ROLE_SECRET_ARNS?.trim();
  if (!raw) return [];
  const arns = raw.split(',').map((arn) => arn.trim());
  const bad = arns.filter((arn) => !SECRET_ARN.test(arn));
  if (bad.length > 0)
    throw new ConfigError(
      'DATABASE_ROLE_SECRET_ARNS',
      `must be comma-separated Secrets Manager ARNs; ${bad.length} entr${bad.length === 1 ? 'y is' : 'ies are'} not`,
    );
  return arns;
}

/** Reads every role secret (cached per container like every secret). */
export function readRoleCredentials(arns: readonly string[]): Promise<Credentials[]> {
  return Promise.all(arns.map((arn) => readCredentials(arn)));
}

/**
 * Lets each function role log in with the password in its secret. Runs after the migrations
 * (which create the roles) on the migrator's connection; never logs a password. Returns the
 * roles updated. A role the migrations did not create is refused, not created here.
 */
export async function applyRolePasswords(client: ClientBase, credentials: readonly Credentials[]): Promise<string[]> {
  const updated: string[] = [];
  for (const { username, password } of credentials) {
    if (!ROLE_NAME.test(username)) throw new Error(`role secret names ${JSON.stringify(username)}, which is not a function role (adstream_<function>)`);
    const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [username]);
    if (exists.rowCount === 0) throw new Error(`role ${username} does not exist; the migrations create the function roles`);
    // ALTER ROLE takes no bind parameters: quote both, as the driver does for literals.
    await client.query(`ALTER ROLE ${client.escapeIdentifier(username)} WITH LOGIN PASSWORD ${client.escapeLiteral(password)}`);
    updated.push(username);
  }
  return updated;
}
