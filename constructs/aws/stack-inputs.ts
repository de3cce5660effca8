import { Construct } from 'constructs';
import { TerraformVariable } from 'cdktf';
import type { PostgresEndpoint, RedisEndpoint, WorkerSubnets } from './endpoints';

/**
 * Names of the storage stack's outputs, which are also the names of the workers stack's input
 * variables: `cdktf output` of one becomes `TF_VAR_<name>` of the other (docs/deploy.md).
 */
export const STORAGE_HANDOFF = {
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

/** Names of the streaming stack's outputs the workers stack takes as variables (same names). */
export const STREAMING_HANDOFF = {
  bootstrapServers: 'kafka_bootstrap_servers',
  consumerSecretArn: 'workers_consumer_secret_arn',
  producerSecretArn: 'workers_producer_secret_arn',
  campaignEventsSchemaId: 'campaign_events_schema_id',
} as const;

const SECRET_ARN = '^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$';
const SECURITY_GROUP = '^sg-[0-9a-f]{8,17}$';
const HOST = '^[A-Za-z0-9.-]+$';

/** A variable whose Terraform name is exactly `name`, wherever the construct sits. */
function named(variable: TerraformVariable, name: string): TerraformVariable {
  variable.overrideLogicalId(name);
  return variable;
}

function stringVariable(scope: Construct, name: string, description: string, pattern: string, what: string): TerraformVariable {
  return named(new TerraformVariable(scope, name, {
    type: 'string',
    description,
    nullable: false,
    validation: [{ condition: `\${can(regex("${pattern}", var.${name}))}`, errorMessage: `${name} must be ${what}.` }],
  }), name);
}

function portVariable(scope: Construct, name: string, description: string): TerraformVariable {
  return named(new TerraformVariable(scope, name, {
    type: 'number',
    description,
    nullable: false,
    validation: [{ condition: `\${var.${name} >= 1 && var.${name} <= 65535 && floor(var.${name}) == var.${name}}`, errorMessage: `${name} must be a TCP port (1-65535).` }],
  }), name);
}

/**
 * The storage stack's outputs as typed, validated inputs of the workers stack. Variables (not
 * cdktf cross-stack references) keep the workers stack plannable without reading the storage
 * stack's remote state.
 */
export class StorageInputs extends Construct {
  /** The VPC and private subnets. */
  public readonly network: WorkerSubnets;
  /** The ledger database (or its proxy). */
  public readonly database: PostgresEndpoint;
  /** The cache. */
  public readonly cache: RedisEndpoint;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const stack = this;
    const n = STORAGE_HANDOFF;
    const vpc = stringVariable(stack, n.vpcId, 'VPC of the workers (storage stack output).', '^vpc-[0-9a-f]{8,17}$', 'a VPC id such as vpc-0abc12345');
    const subnets = named(new TerraformVariable(stack, n.privateSubnetIds, {
      type: 'list(string)',
      description: 'Private subnets of the workers (storage stack output).',
      nullable: false,
      validation: [
        {
          condition: `\${length(var.${n.privateSubnetIds}) >= 2 && alltrue([for s in var.${n.privateSubnetIds} : can(regex("^subnet-[0-9a-f]{8,17}$", s))])}`,
          errorMessage: `${n.privateSubnetIds} must list at least two subnet ids (subnet-...).`,
        },
      ],
    }), n.privateSubnetIds);
    this.network = { vpcId: vpc.stringValue, privateSubnetIds: subnets.listValue };
    this.database = {
      host: stringVariable(stack, n.databaseHost, 'Ledger database host, or its RDS Proxy (storage stack output).', HOST, 'a host name').stringValue,
      port: portVariable(stack, n.databasePort, 'Ledger database port (storage stack output).').numberValue,
      databaseName: stringVariable(stack, n.databaseName, 'Ledger database name (storage stack output).', '^[a-z_][a-z0-9_]{0,62}$', 'a Postgres database name').stringValue,
      credentialsSecretArn: stringVariable(stack, n.databaseSecretArn, 'ARN of the RDS-managed master secret (storage stack output).', SECRET_ARN, 'a Secrets Manager secret ARN').stringValue,
      securityGroupId: stringVariable(stack, n.databaseSecurityGroupId, 'Security group admitting database clients (storage stack output).', SECURITY_GROUP, 'a security group id (sg-...)').stringValue,
    };
    this.cache = {
      host: stringVariable(stack, n.redisHost, 'Redis primary endpoint (storage stack output).', HOST, 'a host name').stringValue,
      port: portVariable(stack, n.redisPort, 'Redis port (storage stack output).').numberValue,
      authTokenSecretArn: stringVariable(stack, n.redisAuthSecretArn, 'ARN of the Redis AUTH token secret (storage stack output).', SECRET_ARN, 'a Secrets Manager secret ARN').stringValue,
      securityGroupId: stringVariable(stack, n.redisSecurityGroupId, 'Security group admitting Redis clients (storage stack output).', SECURITY_GROUP, 'a security group id (sg-...)').stringValue,
    };
  }
}

/** The streaming stack's worker-facing outputs as validated inputs of the workers stack. */
export class StreamingInputs extends Construct {
  /** `host:port[,host:port]`, scheme stripped. */
  public readonly bootstrapServers: string;
  /** ARN of the consumer key secret (Lambda BASIC_AUTH). */
  public readonly consumerSecretArn: string;
  /** ARN of the producer key secret (outbox publisher). */
  public readonly producerSecretArn: string;
  /**
   * Schema Registry id of the `campaign-events` value schema as an environment variable value,
   * or "" when not given (the publisher then writes plain JSON without the wire header).
   */
  public readonly campaignEventsSchemaId: string;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const stack = this;
    const n = STREAMING_HANDOFF;
    this.bootstrapServers = stringVariable(
      stack,
      n.bootstrapServers,
      'Confluent bootstrap host:port, scheme stripped (streaming stack output).',
      '^[A-Za-z0-9.-]+:[0-9]{1,5}(,[A-Za-z0-9.-]+:[0-9]{1,5})*$',
      'host:port[,host:port] without a scheme (strip SASL_SSL://)',
    ).stringValue;
    this.consumerSecretArn = stringVariable(stack, n.consumerSecretArn, 'Secret of the workers consumer Kafka key (streaming stack output).', SECRET_ARN, 'a Secrets Manager secret ARN').stringValue;
    this.producerSecretArn = stringVariable(stack, n.producerSecretArn, 'Secret of the workers producer Kafka key (streaming stack output).', SECRET_ARN, 'a Secrets Manager secret ARN').stringValue;
    const schemaId = named(
      new TerraformVariable(stack, n.campaignEventsSchemaId, {
        type: 'number',
        nullable: true,
        description: 'Schema Registry id of the campaign-events value schema; with it, outbox messages carry the Confluent wire header json-registry readers (Flink) need.',
        validation: [
          {
            condition: `\${var.${n.campaignEventsSchemaId} == null ? true : (var.${n.campaignEventsSchemaId} >= 0 && var.${n.campaignEventsSchemaId} <= 2147483647 && floor(var.${n.campaignEventsSchemaId}) == var.${n.campaignEventsSchemaId})}`,
            errorMessage: `${n.campaignEventsSchemaId} must be a Schema Registry id (a non-negative 32-bit integer) or null.`,
          },
        ],
      }),
      n.campaignEventsSchemaId,
    );
    // Optional: cdktf cannot express `default = null` directly.
    schemaId.addOverride('default', null);
    const ref = `var.${n.campaignEventsSchemaId}`;
    this.campaignEventsSchemaId = `\${${ref} == null ? "" : tostring(${ref})}`;
  }
}
