import { Construct } from 'constructs';
import type { ITerraformDependable } from 'cdktf';
import { dependable } from 'cdktf/lib/tfExpression';
import { Environment } from '../../.gen/providers/confluent/environment';
import { DataConfluentEnvironment } from '../../.gen/providers/confluent/data-confluent-environment';
import { DataConfluentSchemaRegistryCluster } from '../../.gen/providers/confluent/data-confluent-schema-registry-cluster';
import type { ConfluentEnvironmentConfig } from '../../config/schema';

/** Props of {@link ConfluentEnvironment}. */
export interface ConfluentEnvironmentProps {
  /** Create a new environment or reference an existing one. */
  readonly config: ConfluentEnvironmentConfig;
  /** Protect a created environment from `terraform destroy`. @default false */
  readonly preventDestroy?: boolean;
}

/** The Schema Registry cluster of an environment, as the rest of the stack needs it. */
export interface SchemaRegistryRef {
  /** Cluster id (`lsrc-…`). */
  readonly id: string;
  /** REST endpoint used to register schemas. */
  readonly restEndpoint: string;
  /** CRN prefix for subject role bindings. */
  readonly resourceName: string;
  /** API version of the cluster, for API key `managed_resource`. */
  readonly apiVersion: string;
  /** Kind of the cluster, for API key `managed_resource`. */
  readonly kind: string;
}

/**
 * A Confluent Cloud environment (the Flink catalog), created or referenced, with its Schema
 * Registry cluster looked up (Stream Governance provisions it with the environment).
 */
export class ConfluentEnvironment extends Construct {
  /** Environment id (`env-…`). */
  public readonly environmentId: string;
  /** Display name; Flink's `sql.current-catalog`. */
  public readonly displayName: string;
  /** CRN of the environment, the scope of environment-level role bindings. */
  public readonly resourceName: string;
  /** The environment's Schema Registry cluster. */
  public readonly schemaRegistry: SchemaRegistryRef;

  private readonly registryLookup: DataConfluentSchemaRegistryCluster;

  constructor(scope: Construct, id: string, props: ConfluentEnvironmentProps) {
    super(scope, id);
    if (props.config.mode === 'create') {
      const environment = new Environment(this, 'environment', {
        displayName: props.config.displayName,
        streamGovernance: { package: props.config.streamGovernance },
        lifecycle: { preventDestroy: props.preventDestroy ?? false },
      });
      this.environmentId = environment.id;
      this.displayName = environment.displayName;
      this.resourceName = environment.resourceName;
    } else {
      const existing = new DataConfluentEnvironment(this, 'environment', { id: props.config.id });
      this.environmentId = existing.id;
      this.displayName = existing.displayName;
      this.resourceName = existing.resourceName;
    }
    const registry = new DataConfluentSchemaRegistryCluster(this, 'schema-registry', {
      environment: { id: this.environmentId },
    });
    this.registryLookup = registry;
    this.schemaRegistry = {
      id: registry.id,
      restEndpoint: registry.restEndpoint,
      resourceName: registry.resourceName,
      apiVersion: registry.apiVersion,
      kind: registry.kind,
    };
  }

  /**
   * Makes the Schema Registry lookup wait for a Kafka cluster of this environment: Confluent
   * creates the registry together with the environment's first cluster, so on a first apply
   * the lookup would otherwise run too early and fail (the provider docs' `depends_on`).
   */
  public registryProvisionedBy(cluster: ITerraformDependable): void {
    this.registryLookup.dependsOn = [...(this.registryLookup.dependsOn ?? []), dependable(cluster)];
  }
}
