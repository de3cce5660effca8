import { Construct } from 'constructs';
import { TerraformOutput } from 'cdktf';
import { createAwsProvider } from '../constructs/aws/aws-provider';
import { WorkerNetwork } from '../constructs/aws/worker-network';
import { PostgresDatabase } from '../constructs/aws/postgres-database';
import { RedisCache } from '../constructs/aws/redis-cache';
import { STORAGE_OUTPUTS, StorageHandoff } from '../constructs/aws/stack-inputs';
import { AlertChannel } from '../constructs/aws/alert-channel';
import { EnhancedMonitoringRole } from '../constructs/aws/database-insight';
import { StorageAlarms } from '../constructs/aws/storage-alarms';
import { EnvironmentStack, EnvironmentStackProps } from './environment-stack';

/** Props of the AWS stacks. */
export interface AwsStackProps extends EnvironmentStackProps {
  /**
   * Test-only: configure the AWS provider so `terraform plan` runs without AWS credentials
   * or network (see `createAwsProvider`). `main.ts` never sets it.
   * @default false
   */
  readonly offlinePlan?: boolean;
}

/**
 * The stateful AWS side of one environment, deployed rarely: the VPC the workers run in, the
 * Postgres ledger and the Redis cache. The workers stack references its constructs directly
 * (cdktf cross-stack references); the named outputs (`STORAGE_OUTPUTS`) are for people.
 */
export class StorageStack extends EnvironmentStack implements StorageHandoff {
  /** The network. */
  public readonly network: WorkerNetwork;
  /** The ledger database. */
  public readonly database: PostgresDatabase;
  /** The cache. */
  public readonly cache: RedisCache;

  constructor(scope: Construct, props: AwsStackProps) {
    super(scope, 'storage', props);
    const { config } = props;
    const prefix = `adstream-${config.name}`;
    createAwsProvider(this, { aws: config.aws, offlinePlan: props.offlinePlan });

    this.network = new WorkerNetwork(this, 'network', {
      config: config.network,
      region: config.aws.region,
      namePrefix: prefix,
      accountId: config.aws.accountId,
    });
    const subnets = { vpcId: this.network.vpcId, privateSubnetIds: this.network.privateSubnetIds };
    const insight = config.monitoring.database;
    const monitoringRole =
      insight.enhancedMonitoringSeconds > 0
        ? new EnhancedMonitoringRole(this, 'ledger-monitoring', { roleName: `${prefix}-ledger-monitoring`, region: config.aws.region })
        : undefined;
    this.database = new PostgresDatabase(this, 'ledger', {
      config: config.database,
      network: subnets,
      namePrefix: prefix,
      production: config.production,
      insight: { ...insight, monitoringRoleArn: monitoringRole?.roleArn },
      secretPrefix: `adstream/${config.name}/db`,
    });
    this.cache = new RedisCache(this, 'cache', {
      config: config.cache,
      network: subnets,
      namePrefix: prefix,
      authSecretName: `adstream/${config.name}/redis/auth-token`,
      production: config.production,
    });

    // The stateful tier's alarms live next to what they watch (policy ADS-AWS9 checks them per
    // stack), with their own alert topic: this stack deploys before the workers' one exists.
    const alerts = new AlertChannel(this, 'alerts', {
      config: config.alerts,
      location: { region: config.aws.region, accountId: config.aws.accountId },
      namePrefix: `${prefix}-storage`,
      production: config.production,
    });
    new StorageAlarms(this, 'alarms', {
      config,
      target: alerts,
      tier: {
        database: { instanceIdentifier: this.database.instance.identifier, resourceId: this.database.instance.resourceId },
        ...(this.database.proxy ? { proxyName: this.database.proxy.name } : {}),
        cacheNodeIds: this.cache.memberClusterIds,
        natGateways: this.network.natGateways,
      },
    });

    const n = STORAGE_OUTPUTS;
    new TerraformOutput(this, n.vpcId, { value: this.network.vpcId });
    new TerraformOutput(this, n.privateSubnetIds, { value: this.network.privateSubnetIds });
    new TerraformOutput(this, n.databaseHost, { value: this.database.host });
    new TerraformOutput(this, n.databasePort, { value: this.database.port });
    new TerraformOutput(this, n.databaseName, { value: this.database.databaseName });
    new TerraformOutput(this, n.databaseSecretArn, { value: this.database.credentialsSecretArn });
    new TerraformOutput(this, n.databaseSecurityGroupId, { value: this.database.securityGroupId });
    new TerraformOutput(this, n.redisHost, { value: this.cache.host });
    new TerraformOutput(this, n.redisPort, { value: this.cache.port });
    new TerraformOutput(this, n.redisAuthSecretArn, { value: this.cache.authTokenSecretArn });
    new TerraformOutput(this, n.redisSecurityGroupId, { value: this.cache.securityGroupId });
  }
}
