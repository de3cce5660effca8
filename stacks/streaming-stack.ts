import { Construct } from 'constructs';
import { Fn, TerraformOutput, TerraformVariable } from 'cdktf';
import { ConfluentProvider } from '../.gen/providers/confluent/provider';
import { DataConfluentOrganization } from '../.gen/providers/confluent/data-confluent-organization';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import {
  adEventContract,
  campaignEventContract,
  compensationEventContract,
  conversionEventContract,
  EventContract,
  productCatalogContract,
  RTB_RANKINGS_TOPIC,
} from '../contracts';
import type { ApiKeySlot, TopicName } from '../config/schema';
import { ConfluentEnvironment } from '../constructs/confluent/environment';
import { KafkaCluster } from '../constructs/confluent/kafka-cluster';
import { KafkaTopic } from '../constructs/confluent/kafka-topic';
import { ServiceAccount } from '../constructs/confluent/service-account';
import { FlinkComputePool } from '../constructs/confluent/flink-compute-pool';
import { KafkaCredentialsSecret } from '../constructs/aws/kafka-credentials-secret';
import { FLINK_ALTERED_TABLES, FLINK_SINK_TABLES } from '../constructs/flink/tables';
import { EnvironmentStack, EnvironmentStackProps } from './environment-stack';
import type { FlinkApiCredentials, FlinkConnection } from './flink-stack';
import { REPLAY_CONSUMER_GROUP_PREFIX, WORKER_CONSUMER_GROUPS } from './worker-triggers';
import type { StreamingHandoff } from '../constructs/aws/stack-inputs';

/** Consumer groups of the worker Lambdas' Kafka triggers (defined with the triggers in worker-triggers.ts). */
export { WORKER_CONSUMER_GROUPS };

/**
 * Names of the streaming stack's outputs that describe where and as whom Flink statements run;
 * `npm run flink:check` reads exactly these (scripts/flink-check.ts).
 */
export const FLINK_CONNECTION_OUTPUTS = {
  organizationId: 'confluent_organization_id',
  environmentId: 'confluent_environment_id',
  catalogName: 'flink_catalog_name',
  databaseName: 'flink_database_name',
  computePoolId: 'flink_compute_pool_id',
  restEndpoint: 'flink_rest_endpoint',
  principalId: 'flink_principal_id',
  apiKey: 'flink_api_key',
  apiSecret: 'flink_api_secret',
} as const;

/**
 * The Confluent streaming core of one environment: environment and cluster (created or
 * referenced), the project's topics with their registered contracts, one service account per
 * duty with least-privilege bindings and keys, and the Flink compute pool. The workers' Kafka
 * keys are stored in Secrets Manager for the Lambda triggers and the outbox producer.
 */
export class StreamingStack extends EnvironmentStack implements StreamingHandoff {
  /** Kafka bootstrap `host:port` (scheme stripped, as Lambda triggers want it). */
  public readonly bootstrapServers: string;
  /** Secrets Manager ARN of the workers' active consumer key (`{"username","password"}`). */
  public readonly consumerSecretArn: string;
  /** Secrets Manager ARN of the workers' active producer key (`{"username","password"}`). */
  public readonly producerSecretArn: string;
  /** Secrets Manager ARN of the consumer's other key slot (a rotation switches to it). */
  public readonly standbyConsumerSecretArn: string;
  /** Secrets Manager ARN of the producer's other key slot. */
  public readonly standbyProducerSecretArn: string;
  /** Schema Registry id of the `campaign-events` value schema (the outbox's wire header). */
  public readonly campaignEventsSchemaId: number;
  /** Connection attributes for the Flink stack. */
  public readonly flinkConnection: FlinkConnection;
  /** The Flink deployer's API key, for the Flink stack's provider. */
  public readonly flinkCredentials: FlinkApiCredentials;
  /** The topics, by name. */
  public readonly topics: Readonly<Record<string, KafkaTopic>>;

  constructor(scope: Construct, props: EnvironmentStackProps) {
    super(scope, 'streaming', props);
    const { config } = props;
    const protect = config.production;

    const cloudApiKey = new TerraformVariable(this, 'confluent_cloud_api_key', {
      type: 'string',
      sensitive: true,
      description: 'Confluent Cloud API key (Cloud resource management) of the deployer.',
    });
    const cloudApiSecret = new TerraformVariable(this, 'confluent_cloud_api_secret', {
      type: 'string',
      sensitive: true,
      description: 'Secret of confluent_cloud_api_key.',
    });
    new ConfluentProvider(this, 'confluent', { cloudApiKey: cloudApiKey.stringValue, cloudApiSecret: cloudApiSecret.stringValue });
    new AwsProvider(this, 'aws', {
      region: config.aws.region,
      allowedAccountIds: [config.aws.accountId],
      defaultTags: [{ tags: config.aws.tags }],
    });

    const organization = new DataConfluentOrganization(this, 'organization', {});
    const environment = new ConfluentEnvironment(this, 'environment', { config: config.confluent.environment, preventDestroy: protect });
    const cluster = new KafkaCluster(this, 'cluster', {
      environment,
      config: config.confluent.kafkaCluster,
      cloud: config.confluent.cloud,
      region: config.confluent.region,
      preventDestroy: protect,
    });
    const registry = environment.schemaRegistry;
    const prefix = `adstream-${config.name}`;

    // Topic and schema owner: manages exactly the project's topics and their value subjects.
    const topicManager = new ServiceAccount(this, 'topic-manager', {
      displayName: `${prefix}-topic-manager`,
      duty: 'Creates and configures the adstream topics and registers their value schemas.',
    });
    const contracts: ReadonlyArray<readonly [TopicName, EventContract]> = [
      ['ad-events', adEventContract],
      ['campaign-events', campaignEventContract],
      ['conversion-events', conversionEventContract],
      ['compensation-events', compensationEventContract],
      ['product-catalog', productCatalogContract],
    ];
    for (const [, contract] of contracts) {
      topicManager.grantTopicManage(cluster, contract.topic);
      topicManager.grantSubjectWrite(registry, `${contract.topic}-value`);
      topicManager.grantSubjectManage(registry, `${contract.topic}-value`);
    }
    const managerKafkaKey = topicManager.createKafkaApiKey(cluster, `${prefix}-topic-manager-kafka`);
    const managerRegistryKey = topicManager.createSchemaRegistryApiKey(environment, `${prefix}-topic-manager-sr`);
    const topics: Record<string, KafkaTopic> = {};
    for (const [name, contract] of contracts) {
      topics[name] = new KafkaTopic(this, `topic-${name}`, {
        cluster,
        environment,
        contract,
        config: config.confluent.topics[name],
        kafkaCredentials: managerKafkaKey,
        schemaRegistryCredentials: managerRegistryKey,
        preventDestroy: protect,
      });
    }
    this.topics = topics;

    // Flink statement runner: reads the sources, writes compensations and the tables its DDL creates.
    const runner = new ServiceAccount(this, 'flink-runner', {
      displayName: `${prefix}-flink-runner`,
      duty: 'Principal the adstream Flink statements run as.',
    });
    runner.grantFlinkDeveloper(environment);
    for (const source of [adEventContract, campaignEventContract, conversionEventContract, productCatalogContract]) {
      runner.grantTopicRead(cluster, topics[source.topic]);
      runner.grantSubjectRead(registry, `${source.topic}-value`);
    }
    // ALTER TABLE (watermarks, changelog mode) stores the change with the table's value schema.
    for (const altered of FLINK_ALTERED_TABLES) runner.grantSubjectWrite(registry, `${altered}-value`);
    runner.grantTopicWrite(cluster, topics[compensationEventContract.topic]);
    runner.grantSubjectRead(registry, `${compensationEventContract.topic}-value`);
    for (const table of FLINK_SINK_TABLES) {
      runner.grantTopicManage(cluster, table);
      runner.grantTopicRead(cluster, { topicName: table });
      runner.grantTopicWrite(cluster, { topicName: table });
      for (const subject of [`${table}-key`, `${table}-value`]) {
        runner.grantSubjectRead(registry, subject);
        runner.grantSubjectWrite(registry, subject);
      }
    }
    runner.grantTransactionalId(cluster, '_confluent-flink_*');

    // Flink deployer: submits statements as the runner (Assigner), owns the Flink API key.
    const deployer = new ServiceAccount(this, 'flink-deployer', {
      displayName: `${prefix}-flink-deployer`,
      duty: 'Submits and manages the adstream Flink statements on behalf of the runner.',
    });
    deployer.grantFlinkDeveloper(environment);
    runner.allowAssignmentBy(deployer, organization.resourceName);

    const pool = new FlinkComputePool(this, 'flink-pool', {
      environment,
      displayName: `${prefix}-pipelines`,
      cloud: config.confluent.cloud,
      region: config.confluent.region,
      maxCfu: config.flink.maxCfu,
      preventDestroy: protect,
    });
    const flinkKey = deployer.createFlinkApiKey(
      { id: pool.regionId, apiVersion: pool.regionApiVersion, kind: pool.regionKind },
      environment,
      `${prefix}-flink-deployer`,
    );

    // Workers' consumer: reads the three topics its triggers consume, in its three groups only.
    const consumer = new ServiceAccount(this, 'workers-consumer', {
      displayName: `${prefix}-workers-consumer`,
      duty: 'Lambda Kafka triggers of the adstream workers.',
    });
    consumer.grantTopicRead(cluster, topics[adEventContract.topic]);
    consumer.grantTopicRead(cluster, topics[compensationEventContract.topic]);
    consumer.grantTopicRead(cluster, { topicName: RTB_RANKINGS_TOPIC });
    for (const group of Object.values(WORKER_CONSUMER_GROUPS)) consumer.grantConsumerGroup(cluster, group);
    // npm run replay reads ranges with this key, each run in a fresh group under this prefix.
    consumer.grantConsumerGroup(cluster, `${REPLAY_CONSUMER_GROUP_PREFIX}*`);

    // Workers' producer: campaign status events from the outbox, nothing else.
    const producer = new ServiceAccount(this, 'workers-producer', {
      displayName: `${prefix}-workers-producer`,
      duty: 'Outbox publisher of campaign status events.',
    });
    producer.grantTopicWrite(cluster, topics[campaignEventContract.topic]);

    // Two key slots per account, each with its own secret, so a key is rotated without an
    // outage: add the other slot (a second key), make it active (the triggers' BASIC_AUTH uri
    // and the producer's variable change, which makes Lambda reconnect with it), remove the old
    // slot. The blue slot keeps the original construct ids and names (no replacement on upgrade).
    const { slots, active } = config.confluent.workerApiKeys;
    const keySlots = (account: ServiceAccount, role: 'consumer' | 'producer', description: string) =>
      Object.fromEntries(
        (['blue', 'green'] as const).map((slot) => {
          const suffix = slot === 'blue' ? '' : `-${slot}`;
          const apiKey = slots.includes(slot) ? account.createKafkaApiKey(cluster, `${prefix}-workers-${role}${suffix}`, `kafka-api-key${suffix}`) : undefined;
          const secret = new KafkaCredentialsSecret(this, `${role}-secret${suffix}`, {
            secretName: `adstream/${config.name}/kafka/workers-${role}${suffix}`,
            description: `${description} Key slot ${slot}.`,
            apiKey,
          });
          return [slot, secret.secretArn];
        }),
      ) as Record<ApiKeySlot, string>;
    const consumerSecrets = keySlots(consumer, 'consumer', 'Confluent API key of the adstream workers consumer (Lambda BASIC_AUTH).');
    const producerSecrets = keySlots(producer, 'producer', 'Confluent API key of the adstream outbox producer.');

    this.bootstrapServers = Fn.replace(cluster.bootstrapEndpoint, 'SASL_SSL://', '');
    this.consumerSecretArn = consumerSecrets[active];
    this.producerSecretArn = producerSecrets[active];
    const standby: ApiKeySlot = active === 'blue' ? 'green' : 'blue';
    this.standbyConsumerSecretArn = consumerSecrets[standby];
    this.standbyProducerSecretArn = producerSecrets[standby];
    this.campaignEventsSchemaId = topics['campaign-events'].valueSchemaId;
    this.flinkConnection = {
      organizationId: organization.id,
      environmentId: environment.environmentId,
      catalogName: environment.displayName,
      databaseName: cluster.displayName,
      computePoolId: pool.poolId,
      principalId: runner.serviceAccountId,
      restEndpoint: pool.restEndpoint,
    };
    this.flinkCredentials = { apiKey: flinkKey.resource.id, apiSecret: flinkKey.resource.secret };

    new TerraformOutput(this, 'kafka_bootstrap_servers', { value: this.bootstrapServers, description: 'host:port for Lambda self-managed Kafka triggers.' });
    new TerraformOutput(this, 'workers_consumer_secret_arn', { value: this.consumerSecretArn });
    new TerraformOutput(this, 'workers_producer_secret_arn', { value: this.producerSecretArn });
    new TerraformOutput(this, 'campaign_events_schema_id', {
      value: topics['campaign-events'].valueSchemaId,
      description: 'Schema Registry id of campaign-events-value; the outbox producer writes it in the wire header.',
    });
    // Everything `npm run flink:check` needs, under the names FLINK_CONNECTION_OUTPUTS gives them.
    const o = FLINK_CONNECTION_OUTPUTS;
    new TerraformOutput(this, o.organizationId, { value: organization.id });
    new TerraformOutput(this, o.environmentId, { value: environment.environmentId });
    new TerraformOutput(this, o.catalogName, { value: environment.displayName, description: 'Flink catalog (sql.current-catalog).' });
    new TerraformOutput(this, o.databaseName, { value: cluster.displayName, description: 'Flink database (sql.current-database).' });
    new TerraformOutput(this, o.computePoolId, { value: pool.poolId });
    new TerraformOutput(this, o.restEndpoint, { value: pool.restEndpoint });
    new TerraformOutput(this, o.principalId, { value: runner.serviceAccountId, description: 'Service account the statements run as.' });
    new TerraformOutput(this, o.apiKey, { value: flinkKey.resource.id, description: 'Flink API key of the statement deployer.' });
    new TerraformOutput(this, o.apiSecret, { value: flinkKey.resource.secret, sensitive: true, description: 'Secret of flink_api_key.' });
  }
}
