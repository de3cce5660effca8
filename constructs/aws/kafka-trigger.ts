import { Construct } from 'constructs';
import { Token } from 'cdktf';
import { LambdaEventSourceMapping } from '@cdktf/provider-aws/lib/lambda-event-source-mapping';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import type { ITerraformDependable } from 'cdktf';
import { AwsConstructError } from './errors';
import type { WorkerFunction } from './worker-function';

/** Longest function timeout a Kafka event source mapping accepts (14 minutes). */
export const KAFKA_TRIGGER_MAX_TIMEOUT_SECONDS = 840;
/** Largest batch a Kafka event source mapping accepts. */
export const KAFKA_TRIGGER_MAX_BATCH_SIZE = 10_000;

/** Where the records come from. */
export type KafkaTriggerSource =
  | {
      /** Confluent Cloud, to Lambda a self-managed Kafka cluster reached over the internet. */
      readonly kind: 'confluent';
      /** `host:port[,host:port]`, scheme stripped. */
      readonly bootstrapServers: string;
      /** Secrets Manager ARN of `{"username","password"}` (the consumer's API key). */
      readonly credentialsSecretArn: string;
    }
  | {
      /** Amazon MSK (only when the topics are mirrored there). IAM authentication. */
      readonly kind: 'msk';
      /** MSK cluster ARN. */
      readonly clusterArn: string;
    };

/** Props of {@link KafkaTrigger}. */
export interface KafkaTriggerProps {
  /** The function the batches go to. */
  readonly worker: WorkerFunction;
  /** The one topic this trigger consumes. */
  readonly topic: string;
  /** Consumer group, exactly as the consumer's ACLs allow it. */
  readonly consumerGroupId: string;
  /** Confluent (default) or MSK. */
  readonly source: KafkaTriggerSource;
  /** Records per invocation. @default 100 */
  readonly batchSize?: number;
  /**
   * Where a new consumer group starts. Ignored once the group has committed offsets.
   * @default 'TRIM_HORIZON' - LATEST would skip what is produced while the mapping is created
   */
  readonly startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  /** Name of the on-failure queue. */
  readonly failureQueueName: string;
  /** Keep the failure queue from being destroyed (production). */
  readonly production: boolean;
  /** Resources that must exist before records flow (e.g. the schema migration). @default - none */
  readonly after?: ITerraformDependable[];
}

/**
 * One Kafka topic feeding one function through a Lambda event source mapping: Confluent Cloud
 * as self-managed Kafka with BASIC_AUTH from Secrets Manager (or MSK with IAM), a named
 * consumer group, TRIM_HORIZON by default, and an SSE-encrypted SQS queue that receives the
 * metadata of any batch Lambda gives up on. The function's role gets exactly what the mapping
 * needs: the consumer secret (Confluent) or the cluster's read actions (MSK), and sending to
 * its own failure queue.
 */
export class KafkaTrigger extends Construct {
  /** Topic consumed. */
  public readonly topic: string;
  /** Consumer group. */
  public readonly consumerGroupId: string;
  /** The function it invokes. */
  public readonly worker: WorkerFunction;
  /** Event source mapping UUID. */
  public readonly mappingUuid: string;
  /** Name of the on-failure queue (for the depth alarm). */
  public readonly failureQueueName: string;
  /** ARN of the on-failure queue. */
  public readonly failureQueueArn: string;

  constructor(scope: Construct, id: string, props: KafkaTriggerProps) {
    super(scope, id);
    const batchSize = props.batchSize ?? 100;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > KAFKA_TRIGGER_MAX_BATCH_SIZE) {
      throw new AwsConstructError(
        this.node.path,
        `batchSize ${batchSize} is out of range; a Kafka trigger takes an integer from 1 to ${KAFKA_TRIGGER_MAX_BATCH_SIZE} (set workers.batchSize).`,
      );
    }
    if (props.worker.sizing.timeoutSeconds > KAFKA_TRIGGER_MAX_TIMEOUT_SECONDS) {
      throw new AwsConstructError(
        this.node.path,
        `function timeout ${props.worker.sizing.timeoutSeconds}s exceeds the ${KAFKA_TRIGGER_MAX_TIMEOUT_SECONDS}s a Kafka trigger allows; lower workers.functions.<name>.timeoutSeconds.`,
      );
    }
    if (!/^[A-Za-z0-9._-]{1,249}$/.test(props.topic)) {
      throw new AwsConstructError(this.node.path, `topic ${JSON.stringify(props.topic)} is not a Kafka topic name (letters, digits, ".", "_", "-").`);
    }
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(props.consumerGroupId)) {
      throw new AwsConstructError(
        this.node.path,
        `consumerGroupId ${JSON.stringify(props.consumerGroupId)} is not a valid Kafka group id (letters, digits, ".", "_", "-", at most 200).`,
      );
    }
    const { source } = props;
    if (source.kind === 'confluent' && !Token.isUnresolved(source.bootstrapServers) && /:\/\//.test(source.bootstrapServers)) {
      throw new AwsConstructError(
        this.node.path,
        `bootstrapServers ${JSON.stringify(source.bootstrapServers)} has a scheme; Lambda wants bare host:port (strip "SASL_SSL://").`,
      );
    }
    this.topic = props.topic;
    this.consumerGroupId = props.consumerGroupId;
    this.worker = props.worker;

    const queue = new SqsQueue(this, 'failures', {
      name: props.failureQueueName,
      sqsManagedSseEnabled: true,
      // Longest SQS retention: someone has two weeks to replay a discarded batch by hand.
      messageRetentionSeconds: 14 * 24 * 3600,
      lifecycle: { preventDestroy: props.production },
    });
    this.failureQueueName = props.failureQueueName;
    this.failureQueueArn = queue.arn;
    const sidSuffix = props.consumerGroupId.replace(/[^A-Za-z0-9]/g, '');
    props.worker.addStatement({ sid: `SendDiscardedBatches${sidSuffix}`, effect: 'Allow', actions: ['sqs:SendMessage'], resources: [queue.arn] });

    const common = {
      // The alias: records reach new code only once it is released (after the migration).
      functionName: props.worker.liveArn,
      topics: [props.topic],
      batchSize,
      startingPosition: props.startingPosition ?? 'TRIM_HORIZON',
      destinationConfig: { onFailure: { destinationArn: queue.arn } },
      dependsOn: [props.worker.rolePolicy, ...(props.after ?? [])],
    };
    let mapping: LambdaEventSourceMapping;
    if (source.kind === 'confluent') {
      // Lambda reads the BASIC_AUTH secret with the function's execution role.
      props.worker.readsSecret(`KafkaConsumerKey${sidSuffix}`, source.credentialsSecretArn);
      mapping = new LambdaEventSourceMapping(this, 'mapping', {
        ...common,
        selfManagedEventSource: { endpoints: { KAFKA_BOOTSTRAP_SERVERS: source.bootstrapServers } },
        sourceAccessConfiguration: [{ type: 'BASIC_AUTH', uri: source.credentialsSecretArn }],
        selfManagedKafkaEventSourceConfig: { consumerGroupId: props.consumerGroupId },
      });
    } else {
      const match = /^(arn:[^:]+:kafka:[^:]+:\d{12}):cluster\/([^/]+)\/([^/]+)$/.exec(source.clusterArn);
      if (!match) {
        throw new AwsConstructError(
          this.node.path,
          `clusterArn ${JSON.stringify(source.clusterArn)} is not an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>).`,
        );
      }
      const [, prefix, clusterName, clusterUuid] = match;
      props.worker.addStatement({
        sid: `ConnectMsk${sidSuffix}`,
        effect: 'Allow',
        actions: ['kafka:DescribeClusterV2', 'kafka:GetBootstrapBrokers', 'kafka-cluster:Connect', 'kafka-cluster:DescribeClusterDynamicConfiguration'],
        resources: [source.clusterArn],
      });
      props.worker.addStatement({
        sid: `ReadMskTopic${sidSuffix}`,
        effect: 'Allow',
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
        resources: [`${prefix}:topic/${clusterName}/${clusterUuid}/${props.topic}`],
      });
      props.worker.addStatement({
        sid: `UseMskGroup${sidSuffix}`,
        effect: 'Allow',
        actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        resources: [`${prefix}:group/${clusterName}/${clusterUuid}/${props.consumerGroupId}`],
      });
      // The MSK pollers run in the cluster's subnets and look them up with the function's role.
      props.worker.addStatement({
        sid: `DescribeMskNetwork${sidSuffix}`,
        effect: 'Allow',
        actions: ['ec2:DescribeVpcs', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups'],
        resources: ['*'],
      });
      mapping = new LambdaEventSourceMapping(this, 'mapping', {
        ...common,
        eventSourceArn: source.clusterArn,
        amazonManagedKafkaEventSourceConfig: { consumerGroupId: props.consumerGroupId },
      });
    }
    this.mappingUuid = mapping.uuid;
  }
}
