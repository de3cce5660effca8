import { Construct } from 'constructs';
import { FlinkComputePool as FlinkComputePoolResource } from '../../.gen/providers/confluent/flink-compute-pool';
import { DataConfluentFlinkRegion } from '../../.gen/providers/confluent/data-confluent-flink-region';
import { Token } from 'cdktf';
import type { ConfluentConfig } from '../../config/schema';
import type { ConfluentEnvironment } from './environment';
import { PolicyViolation } from '../errors';

/** Props of {@link FlinkComputePool}. */
export interface FlinkComputePoolProps {
  /** Environment of the pool. */
  readonly environment: ConfluentEnvironment;
  /** Display name of the pool. */
  readonly displayName: string;
  /** Cloud provider; must be where the Kafka cluster is. */
  readonly cloud: ConfluentConfig['cloud'];
  /** Region; must be where the Kafka cluster is. */
  readonly region: string;
  /** Upper bound of CFUs the pool may scale to (cost ceiling). */
  readonly maxCfu: number;
  /** Protect the pool from `terraform destroy` (production). @default false */
  readonly preventDestroy?: boolean;
}

/** CFU ceilings Confluent accepts for a compute pool. */
export const ALLOWED_MAX_CFU = [5, 10, 20, 30, 40, 50] as const;

/** The Flink compute pool the pipelines run in, and the Flink region it belongs to. */
export class FlinkComputePool extends Construct {
  /** Pool id (`lfcp-…`). */
  public readonly poolId: string;
  /** Flink region id, e.g. `aws.ap-northeast-2`. */
  public readonly regionId: string;
  /** Flink region API version, for the Flink API key's managed resource. */
  public readonly regionApiVersion: string;
  /** Flink region kind, for the Flink API key's managed resource. */
  public readonly regionKind: string;
  /** Flink REST endpoint of the region (statements are submitted there). */
  public readonly restEndpoint: string;

  constructor(scope: Construct, id: string, props: FlinkComputePoolProps) {
    super(scope, id);
    if (!Token.isUnresolved(props.maxCfu) && !(ALLOWED_MAX_CFU as readonly number[]).includes(props.maxCfu)) {
      throw new PolicyViolation(`FlinkComputePool ${this.node.path}: maxCfu ${props.maxCfu} is not offered; use one of ${ALLOWED_MAX_CFU.join(', ')}.`);
    }
    const pool = new FlinkComputePoolResource(this, 'pool', {
      displayName: props.displayName,
      cloud: props.cloud,
      region: props.region,
      maxCfu: props.maxCfu,
      environment: { id: props.environment.environmentId },
      lifecycle: { preventDestroy: props.preventDestroy ?? false },
    });
    const region = new DataConfluentFlinkRegion(this, 'region', { cloud: props.cloud, region: props.region });
    this.poolId = pool.id;
    this.regionId = region.id;
    this.regionApiVersion = region.apiVersion;
    this.regionKind = region.kind;
    this.restEndpoint = region.restEndpoint;
  }
}
