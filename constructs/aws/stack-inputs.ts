import type { PostgresEndpoint, RedisEndpoint, WorkerSubnets } from './endpoints';

/**
 * What the workers stack takes from the storage stack. `StorageStack` implements it, so the
 * workers stack gets typed references to the storage stack's resources; cdktf turns each one
 * into a cross-stack reference (an output there, a `terraform_remote_state` read here), and
 * nobody copies outputs by hand.
 */
export interface StorageHandoff {
  /** The VPC and private subnets the functions run in. */
  readonly network: WorkerSubnets;
  /** The ledger database (or its proxy). */
  readonly database: PostgresEndpoint;
  /** The cache. */
  readonly cache: RedisEndpoint;
}

/** What the workers stack takes from the streaming stack (implemented by `StreamingStack`). */
export interface StreamingHandoff {
  /** Kafka bootstrap `host:port`, scheme stripped. */
  readonly bootstrapServers: string;
  /** Secrets Manager ARN of the workers' consumer key (Lambda BASIC_AUTH). */
  readonly consumerSecretArn: string;
  /** Secrets Manager ARN of the workers' producer key (outbox publisher). */
  readonly producerSecretArn: string;
  /**
   * The consumer's other key slot. The functions may read it too, so that switching the
   * active slot (a key rotation) never meets a role that cannot read the new secret yet.
   */
  readonly standbyConsumerSecretArn: string;
  /** The producer's other key slot (see `standbyConsumerSecretArn`). */
  readonly standbyProducerSecretArn: string;
  /**
   * Schema Registry id of the `campaign-events` value schema. Required: the outbox writes it in
   * the Confluent wire header that `json-registry` readers (the ranking statement) need.
   */
  readonly campaignEventsSchemaId: number;
}

/**
 * Names of the storage stack's outputs. They are for people and tools (`terraform output`);
 * the workers stack does not read them, it uses cdktf cross-stack references.
 */
export const STORAGE_OUTPUTS = {
  vpcId: 'vpc_id',
  privateSubnetIds: 'private_subnet_ids',
  databaseHost: 'database_host',
  databasePort: 'database_port',
  databaseName: 'database_name',
  databaseSecretArn: 'database_secret_arn',
  databaseSecurityGroupId: 'database_security_group_id',
  redisHost: 'redis_host',
  redisPort: 'redis_port',
  redisAuthSecretArn: 'redis_auth_secret_arn',
  redisSecurityGroupId: 'redis_security_group_id',
} as const;
