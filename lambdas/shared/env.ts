import { ConfigError } from './errors';

/** How a handler reaches Postgres. */
export type DatabaseConfig =
  | {
      /** Local development and tests: a plain connection string. */
      readonly kind: 'url';
      /** `postgres://user@host:port/db`. */
      readonly url: string;
    }
  | {
      /** AWS: credentials from the RDS-managed Secrets Manager secret, TLS with certificate checks. */
      readonly kind: 'secret';
      /** ARN of the secret holding `{"username","password"}`. */
      readonly secretArn: string;
      /** RDS (or RDS Proxy) endpoint. */
      readonly host: string;
      /** Port, 5432 unless configured. */
      readonly port: number;
      /** Database name. */
      readonly database: string;
    };

/** How a handler reaches Redis; the cache is optional for correctness. */
export type RedisConfig =
  | {
      /** Local development and tests: `redis://host:port`. */
      readonly kind: 'url';
      /** Redis URL. */
      readonly url: string;
    }
  | {
      /** AWS ElastiCache with in-transit encryption and an AUTH token from Secrets Manager. */
      readonly kind: 'tls';
      /** Primary endpoint. */
      readonly host: string;
      /** Port, 6379 unless configured. */
      readonly port: number;
      /** ARN of the secret holding the AUTH token (plain string or `{"password"}` / `{"token"}`). */
      readonly authSecretArn?: string;
    };

/** Producer access to Confluent Cloud for the `campaign-events` topic. */
export interface KafkaProducerConfig {
  /** Bootstrap servers, scheme stripped (`host:9092`). */
  readonly brokers: readonly string[];
  /** ARN of the secret `{"username","password"}` (Confluent API key and secret). */
  readonly secretArn: string;
}

/** The validated environment of every worker Lambda. */
export interface WorkerEnv {
  /** Postgres access. */
  readonly database: DatabaseConfig;
  /** Redis access, absent when neither REDIS_URL nor REDIS_HOST is set (cache disabled). */
  readonly redis?: RedisConfig;
  /** Prefix of every Redis key (tests use it to isolate their keyspace). */
  readonly redisKeyPrefix: string;
  /** IANA zone whose calendar day is the budget day. */
  readonly budgetTimeZone: string;
  /** SNS topic for budget alerts and campaign status changes; unset keeps rows unpublished. */
  readonly alertsTopicArn?: string;
  /** Kafka producer for `campaign-events`; unset keeps rows unpublished for Kafka. */
  readonly kafkaProducer?: KafkaProducerConfig;
  /** Topic the campaign status events go to. */
  readonly campaignEventsTopic: string;
  /**
   * Schema Registry id of the `campaign-events` value schema. When set, values carry the
   * Confluent wire header so `json-registry` consumers (Flink) can read them.
   */
  readonly campaignEventsSchemaId?: number;
  /** Directory of the SQL migrations (db-migrate Lambda only). */
  readonly migrationsDir?: string;
}

type Source = Readonly<Record<string, string | undefined>>;

function optional(source: Source, name: string): string | undefined {
  const value = source[name]?.trim();
  return value ? value : undefined;
}

function port(source: Source, name: string, fallback: number): number {
  const raw = optional(source, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new ConfigError(name, `must be a TCP port (1-65535), got ${JSON.stringify(raw)}`);
  }
  return value;
}

function url(source: Source, name: string, schemes: readonly string[]): string | undefined {
  const raw = optional(source, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch (cause) {
    // Never echo the value: a connection string may carry a password.
    throw new ConfigError(name, `is not a valid URL (expected ${schemes.join(' or ')}://host:port/...)`, { cause });
  }
  if (!schemes.includes(parsed.protocol.replace(/:$/, ''))) {
    throw new ConfigError(name, `must use ${schemes.join(' or ')}://, got ${parsed.protocol}//`);
  }
  return raw;
}

function timeZone(source: Source): string {
  const zone = optional(source, 'BUDGET_TIME_ZONE') ?? 'Asia/Seoul';
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone: zone });
  } catch (cause) {
    throw new ConfigError('BUDGET_TIME_ZONE', `must be an IANA time zone such as Asia/Seoul, got ${JSON.stringify(zone)}`, { cause });
  }
  return zone;
}

function databaseConfig(source: Source): DatabaseConfig {
  const local = url(source, 'DATABASE_URL', ['postgres', 'postgresql']);
  if (local) return { kind: 'url', url: local };
  const secretArn = optional(source, 'DATABASE_SECRET_ARN');
  const host = optional(source, 'DATABASE_HOST');
  if (!secretArn || !host) {
    throw new ConfigError(
      'DATABASE_URL',
      'is not set; set DATABASE_URL locally, or DATABASE_SECRET_ARN + DATABASE_HOST (+ DATABASE_PORT, DATABASE_NAME) in AWS',
    );
  }
  return {
    kind: 'secret',
    secretArn,
    host,
    port: port(source, 'DATABASE_PORT', 5432),
    database: optional(source, 'DATABASE_NAME') ?? 'adstream',
  };
}

function redisConfig(source: Source): RedisConfig | undefined {
  const local = url(source, 'REDIS_URL', ['redis', 'rediss']);
  if (local) return { kind: 'url', url: local };
  const host = optional(source, 'REDIS_HOST');
  if (!host) return undefined;
  return {
    kind: 'tls',
    host,
    port: port(source, 'REDIS_PORT', 6379),
    authSecretArn: optional(source, 'REDIS_AUTH_SECRET_ARN'),
  };
}

function kafkaProducerConfig(source: Source): KafkaProducerConfig | undefined {
  const servers = optional(source, 'KAFKA_BOOTSTRAP_SERVERS');
  const secretArn = optional(source, 'KAFKA_PRODUCER_SECRET_ARN');
  if (!servers && !secretArn) return undefined;
  if (!servers || !secretArn) {
    throw new ConfigError(
      servers ? 'KAFKA_PRODUCER_SECRET_ARN' : 'KAFKA_BOOTSTRAP_SERVERS',
      'KAFKA_BOOTSTRAP_SERVERS and KAFKA_PRODUCER_SECRET_ARN go together; set both or neither',
    );
  }
  // Confluent reports SASL_SSL://host:9092; kafkajs wants host:port.
  const brokers = servers
    .split(',')
    .map((s) => s.trim().replace(/^[A-Za-z_]+:\/\//, ''))
    .filter((s) => s.length > 0);
  for (const broker of brokers) {
    if (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(broker)) {
      throw new ConfigError('KAFKA_BOOTSTRAP_SERVERS', `expects host:port[,host:port], got ${JSON.stringify(broker)}`);
    }
  }
  return { brokers, secretArn };
}

function schemaId(source: Source): number | undefined {
  const raw = optional(source, 'CAMPAIGN_EVENTS_SCHEMA_ID');
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw new ConfigError('CAMPAIGN_EVENTS_SCHEMA_ID', `must be a Schema Registry id (non-negative 32-bit integer), got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * Validates the worker environment. Pure (takes the variables as an argument) so tests can
 * check every message; handler modules call it once, at module load, through `loadRuntime`.
 */
export function parseWorkerEnv(source: Source): WorkerEnv {
  return {
    database: databaseConfig(source),
    redis: redisConfig(source),
    redisKeyPrefix: optional(source, 'REDIS_KEY_PREFIX') ?? '',
    budgetTimeZone: timeZone(source),
    alertsTopicArn: optional(source, 'ALERTS_TOPIC_ARN'),
    kafkaProducer: kafkaProducerConfig(source),
    campaignEventsTopic: optional(source, 'CAMPAIGN_EVENTS_TOPIC') ?? 'campaign-events',
    campaignEventsSchemaId: schemaId(source),
    migrationsDir: optional(source, 'MIGRATIONS_DIR'),
  };
}

/**
 * Only the database part of the worker environment (`DATABASE_URL`, or `DATABASE_SECRET_ARN`
 * with `DATABASE_HOST`…): for functions that read Postgres and nothing else (reconcile).
 */
export function parseDatabaseEnv(source: Source): DatabaseConfig {
  return databaseConfig(source);
}

/** The budget time zone (`BUDGET_TIME_ZONE`, default Asia/Seoul), checked. */
export function parseBudgetTimeZone(source: Source): string {
  return timeZone(source);
}
