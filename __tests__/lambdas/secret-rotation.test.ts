import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createPoolProvider, withTransaction } from '../../lambdas/shared/db';
import { DatabaseUnavailableError } from '../../lambdas/shared/errors';
import type { SecretReader } from '../../lambdas/shared/secrets';
import { PasswordPostgres, startPasswordPostgres } from './support/password-postgres';

/**
 * A stand-in for Secrets Manager behind the per-container cache: `stored` is what Secrets
 * Manager holds, a read serves the cached value until it is invalidated.
 */
class FakeSecrets implements SecretReader {
  fetches = 0;
  invalidations = 0;
  private cached = new Map<string, string>();
  constructor(public readonly stored: Map<string, string>) {}
  async read(secretArn: string): Promise<string> {
    let value = this.cached.get(secretArn);
    if (value === undefined) {
      this.fetches++;
      value = this.stored.get(secretArn);
      if (value === undefined) throw new Error(`no secret ${secretArn}`);
      this.cached.set(secretArn, value);
    }
    return value;
  }
  invalidate(secretArn: string): void {
    this.invalidations++;
    this.cached.delete(secretArn);
  }
}

const SECRET_ARN = 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:rds!db-opslogs';
const ROLE = 'adstream_opslogs_rotating';

let server: PasswordPostgres;
let admin: Client;

beforeAll(async () => {
  server = await startPasswordPostgres('opslogs');
  admin = new Client({ connectionString: server.superuserUrl });
  await admin.connect();
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
});

const credentials = (password: string) => JSON.stringify({ username: ROLE, password });

async function setPassword(password: string): Promise<void> {
  await admin.query(`ALTER ROLE ${ROLE} PASSWORD '${password}'`);
  // Existing sessions survive a password change; the next connection is what fails.
  await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [ROLE]);
  // Let the pool see its idle connection die (it drops it on the 'error' event).
  await new Promise((resolve) => setTimeout(resolve, 300));
}

describe('RDS secret rotation', () => {
  test('a rotated password is picked up at the first authentication failure (28P01), not after the cache expires', async () => {
    const first = randomBytes(8).toString('hex');
    await admin.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${first}'`);
    const secrets = new FakeSecrets(new Map([[SECRET_ARN, credentials(first)]]));
    const pools = createPoolProvider(
      { kind: 'secret', secretArn: SECRET_ARN, host: '127.0.0.1', port: server.port, database: 'postgres' },
      { ssl: false },
      secrets,
    );
    const whoAmI = () => withTransaction(pools, 'reading the user', async (client) => (await client.query('SELECT current_user AS u')).rows[0].u);
    try {
      expect((await whoAmI()).result).toBe(ROLE);
      expect(secrets.fetches).toBe(1);

      // Rotation: the database gets the new password and Secrets Manager the new value; the
      // container still holds the old one in its cache.
      const second = randomBytes(8).toString('hex');
      await setPassword(second);
      secrets.stored.set(SECRET_ARN, credentials(second));

      expect((await whoAmI()).result).toBe(ROLE);
      expect(secrets.invalidations).toBe(1);
      expect(secrets.fetches).toBe(2);

      // Plain pool queries (the sweep, the reconciliation) recover the same way.
      const third = randomBytes(8).toString('hex');
      await setPassword(third);
      secrets.stored.set(SECRET_ARN, credentials(third));
      expect((await (await pools()).query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect(secrets.fetches).toBe(3);
    } finally {
      await (await pools()).end();
    }
  });

  test('a password that is wrong in Secrets Manager too fails after one re-read, with the 28P01 cause', async () => {
    const secrets = new FakeSecrets(new Map([[SECRET_ARN, credentials('not-the-password')]]));
    const pools = createPoolProvider(
      { kind: 'secret', secretArn: SECRET_ARN, host: '127.0.0.1', port: server.port, database: 'postgres' },
      { ssl: false },
      secrets,
    );
    try {
      const failure = await withTransaction(pools, 'reading the user', async (client) => client.query('SELECT 1')).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(DatabaseUnavailableError);
      expect((failure as Error & { cause: { code: string } }).cause.code).toBe('28P01');
      expect(secrets.fetches).toBe(2);
      expect(secrets.invalidations).toBe(1);
    } finally {
      await (await pools()).end();
    }
  });
});
