import { Construct } from 'constructs';
import { ElasticacheSubnetGroup } from '@cdktf/provider-aws/lib/elasticache-subnet-group';
import { ElasticacheReplicationGroup } from '@cdktf/provider-aws/lib/elasticache-replication-group';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import { DataAwsSecretsmanagerRandomPassword } from '@cdktf/provider-aws/lib/data-aws-secretsmanager-random-password';
import type { CacheConfig } from '../../config/schema';
import type { RedisEndpoint, WorkerSubnets } from './endpoints';

/** Port of the cache. */
export const REDIS_PORT = 6379;

/** Props of {@link RedisCache}. */
export interface RedisCacheProps {
  /** Node type, version and replicas. */
  readonly config: CacheConfig;
  /** Where the nodes live. */
  readonly network: WorkerSubnets;
  /** Identifier prefix, e.g. `adstream-dev`. */
  readonly namePrefix: string;
  /** Secret name of the AUTH token, e.g. `adstream/dev/redis/auth-token`. */
  readonly authSecretName: string;
  /** `prevent_destroy`, snapshots. */
  readonly production: boolean;
}

/**
 * The price and ranking cache: ElastiCache Redis with TLS and encryption at rest, an AUTH
 * token that Secrets Manager generates and holds (the value never appears in the synthesized
 * configuration), and with replicas, automatic failover across zones. Like the database, it
 * admits no client until `WorkerFunction.connectToCache` lets one in.
 */
export class RedisCache extends Construct implements RedisEndpoint {
  /** Primary endpoint host name. */
  public readonly host: string;
  /** Port. */
  public readonly port = REDIS_PORT;
  /** ARN of the AUTH token secret. */
  public readonly authTokenSecretArn: string;
  /** Security group clients must be admitted to. */
  public readonly securityGroupId: string;
  /** The replication group. */
  public readonly replicationGroup: ElasticacheReplicationGroup;
  /** Replication group id, e.g. `adstream-dev-cache`. */
  public readonly replicationGroupId: string;
  /**
   * Ids of the group's nodes (`<group>-001` is created as the primary, then one per replica),
   * the `CacheClusterId` dimension of the node metrics.
   */
  public readonly memberClusterIds: readonly string[];

  constructor(scope: Construct, id: string, props: RedisCacheProps) {
    super(scope, id);
    const { config, namePrefix, production } = props;
    const identifier = `${namePrefix}-cache`;
    const replicated = config.replicas >= 1;
    this.replicationGroupId = identifier;
    this.memberClusterIds = Array.from({ length: 1 + config.replicas }, (_, index) => `${identifier}-${String(index + 1).padStart(3, '0')}`);

    const secret = new SecretsmanagerSecret(this, 'auth-secret', {
      name: props.authSecretName,
      description: 'AUTH token of the adstream Redis cache',
      recoveryWindowInDays: production ? 30 : 7,
      lifecycle: { preventDestroy: production },
    });
    // Read at apply time on the first deploy (the depends_on defers it while the secret is
    // being created), and on later plans ignored: the stored token never changes by itself.
    const generated = new DataAwsSecretsmanagerRandomPassword(this, 'auth-token', {
      passwordLength: 64,
      excludePunctuation: true,
      dependsOn: [secret],
    });
    const token = new SecretsmanagerSecretVersion(this, 'auth-token-value', {
      secretId: secret.id,
      secretString: generated.randomPassword,
      lifecycle: { ignoreChanges: ['secret_string'] },
    });
    this.authTokenSecretArn = secret.arn;

    const subnets = new ElasticacheSubnetGroup(this, 'subnets', {
      name: identifier,
      description: 'Private subnets of the adstream cache',
      subnetIds: props.network.privateSubnetIds,
    });
    const group = new SecurityGroup(this, 'security-group', {
      name: identifier,
      description: 'adstream cache; clients are added one by one',
      vpcId: props.network.vpcId,
    });
    this.securityGroupId = group.id;

    this.replicationGroup = new ElasticacheReplicationGroup(this, 'replication-group', {
      replicationGroupId: identifier,
      description: 'adstream prices, budgets mirror and RTB rankings',
      engine: 'redis',
      engineVersion: config.engineVersion,
      nodeType: config.nodeType,
      numCacheClusters: 1 + config.replicas,
      automaticFailoverEnabled: replicated,
      multiAzEnabled: replicated,
      port: REDIS_PORT,
      subnetGroupName: subnets.name,
      securityGroupIds: [group.id],
      atRestEncryptionEnabled: 'true',
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      authToken: token.secretString,
      // Terraform sets the first token only. A rotation (docs/operations.md, "Redis AUTH token")
      // must go ROTATE on the group, then the secret, then SET, in that order, with time for
      // the functions between; one apply would write the secret before the group accepts the
      // token. ROTATE is named so that nothing here can ever drop the token in use.
      authTokenUpdateStrategy: 'ROTATE',
      snapshotRetentionLimit: production ? 7 : 0,
      autoMinorVersionUpgrade: 'true',
      applyImmediately: !production,
      lifecycle: { preventDestroy: production, ignoreChanges: ['auth_token', 'auth_token_update_strategy'] },
    });
    this.host = this.replicationGroup.primaryEndpointAddress;
  }
}
