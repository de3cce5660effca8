import Redis, { RedisOptions } from 'ioredis';
import { RedisConfig } from './env';
import { readAuthToken, SECRETS_MANAGER, SecretReader } from './secrets';

/**
 * Fail-fast client settings (ioredis 5 option names). The cache is never needed for
 * correctness, so a slow or absent Redis must cost a bounded few hundred milliseconds, not a
 * queue of commands waiting for a reconnect.
 */
export const FAIL_FAST_OPTIONS: RedisOptions = {
  lazyConnect: true,
  connectTimeout: 500,
  commandTimeout: 250,
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  // How long disconnect() waits for a socket to close before destroying it (default 2 s).
  disconnectTimeout: 200,
  // Keep reconnecting in the background; while it is down, calls skip Redis immediately.
  retryStrategy: (times: number) => Math.min(times * 200, 2000),
};

/**
 * How long the cache skips Redis after a failed command. A hung Redis (connected, never
 * answering) would otherwise cost a command timeout on every batch; a refused connection is
 * skipped at once already, while ioredis reconnects in the background.
 */
export const REDIS_DOWN_FOR_MS = 30_000;

/** One key to write, with its time to live. */
export interface CacheEntry {
  /** Key without the keyspace prefix. */
  readonly key: string;
  /** String value. */
  readonly value: string;
  /** Expiry in seconds; omitted keeps the key until overwritten. */
  readonly ttlSeconds?: number;
}

/**
 * `SET KEYS[i] ARGV[i]`, with `EX ARGV[n + i]` unless that is 0, for every key. Keys are listed
 * as KEYS, so the client's key prefix applies to them as it does to `SET`.
 */
const SET_MANY_SCRIPT = `
local n = #KEYS
for i = 1, n do
  local ttl = tonumber(ARGV[n + i])
  if ttl > 0 then
    redis.call('SET', KEYS[i], ARGV[i], 'EX', ttl)
  else
    redis.call('SET', KEYS[i], ARGV[i])
  end
end
return n`;

/** Called when Redis fails, so the handler can log it once and count it. */
export type CacheFailureListener = (operation: string, error: unknown) => void;

/**
 * The Redis cache as the handlers use it: every call either succeeds or reports "unavailable"
 * (`undefined` / `false`) within a bounded time; it never throws.
 */
export class RedisCache {
  private failureListener: CacheFailureListener = () => undefined;
  /** Until when (epoch ms) Redis counts as down after a failed command. */
  private downUntil = 0;

  constructor(
    /** The client, or undefined when no Redis is configured. */
    private readonly clientProvider: (() => Promise<Redis>) | undefined,
    /**
     * After a failed command (a timeout from a hung Redis, an error), how long the cache skips
     * Redis without trying, as it does while a refused connection reconnects. @default 30 000
     */
    private readonly downForMs = REDIS_DOWN_FOR_MS,
  ) {}

  /** True (and reported) while Redis counts as down: the call skips it at once. */
  private skipWhileDown(operation: string): boolean {
    if (Date.now() >= this.downUntil) return false;
    this.failureListener(operation, new Error('Redis marked down after a failed command; skipped'));
    return true;
  }

  private markDown(operation: string, error: unknown): void {
    this.downUntil = Date.now() + this.downForMs;
    this.failureListener(operation, error);
  }

  /** A cache with no Redis behind it (every read misses, every write is dropped). */
  static disabled(): RedisCache {
    return new RedisCache(undefined);
  }

  /** Registers who hears about failures (the handler's logger and metrics). */
  onFailure(listener: CacheFailureListener): this {
    this.failureListener = listener;
    return this;
  }

  /** Values of `keys` in order (`null` for a missing key), or `undefined` if Redis is unavailable. */
  async getMany(keys: readonly string[]): Promise<(string | null)[] | undefined> {
    if (keys.length === 0) return [];
    if (this.skipWhileDown('MGET')) return undefined;
    const client = await this.readyClient('MGET');
    if (!client) return undefined;
    try {
      return await client.mget(...keys);
    } catch (error) {
      this.markDown('MGET', error);
      return undefined;
    }
  }

  /**
   * Writes entries in one command (a script setting every key, with its expiry); `false` if
   * Redis is unavailable or the write failed. One command instead of a pipeline of one `SET` per
   * key: the client builds, sends and parses one command per batch however many keys it holds.
   */
  async setMany(entries: readonly CacheEntry[]): Promise<boolean> {
    if (entries.length === 0) return true;
    if (this.skipWhileDown('SET')) return false;
    const client = await this.readyClient('SET');
    if (!client) return false;
    const keys: string[] = new Array<string>(entries.length);
    const args: string[] = new Array<string>(entries.length * 2);
    entries.forEach((entry, i) => {
      keys[i] = entry.key;
      args[i] = entry.value;
      args[entries.length + i] = entry.ttlSeconds ? String(entry.ttlSeconds) : '0';
    });
    try {
      await client.eval(SET_MANY_SCRIPT, keys.length, ...keys, ...args);
      return true;
    } catch (error) {
      this.markDown('SET', error);
      return false;
    }
  }

  /** Deletes keys; `false` if Redis is unavailable. */
  async deleteMany(keys: readonly string[]): Promise<boolean> {
    if (keys.length === 0) return true;
    if (this.skipWhileDown('DEL')) return false;
    const client = await this.readyClient('DEL');
    if (!client) return false;
    try {
      await client.del(...keys);
      return true;
    } catch (error) {
      this.markDown('DEL', error);
      return false;
    }
  }

  /** The underlying client when it is connected, for handlers that need other commands. */
  async readyClient(operation = 'CONNECT'): Promise<Redis | undefined> {
    if (!this.clientProvider) return undefined;
    let client: Redis;
    try {
      client = await this.clientProvider();
    } catch (error) {
      this.failureListener(operation, error);
      return undefined;
    }
    if (client.status === 'ready') return client;
    if (client.status === 'wait') {
      // First use in this container: connect, bounded by connectTimeout.
      try {
        await client.connect();
      } catch (error) {
        this.failureListener(operation, error);
        return undefined;
      }
      return (client.status as string) === 'ready' ? client : undefined;
    }
    // Reconnecting in the background: skip the cache now rather than wait for it.
    this.failureListener(operation, new Error(`Redis is ${client.status}`));
    return undefined;
  }

  /** Closes the connection (tests; Lambda keeps it for the next invocation). */
  async close(): Promise<void> {
    if (!this.clientProvider) return;
    const client = await this.clientProvider().catch(() => undefined);
    client?.disconnect();
  }
}

/**
 * Creates the module-scope Redis client provider. Locally from `REDIS_URL`; in AWS with TLS
 * (certificate verified) and the AUTH token from Secrets Manager. `keyPrefix` isolates a
 * keyspace (tests); `overrides` apply last.
 */
export function createRedisClientProvider(
  config: RedisConfig,
  keyPrefix: string,
  overrides: RedisOptions = {},
  secrets: SecretReader = SECRETS_MANAGER,
): () => Promise<Redis> {
  let client: Promise<Redis> | undefined;
  return () => {
    client ??= build(config, keyPrefix, overrides, secrets).catch((error: unknown) => {
      client = undefined;
      throw error;
    });
    return client;
  };
}

async function build(config: RedisConfig, keyPrefix: string, overrides: RedisOptions, secrets: SecretReader): Promise<Redis> {
  const options: RedisOptions = { ...FAIL_FAST_OPTIONS, keyPrefix };
  const client =
    config.kind === 'url'
      ? new Redis(config.url, { ...options, ...overrides })
      : new Redis({
          ...options,
          host: config.host,
          port: config.port,
          password: config.authSecretArn ? await readAuthToken(config.authSecretArn, secrets) : undefined,
          tls: { servername: config.host },
          ...overrides,
        });
  // Without a listener ioredis prints every reconnect failure; the cache reports them itself.
  client.on('error', () => undefined);
  if (config.kind === 'tls' && config.authSecretArn) refreshTokenOnAuthFailure(client, config.authSecretArn, secrets);
  return client;
}

/** A re-read of the AUTH token after a refusal waits at least this long after the previous one. */
export const AUTH_TOKEN_REREAD_MS = 10_000;

/**
 * During an ElastiCache token rotation (ROTATE, then SET) the container's cached token goes
 * stale: connections made before SET stay logged in, but the next reconnect is refused
 * (WRONGPASS, or NOAUTH). ioredis reconnects by itself with `options.password`, so on a refusal
 * the token is re-read from Secrets Manager (at most once per AUTH_TOKEN_REREAD_MS) and the
 * next attempt uses it.
 */
function refreshTokenOnAuthFailure(client: Redis, secretArn: string, secrets: SecretReader): void {
  let lastRead = 0;
  client.on('error', (error: Error) => {
    if (!/^(WRONGPASS|NOAUTH)/.test(error?.message ?? '') || Date.now() - lastRead < AUTH_TOKEN_REREAD_MS) return;
    lastRead = Date.now();
    secrets.invalidate(secretArn);
    readAuthToken(secretArn, secrets).then(
      (token) => {
        client.options.password = token;
      },
      // Secrets Manager unreachable: the next refusal after the interval tries again.
      () => undefined,
    );
  });
}
