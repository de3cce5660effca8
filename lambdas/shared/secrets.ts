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

/** Reads a `{"username","password"}` secret. */
export async function readCredentials(secretArn: string): Promise<Credentials> {
  const raw = await readSecretString(secretArn);
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
export async function readAuthToken(secretArn: string): Promise<string> {
  const raw = await readSecretString(secretArn);
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
