import { Construct } from 'constructs';
import { ITerraformDependable } from 'cdktf';
import { KafkaTopic as KafkaTopicResource } from '../../.gen/providers/confluent/kafka-topic';
import { Schema } from '../../.gen/providers/confluent/schema';
import { EventContract, jsonSchemaOf, valueSubjectOf } from '../../contracts';
import type { TopicConfig } from '../../config/schema';
import type { KafkaCluster } from './kafka-cluster';
import type { ConfluentEnvironment } from './environment';
import type { ServiceAccountApiKey } from './service-account';

/** What grants need to know of a topic. */
export interface KafkaTopicRef {
  /** Topic name. */
  readonly topicName: string;
  /** Resource to order bindings after, when the topic is managed here. */
  readonly dependable?: ITerraformDependable;
}

/** Props of {@link KafkaTopic}. */
export interface KafkaTopicProps {
  /** Cluster the topic lives in. */
  readonly cluster: KafkaCluster;
  /** Environment whose Schema Registry holds the value schema. */
  readonly environment: ConfluentEnvironment;
  /** The event contract: topic name and the JSON Schema of its values. */
  readonly contract: EventContract;
  /** Partitions, retention, cleanup policy. */
  readonly config: TopicConfig;
  /** Kafka API key of the account that manages topics (DeveloperManage on this topic). */
  readonly kafkaCredentials: ServiceAccountApiKey;
  /** Schema Registry API key of the account that registers schemas. */
  readonly schemaRegistryCredentials: ServiceAccountApiKey;
  /** Protect topic and schema from `terraform destroy` (production). @default false */
  readonly preventDestroy?: boolean;
}

/**
 * A topic and the JSON Schema of its values, registered under `<topic>-value` from the
 * contract — so Confluent Flink sees a typed table, and producers and the workers agree on it.
 */
export class KafkaTopic extends Construct implements KafkaTopicRef {
  /** Topic name. */
  public readonly topicName: string;
  /** Schema Registry subject of the values. */
  public readonly valueSubject: string;
  /** The topic resource, for ordering. */
  public readonly dependable: ITerraformDependable;
  /** Id Schema Registry assigned to the value schema (producers put it in the wire header). */
  public readonly valueSchemaId: number;

  constructor(scope: Construct, id: string, props: KafkaTopicProps) {
    super(scope, id);
    const lifecycle = { preventDestroy: props.preventDestroy ?? false };
    const topic = new KafkaTopicResource(this, 'topic', {
      kafkaCluster: { id: props.cluster.clusterId },
      restEndpoint: props.cluster.restEndpoint,
      topicName: props.contract.topic,
      partitionsCount: props.config.partitions,
      config: {
        'cleanup.policy': props.config.cleanupPolicy,
        'retention.ms': String(props.config.retentionMs),
      },
      credentials: {
        key: props.kafkaCredentials.resource.id,
        secret: props.kafkaCredentials.resource.secret,
      },
      lifecycle,
    });
    this.valueSubject = valueSubjectOf(props.contract);
    const schema = new Schema(this, 'value-schema', {
      schemaRegistryCluster: { id: props.environment.schemaRegistry.id },
      restEndpoint: props.environment.schemaRegistry.restEndpoint,
      subjectName: this.valueSubject,
      format: 'JSON',
      schema: JSON.stringify(jsonSchemaOf(props.contract), null, 2),
      credentials: {
        key: props.schemaRegistryCredentials.resource.id,
        secret: props.schemaRegistryCredentials.resource.secret,
      },
      lifecycle,
    });
    this.topicName = props.contract.topic;
    this.dependable = topic;
    this.valueSchemaId = schema.schemaIdentifier;
  }
}
