import { Construct } from 'constructs';
import { KafkaCluster as KafkaClusterResource } from '../../.gen/providers/confluent/kafka-cluster';
import { DataConfluentKafkaCluster } from '../../.gen/providers/confluent/data-confluent-kafka-cluster';
import type { ConfluentConfig, KafkaClusterConfig } from '../../config/schema';
import type { ConfluentEnvironment } from './environment';

/** Props of {@link KafkaCluster}. */
export interface KafkaClusterProps {
  /** Environment the cluster lives in. */
  readonly environment: ConfluentEnvironment;
  /** Create a cluster or reference an existing one. */
  readonly config: KafkaClusterConfig;
  /** Cloud provider of a created cluster. */
  readonly cloud: ConfluentConfig['cloud'];
  /** Region of a created cluster. */
  readonly region: string;
  /** Protect a created cluster from `terraform destroy`. @default false */
  readonly preventDestroy?: boolean;
}

/** A Confluent Kafka cluster (the Flink database), created or referenced. */
export class KafkaCluster extends Construct {
  /** Cluster id (`lkc-…`). */
  public readonly clusterId: string;
  /** Display name; Flink's `sql.current-database`. */
  public readonly displayName: string;
  /** REST endpoint for topic management. */
  public readonly restEndpoint: string;
  /** Bootstrap endpoint as Confluent reports it (`SASL_SSL://host:9092`). */
  public readonly bootstrapEndpoint: string;
  /** CRN prefix for topic, group and transactional-id role bindings. */
  public readonly rbacCrn: string;
  /** API version, for API key `managed_resource`. */
  public readonly apiVersion: string;
  /** Kind, for API key `managed_resource`. */
  public readonly kind: string;
  /** Environment the cluster belongs to. */
  public readonly environment: ConfluentEnvironment;

  constructor(scope: Construct, id: string, props: KafkaClusterProps) {
    super(scope, id);
    this.environment = props.environment;
    const environment = { id: props.environment.environmentId };
    const cluster =
      props.config.mode === 'create'
        ? new KafkaClusterResource(this, 'cluster', {
            displayName: props.config.displayName,
            availability: props.config.availability,
            cloud: props.cloud,
            region: props.region,
            environment,
            ...clusterTypeBlock(props.config),
            lifecycle: { preventDestroy: props.preventDestroy ?? false },
          })
        : new DataConfluentKafkaCluster(this, 'cluster', { id: props.config.id, environment });
    this.clusterId = cluster.id;
    this.displayName = cluster.displayName;
    this.restEndpoint = cluster.restEndpoint;
    this.bootstrapEndpoint = cluster.bootstrapEndpoint;
    this.rbacCrn = cluster.rbacCrn;
    this.apiVersion = cluster.apiVersion;
    this.kind = cluster.kind;
    // Confluent provisions the environment's Schema Registry with its first Kafka cluster.
    props.environment.registryProvisionedBy(cluster);
  }

  /** CRN pattern of one topic (exact name, or a prefix ending in `*`). */
  public topicCrn(topicName: string): string {
    return `${this.rbacCrn}/kafka=${this.clusterId}/topic=${topicName}`;
  }

  /** CRN pattern of one consumer group (exact name, or a prefix ending in `*`). */
  public groupCrn(group: string): string {
    return `${this.rbacCrn}/kafka=${this.clusterId}/group=${group}`;
  }

  /** CRN pattern of a transactional id (exact, or a prefix ending in `*`). */
  public transactionalIdCrn(transactionalId: string): string {
    return `${this.rbacCrn}/kafka=${this.clusterId}/transactional-id=${transactionalId}`;
  }
}

function clusterTypeBlock(config: Extract<KafkaClusterConfig, { mode: 'create' }>) {
  switch (config.type) {
    case 'BASIC':
      return { basic: [{}] };
    case 'STANDARD':
      return { standard: [{}] };
    case 'ENTERPRISE':
      return { enterprise: [{}] };
    case 'DEDICATED':
      return { dedicated: { cku: config.cku ?? 1 } };
  }
}
