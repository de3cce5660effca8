import { Construct } from 'constructs';
import { TerraformVariable } from 'cdktf';
import { ConfluentProvider } from '../.gen/providers/confluent/provider';
import type { EnvironmentConfig } from '../config/schema';
import { FlinkPipeline, FlinkTableRegistry } from '../constructs/flink/pipeline';
import { EnvironmentStack } from './environment-stack';

/** Where the statements run: attributes of the streaming stack (tokens across stacks are fine). */
export interface FlinkConnection {
  /** Confluent organization id. */
  readonly organizationId: string;
  /** Confluent environment id. */
  readonly environmentId: string;
  /** Environment display name: the Flink catalog (`sql.current-catalog`). */
  readonly catalogName: string;
  /** Kafka cluster display name: the Flink database (`sql.current-database`). */
  readonly databaseName: string;
  /** Compute pool the statements run in. */
  readonly computePoolId: string;
  /** Service account the statements run as (the Flink runner). */
  readonly principalId: string;
  /** Flink REST endpoint of the region. */
  readonly restEndpoint: string;
}

/** The Flink API key the statements are submitted with. */
export interface FlinkApiCredentials {
  /** Flink API key of the statement deployer. */
  readonly apiKey: string;
  /** Its secret: a token (a cross-stack reference or a sensitive variable), never a literal. */
  readonly apiSecret: string;
}

/** What the Flink stack needs of an environment. */
export type FlinkStackEnvironment = Pick<EnvironmentConfig, 'name' | 'production' | 'stateBackend' | 'flink'>;

/** Props of the Flink stack of one environment. */
export interface FlinkStackProps {
  /** The environment: name (part of every statement name), production flag, state backend, Flink section. */
  readonly config: FlinkStackEnvironment;
  /** Where and as whom the statements run. */
  readonly connection: FlinkConnection;
  /**
   * The Flink API key; `main.ts` passes the streaming stack's (a cdktf cross-stack reference,
   * so nobody copies it).
   * @default - sensitive variables `flink_api_key` / `flink_api_secret`, for a stack synthesized on its own (tests, flink:check)
   */
  readonly credentials?: FlinkApiCredentials;
  /**
   * Directory holding the SQL files and the lock file.
   * @default - flink-sql/ at the repository root
   */
  readonly sqlRoot?: string;
}

/**
 * The Flink statements of one environment, in a stack of their own: they change on a
 * different cadence from the topics and the pool, and their provider carries the Flink API
 * key (the streaming stack's, by cross-stack reference) so no resource holds a secret.
 *
 * Pipelines are declared in dependency order: the source watermarks, then performance metrics
 * (whose product rollup feeds the ranking), the ranking, attribution and duplicate clicks.
 */
export class FlinkStack extends EnvironmentStack<FlinkStackEnvironment> {
  /** Watermarks on the source topics' payload timestamps. */
  public readonly sources: FlinkPipeline;
  /** 5-minute performance metrics and the 24-hour product rollup. */
  public readonly performanceMetrics: FlinkPipeline;
  /** The RTB ranking cache rows. */
  public readonly rtbRanking: FlinkPipeline;
  /** Last-click attribution. */
  public readonly attribution: FlinkPipeline;
  /** Duplicate clicks to compensation events. */
  public readonly duplicateClicks: FlinkPipeline;

  constructor(scope: Construct, props: FlinkStackProps) {
    super(scope, 'flink', props);
    const { config, connection } = props;
    const { flink } = config;

    const credentials = props.credentials ?? this.credentialVariables();
    new ConfluentProvider(this, 'confluent', {
      organizationId: connection.organizationId,
      environmentId: connection.environmentId,
      flinkComputePoolId: connection.computePoolId,
      flinkPrincipalId: connection.principalId,
      flinkRestEndpoint: connection.restEndpoint,
      flinkApiKey: credentials.apiKey,
      flinkApiSecret: credentials.apiSecret,
    });

    const tables = new FlinkTableRegistry();
    const common = {
      environmentName: config.name,
      production: config.production,
      catalogName: connection.catalogName,
      databaseName: connection.databaseName,
      tables,
      allowUnreleasedVersions: flink.allowUnreleasedVersions,
      sqlRoot: props.sqlRoot,
    };
    this.sources = new FlinkPipeline(this, 'sources', {
      ...common,
      pipeline: 'sources',
      deployment: flink.pipelines.sources,
    });
    this.performanceMetrics = new FlinkPipeline(this, 'performance-metrics', {
      ...common,
      pipeline: 'performance-metrics',
      deployment: flink.pipelines['performance-metrics'],
      // window_start / window_end are wall-clock timestamps in this zone; pin it so windows align to UTC.
      dmlProperties: { 'sql.local-time-zone': 'UTC' },
    });
    this.rtbRanking = new FlinkPipeline(this, 'rtb-ranking', {
      ...common,
      pipeline: 'rtb-ranking',
      deployment: flink.pipelines['rtb-ranking'],
      parameters: { RANKING_TOP_N: String(flink.rankingTopN) },
    });
    this.attribution = new FlinkPipeline(this, 'attribution', {
      ...common,
      pipeline: 'attribution',
      deployment: flink.pipelines.attribution,
      dmlProperties: { 'sql.state-ttl': `${flink.stateTtl.attributionHours} h` },
    });
    this.duplicateClicks = new FlinkPipeline(this, 'duplicate-clicks', {
      ...common,
      pipeline: 'duplicate-clicks',
      deployment: flink.pipelines['duplicate-clicks'],
      dmlProperties: { 'sql.state-ttl': `${flink.stateTtl.duplicateClicksHours} h` },
    });
  }

  private credentialVariables(): FlinkApiCredentials {
    const apiKey = new TerraformVariable(this, 'flink_api_key', {
      type: 'string',
      sensitive: true,
      description: 'Flink API key of the statement deployer (streaming stack output flink_api_key).',
    });
    const apiSecret = new TerraformVariable(this, 'flink_api_secret', {
      type: 'string',
      sensitive: true,
      description: 'Flink API secret of the statement deployer (streaming stack output flink_api_secret).',
    });
    return { apiKey: apiKey.stringValue, apiSecret: apiSecret.stringValue };
  }

  /** Every pipeline, in deployment order. */
  public get pipelines(): readonly FlinkPipeline[] {
    return [this.sources, this.performanceMetrics, this.rtbRanking, this.attribution, this.duplicateClicks];
  }
}
