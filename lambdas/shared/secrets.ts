import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretError } from './errors';

/** Username and password as RDS-managed and Confluent API-key secrets store them. */
export interface Credentials {
  /** User name or API key. */
  readonly username: string;
  /** Password or API secret. */
  readonly password: string;
}

let client: SecretsManagerClient | undefined;
const cache = new Map<string, { value: string; fetchedAt: number }>();

/** Cached secrets are re-read after this long, so a rotated password is picked up. */
const SECRET_TTL_MS = 10 * 60 * 1000;

/** Reads a secret string, caching it per container for `SECRET_TTL_MS`. */
export async function readSecretString(secretArn: string): Promise<string> {
  const cached = cache.get(secretArn);
  if (cached && Date.now() - cached.fetchedAt < SECRET_TTL_MS) return cached.value;
  client ??= new SecretsManagerClient({});
  let value: string | undefined;
  try {
    const result = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
    value = result.SecretString;
  } catch (cause) {
    throw new SecretError(secretArn, 'could not be read from Secrets Manager', { cause });
  }
  if (!value) throw new SecretError(secretArn, 'has no SecretString');
  cache.set(secretArn, { value, fetchedAt: Date.now() });
  return value;
}

/**
 * Forgets the cached value of `secretArn`, so the next read asks Secrets Manager. Called when
 * the server refused the credentials (the secret was rotated since it was cached).
 */
export function invalidateSecret(secretArn: string): void {
  cache.delete(secretArn);
}

/** Where the connection code reads secrets from: Secrets Manager (cached), or a fake in tests. */
export interface SecretReader {
  /** The secret string, possibly from the per-container cache. */
  read(secretArn: string): Promise<string>;
  /** Drops the cached value so the next `read` fetches the current one. */
  invalidate(secretArn: string): void;
}

/** Secrets Manager through the per-container cache. */
export const SECRETS_MANAGER: SecretReader = { read: readSecretString, invalidate: invalidateSecret };

/** Reads a `{"username","password"}` secret. */
export async function readCredentials(secretArn: string, secrets: SecretReader = SECRETS_MANAGER): Promise<Credentials> {
  const raw = await secrets.read(secretArn);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (cause) {
    // The parser's message could quote the secret; keep only our own words.
    throw new SecretError(secretArn, 'is not JSON; expected {"username","password"}', { cause: (cause as Error).name });
  }
  const record = parsed as Record<string, unknown> | null;
  if (typeof record?.username !== 'string' || typeof record.password !== 'string') {
    throw new SecretError(secretArn, 'must be JSON with string "username" and "password"');
  }
  return { username: record.username, password: record.password };
}

/** Reads a Redis AUTH token stored as a plain string or as `{"password"}` / `{"token"}`. */
export async function readAuthToken(secretArn: string, secrets: SecretReader = SECRETS_MANAGER): Promise<string> {
  const raw = await secrets.read(secretArn);
  if (!raw.trimStart().startsWith('{')) return raw;
  try {
    const record = JSON.parse(raw) as Record<string, unknown>;
    const token = record.password ?? record.token ?? record.auth_token;
    if (typeof token === 'string') return token;
  } catch {
    // fall through to the typed error below
  }
  throw new SecretError(secretArn, 'must be the AUTH token or JSON with a "password" or "token" string');
}
