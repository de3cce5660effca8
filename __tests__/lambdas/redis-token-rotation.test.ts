import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { createRedisClientProvider, RedisCache } from '../../lambdas/shared/redis';
import type { SecretReader } from '../../lambdas/shared/secrets';
import { cleanKeyspace, TEST_REDIS_URL, testKeyPrefix } from './support/test-database';

/** Secrets Manager behind the per-container cache: a read serves the cached token until invalidated. */
class FakeSecrets implements SecretReader {
  fetches = 0;
  private cached: string | undefined;
  constructor(public stored: string) {}
  async read(): Promise<string> {
    if (this.cached === undefined) {
      this.fetches++;
      this.cached = this.stored;
    }
    return this.cached;
  }
  invalidate(): void {
    this.cached = undefined;
  }
}

const SECRET_ARN = 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:adstream/dev/redis-auth';

// The shared Redis must keep its own (passwordless) default user: the rotation is played on an
// ACL user of this file's own, which the client logs in as, the way an ElastiCache client logs
// in to the default user with the AUTH token.
const user = `adstream_opslogs_${randomBytes(4).toString('hex')}`;
const prefix = testKeyPrefix();
let admin: Redis;

beforeAll(async () => {
  admin = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  await admin.call('ACL', 'DELUSER', user);
  await cleanKeyspace(prefix);
  admin.disconnect();
});

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

describe('Redis AUTH token rotation', () => {
  test('after ROTATE then SET, a reconnect refused with WRONGPASS re-reads the token and the cache works again', async () => {
    const oldToken = randomBytes(12).toString('hex');
    const newToken = randomBytes(12).toString('hex');
    await admin.call('ACL', 'SETUSER', user, 'on', `>${oldToken}`, `~${prefix}*`, '+@all');
    const secrets = new FakeSecrets(oldToken);
    const provider = createRedisClientProvider(
      { kind: 'tls', host: '127.0.0.1', port: Number(new URL(TEST_REDIS_URL).port || 6379), authSecretArn: SECRET_ARN },
      prefix,
      { tls: undefined, username: user },
      secrets,
    );
    // A short down window, so the test does not wait out the production 30 s.
    const cache = new RedisCache(provider, 50);
    try {
      expect(await cache.setMany([{ key: 'k', value: 'before' }])).toBe(true);

      // ROTATE: both tokens valid; Secrets Manager gets the new one. SET: the old one is gone.
      await admin.call('ACL', 'SETUSER', user, `>${newToken}`);
      secrets.stored = newToken;
      expect(await cache.setMany([{ key: 'k', value: 'during' }])).toBe(true);
      await admin.call('ACL', 'SETUSER', user, `<${oldToken}`);
      // A connection made before SET stays logged in; the container reconnects sooner or later.
      await admin.call('CLIENT', 'KILL', 'USER', user);

      expect(await eventually(() => cache.setMany([{ key: 'k', value: 'after' }]))).toBe(true);
      expect(await admin.get(`${prefix}k`)).toBe('after');
      expect(secrets.fetches).toBe(2);
    } finally {
      await cache.close();
    }
  });
});
