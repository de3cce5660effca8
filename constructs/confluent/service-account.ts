import { Construct } from 'constructs';
import { ITerraformDependable } from 'cdktf';
import { ServiceAccount as ServiceAccountResource } from '../../.gen/providers/confluent/service-account';
import { RoleBinding } from '../../.gen/providers/confluent/role-binding';
import { ApiKey } from '../../.gen/providers/confluent/api-key';
import type { KafkaCluster } from './kafka-cluster';
import type { ConfluentEnvironment, SchemaRegistryRef } from './environment';
import type { KafkaTopicRef } from './kafka-topic';

/** Roles this project grants. Admin roles are deliberately absent (and the policy rejects them). */
export type GrantedRole = 'DeveloperRead' | 'DeveloperWrite' | 'DeveloperManage' | 'FlinkDeveloper' | 'Assigner';

/** Props of {@link ServiceAccount}. */
export interface ServiceAccountProps {
  /** Display name, unique in the organisation. */
  readonly displayName: string;
  /** The one duty of this account, shown in the Confluent console. */
  readonly duty: string;
}

/** An API key of a service account: its id is the Kafka username, its secret the password. */
export interface ServiceAccountApiKey {
  /** The key resource (id = key, secret = secret; both stay in state, never in JSON). */
  readonly resource: ApiKey;
}

/**
 * A service account with one duty. Grants are methods, so each binding is scoped to exactly
 * the resource it names, and API keys created afterwards depend on every binding made so far
 * (a key is never usable before its permissions exist, nor outlives them on destroy).
 */
export class ServiceAccount extends Construct {
  /** Service account id (`sa-…`). */
  public readonly serviceAccountId: string;
  /** RBAC principal string (`User:sa-…`). */
  public readonly principal: string;
  /** API version, for API key `owner`. */
  public readonly apiVersion: string;
  /** Kind, for API key `owner`. */
  public readonly kind: string;
  private readonly bindings: RoleBinding[] = [];

  constructor(scope: Construct, id: string, props: ServiceAccountProps) {
    super(scope, id);
    const account = new ServiceAccountResource(this, 'account', {
      displayName: props.displayName,
      description: props.duty,
    });
    this.serviceAccountId = account.id;
    this.principal = `User:${account.id}`;
    this.apiVersion = account.apiVersion;
    this.kind = account.kind;
  }

  /** Role bindings made so far. */
  public get roleBindings(): readonly RoleBinding[] {
    return this.bindings;
  }

  /** Read records of a topic. */
  public grantTopicRead(cluster: KafkaCluster, topic: KafkaTopicRef): void {
    this.bind('DeveloperRead', cluster.topicCrn(topic.topicName), `read-${topic.topicName}`, topic.dependable);
  }

  /** Produce records to a topic. */
  public grantTopicWrite(cluster: KafkaCluster, topic: KafkaTopicRef): void {
    this.bind('DeveloperWrite', cluster.topicCrn(topic.topicName), `write-${topic.topicName}`, topic.dependable);
  }

  /** Create, alter and delete a topic by name (for topics that do not exist yet, e.g. Flink sinks). */
  public grantTopicManage(cluster: KafkaCluster, topicName: string): void {
    this.bind('DeveloperManage', cluster.topicCrn(topicName), `manage-${topicName}`);
  }

  /** Join and commit offsets in one consumer group. */
  public grantConsumerGroup(cluster: KafkaCluster, group: string): void {
    this.bind('DeveloperRead', cluster.groupCrn(group), `group-${group}`);
  }

  /** Use transactional ids matching a pattern (exact, or prefix ending in `*`). */
  public grantTransactionalId(cluster: KafkaCluster, pattern: string): void {
    this.bind('DeveloperWrite', cluster.transactionalIdCrn(pattern), `txn-${pattern}`);
  }

  /** Read schemas of a subject. */
  public grantSubjectRead(registry: SchemaRegistryRef, subject: string): void {
    this.bind('DeveloperRead', `${registry.resourceName}/subject=${subject}`, `subject-read-${subject}`);
  }

  /** Register schemas under a subject. */
  public grantSubjectWrite(registry: SchemaRegistryRef, subject: string): void {
    this.bind('DeveloperWrite', `${registry.resourceName}/subject=${subject}`, `subject-write-${subject}`);
  }

  /** Change compatibility and delete versions of a subject. */
  public grantSubjectManage(registry: SchemaRegistryRef, subject: string): void {
    this.bind('DeveloperManage', `${registry.resourceName}/subject=${subject}`, `subject-manage-${subject}`);
  }

  /** Run Flink statements in an environment. */
  public grantFlinkDeveloper(environment: ConfluentEnvironment): void {
    this.bind('FlinkDeveloper', environment.resourceName, 'flink-developer');
  }

  /**
   * Lets `submitter` run Flink statements as this account (the `Assigner` role on it).
   * @param organizationResourceName CRN of the organisation.
   */
  public allowAssignmentBy(submitter: ServiceAccount, organizationResourceName: string): void {
    const binding = new RoleBinding(this, `assigner-${submitter.node.id}`, {
      principal: submitter.principal,
      roleName: 'Assigner',
      crnPattern: `${organizationResourceName}/service-account=${this.serviceAccountId}`,
    });
    submitter.bindings.push(binding);
  }

  /**
   * A Kafka API key for one cluster, created after every binding made so far.
   * @param id construct id of the key; a second key of the same account (rotation) needs its own.
   */
  public createKafkaApiKey(cluster: KafkaCluster, displayName: string, id = 'kafka-api-key'): ServiceAccountApiKey {
    return this.createApiKey(id, displayName, {
      id: cluster.clusterId,
      apiVersion: cluster.apiVersion,
      kind: cluster.kind,
      environment: [{ id: cluster.environment.environmentId }],
    });
  }

  /** A Schema Registry API key, created after every binding made so far. */
  public createSchemaRegistryApiKey(environment: ConfluentEnvironment, displayName: string): ServiceAccountApiKey {
    return this.createApiKey('schema-registry-api-key', displayName, {
      id: environment.schemaRegistry.id,
      apiVersion: environment.schemaRegistry.apiVersion,
      kind: environment.schemaRegistry.kind,
      environment: [{ id: environment.environmentId }],
    });
  }

  /** A Flink API key for one Flink region, created after every binding made so far. */
  public createFlinkApiKey(
    region: { readonly id: string; readonly apiVersion: string; readonly kind: string },
    environment: ConfluentEnvironment,
    displayName: string,
  ): ServiceAccountApiKey {
    return this.createApiKey('flink-api-key', displayName, {
      id: region.id,
      apiVersion: region.apiVersion,
      kind: region.kind,
      environment: [{ id: environment.environmentId }],
    });
  }

  private createApiKey(
    id: string,
    displayName: string,
    managedResource: { id: string; apiVersion: string; kind: string; environment: Array<{ id: string }> },
  ): ServiceAccountApiKey {
    const resource = new ApiKey(this, id, {
      displayName,
      description: `${displayName} (owned by ${this.node.id})`,
      owner: { id: this.serviceAccountId, apiVersion: this.apiVersion, kind: this.kind },
      managedResource,
      dependsOn: [...this.bindings],
    });
    return { resource };
  }

  private bind(roleName: GrantedRole, crnPattern: string, id: string, after?: ITerraformDependable): void {
    this.bindings.push(
      new RoleBinding(this, id, {
        principal: this.principal,
        roleName,
        crnPattern,
        ...(after ? { dependsOn: [after] } : {}),
      }),
    );
  }
}
