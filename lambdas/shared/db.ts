import { Client, ClientConfig, Pool, PoolClient, PoolConfig, QueryResult, QueryResultRow } from 'pg';
import { DatabaseConfig } from './env';
import { DatabaseUnavailableError } from './errors';
import { readCredentials, SECRETS_MANAGER, SecretReader } from './secrets';

/** Gives the handler its pool; the AWS variant reads the secret on first use. */
export type PoolProvider = () => Promise<Pool>;

/**
 * A pg client with an 'error' listener from birth. The pool only listens while a client is idle;
 * a FATAL (57P01 when the backend is terminated, a failover) that arrives in the same read as
 * the startup's ReadyForQuery is emitted after the pool removed its listener and before the
 * handler got the client, and an unheard 'error' event crashes the process. The failure still
 * reaches the handler: the next query on the dead connection rejects.
 */
export class ListenedClient extends Client {
  constructor(config?: string | ClientConfig) {
    super(config);
    this.on('error', () => undefined);
  }
}

/** Pool settings every worker shares. */
const COMMON: PoolConfig = {
  Client: ListenedClient,
  // One connection per container: Lambda runs one invocation at a time per container, and a
  // bigger pool only multiplies connections against RDS.
  max: 1,
  connectionTimeoutMillis: 5000,
  idleTimeoutMillis: 0,
  // A hung statement must fail the batch (so it is retried) well before the Lambda timeout.
  statement_timeout: 30000,
  query_timeout: 35000,
  application_name: 'adstream-worker',
};

/**
 * Creates the module-scope pool provider. Locally the pool connects to `DATABASE_URL`; in AWS
 * it reads `{"username","password"}` from the RDS-managed secret and connects with TLS,
 * verifying the server certificate against the CA bundle Lambda installs
 * (`NODE_EXTRA_CA_CERTS`).
 */
export function createPoolProvider(config: DatabaseConfig, overrides: PoolConfig = {}, secrets: SecretReader = SECRETS_MANAGER): PoolProvider {
  let pool: Promise<Pool> | undefined;
  return () => {
    pool ??= build(config, overrides, secrets).catch((error: unknown) => {
      pool = undefined;
      throw error;
    });
    return pool;
  };
}

async function build(config: DatabaseConfig, overrides: PoolConfig, secrets: SecretReader): Promise<Pool> {
  if (config.kind === 'url') {
    return withErrorListener(new Pool({ ...COMMON, connectionString: config.url, ...overrides }));
  }
  const credentials = await readCredentials(config.secretArn, secrets);
  const reauthenticate = async (pool: Pool): Promise<void> => {
    secrets.invalidate(config.secretArn);
    // The pool builds every new client from its options: the user name follows the secret too.
    pool.options.user = (await readCredentials(config.secretArn, secrets)).username;
  };
  return withErrorListener(
    new ReauthenticatingPool(reauthenticate, {
      ...COMMON,
      host: config.host,
      port: config.port,
      database: config.database,
      user: credentials.username,
      // A function, so a connection opened after rotation uses the current password.
      password: async () => (await readCredentials(config.secretArn, secrets)).password,
      ssl: { rejectUnauthorized: true, servername: config.host },
      ...overrides,
    }),
  );
}

/** Postgres SQLSTATE of a refused password (`invalid_password`). */
const INVALID_PASSWORD = '28P01';

/**
 * A pool that, when the server refuses the password, re-reads the secret once and connects
 * again. After a rotation the container's cached password is stale until its cache expires;
 * without this every new connection fails for up to ten minutes. Covers `pool.connect()` and
 * `pool.query()` (which connects through `connect`).
 */
class ReauthenticatingPool extends Pool {
  constructor(
    private readonly reauthenticate: (pool: Pool) => Promise<void>,
    config: PoolConfig,
  ) {
    super(config);
  }

  override connect(): Promise<PoolClient>;
  override connect(callback: (err: Error | undefined, client: PoolClient | undefined, done: (release?: unknown) => void) => void): void;
  override connect(callback?: (err: Error | undefined, client: PoolClient | undefined, done: (release?: unknown) => void) => void): Promise<PoolClient> | void {
    const connected = this.connectOrReauthenticate();
    if (!callback) return connected;
    connected.then(
      (client) => callback(undefined, client, (release?: unknown) => client.release(release as Error | boolean | undefined)),
      (error: Error) => callback(error, undefined, () => undefined),
    );
  }

  private async connectOrReauthenticate(): Promise<PoolClient> {
    try {
      return await super.connect();
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code !== INVALID_PASSWORD) throw error;
      await this.reauthenticate(this);
      return super.connect();
    }
  }
}

function withErrorListener(pool: Pool): Pool {
  // An idle client dropped by the server emits 'error' on the pool; without a listener that
  // crashes the process. The next query simply opens a new connection.
  pool.on('error', () => undefined);
  return pool;
}

/** A client inside a transaction that counts its round trips (the benchmark reports them). */
export interface TransactionClient {
  /** Runs one statement. */
  query: PoolClient['query'];
  /** Statements sent so far, BEGIN and COMMIT included. */
  readonly roundTrips: () => number;
}

/**
 * Runs `work` in one transaction on a pooled connection. Any failure rolls back, discards the
 * connection if it broke, and surfaces as `DatabaseUnavailableError` so the batch is retried
 * with nothing half-applied.
 */
export async function withTransaction<T>(
  pools: PoolProvider,
  operation: string,
  work: (client: TransactionClient) => Promise<T>,
): Promise<{ result: T; roundTrips: number }> {
  const { client, release } = await checkOut(pools, operation);
  let roundTrips = 0;
  const counted: TransactionClient = {
    query: ((...args: Parameters<PoolClient['query']>) => {
      roundTrips++;
      return (client.query as (...a: unknown[]) => unknown)(...args);
    }) as PoolClient['query'],
    roundTrips: () => roundTrips,
  };
  try {
    await counted.query('BEGIN');
    const result = await work(counted);
    await counted.query('COMMIT');
    release();
    return { result, roundTrips };
  } catch (cause) {
    let broken: Error | undefined;
    try {
      await client.query('ROLLBACK');
    } catch (rollbackError) {
      broken = rollbackError as Error;
    }
    // Passing an error destroys the connection instead of returning a broken one to the pool.
    release(broken ?? (isConnectionError(cause) ? (cause as Error) : undefined));
    if (cause instanceof DatabaseUnavailableError) throw cause;
    throw new DatabaseUnavailableError(operation, { cause });
  }
}

/** A pooled connection with its guarded release; a failure to get one is `DatabaseUnavailableError`. */
async function checkOut(pools: PoolProvider, operation: string): Promise<{ client: PoolClient; release: (error?: Error) => void }> {
  let client: PoolClient;
  try {
    const pool = await pools();
    client = await pool.connect();
  } catch (cause) {
    throw new DatabaseUnavailableError(operation, { cause });
  }
  return { client, release: guardCheckedOutClient(client) };
}

function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || code.startsWith('08') || code.startsWith('57');
}

/**
 * Runs one statement outside an explicit transaction (it commits on its own, in the same round
 * trip) on a pooled connection. A failure discards the connection if it broke and surfaces as
 * `DatabaseUnavailableError` whose `cause` is the driver's error (with its SQLSTATE `code`).
 */
export async function runStatement<R extends QueryResultRow>(pools: PoolProvider, operation: string, text: string, values: unknown[]): Promise<QueryResult<R>> {
  const { client, release } = await checkOut(pools, operation);
  try {
    const result = await client.query<R>(text, values);
    release();
    return result;
  } catch (cause) {
    release(isConnectionError(cause) ? (cause as Error) : undefined);
    throw new DatabaseUnavailableError(operation, { cause });
  }
}

/**
 * A checked-out client whose connection dies emits 'error'; the pool only listens while the
 * client is idle, and an unheard 'error' event crashes the process. The failing query rejects
 * anyway, which is where the handler deals with it. Returns the release function to call.
 */
export function guardCheckedOutClient(client: PoolClient): (error?: Error) => void {
  const ignore = (): void => undefined;
  client.on('error', ignore);
  return (error?: Error) => {
    client.removeListener('error', ignore);
    client.release(error);
  };
}
