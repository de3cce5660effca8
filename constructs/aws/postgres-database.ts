import { Construct } from 'constructs';
import { Fn } from 'cdktf';
import { DbSubnetGroup } from '@cdktf/provider-aws/lib/db-subnet-group';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import { DataAwsSecretsmanagerRandomPassword } from '@cdktf/provider-aws/lib/data-aws-secretsmanager-random-password';
import { DbParameterGroup } from '@cdktf/provider-aws/lib/db-parameter-group';
import { DbInstance } from '@cdktf/provider-aws/lib/db-instance';
import { DbProxy } from '@cdktf/provider-aws/lib/db-proxy';
import { DbProxyDefaultTargetGroup } from '@cdktf/provider-aws/lib/db-proxy-default-target-group';
import { DbProxyTarget } from '@cdktf/provider-aws/lib/db-proxy-target';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule';
import { VpcSecurityGroupEgressRule } from '@cdktf/provider-aws/lib/vpc-security-group-egress-rule';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import type { DatabaseConfig } from '../../config/schema';
import type { PostgresEndpoint, WorkerSubnets } from './endpoints';

/** Port of the database and of its proxy. */
export const POSTGRES_PORT = 5432;
/** Name of the application database. */
export const DATABASE_NAME = 'adstream';

/**
 * One database role per worker function (db-migrate uses the master user). The migration
 * db/migrations/1764500000000_function-roles.sql creates exactly these, with their grants.
 */
export const FUNCTION_DATABASE_ROLES = {
  clickBalance: 'adstream_click_balance',
  compensation: 'adstream_compensation',
  budgetReset: 'adstream_budget_reset',
  outboxSweep: 'adstream_outbox_sweep',
  rankingCache: 'adstream_ranking_cache',
  /** Reads only (db/migrations/1764700000000_ledger-entries.sql). */
  reconcile: 'adstream_reconcile',
} as const;

/** Props of {@link PostgresDatabase}. */
export interface PostgresDatabaseProps {
  /** Sizing, version, backups and the proxy switch. */
  readonly config: DatabaseConfig;
  /** Where the instance (and proxy) live. */
  readonly network: WorkerSubnets;
  /** Identifier prefix, e.g. `adstream-dev`. */
  readonly namePrefix: string;
  /** Deletion protection, `prevent_destroy` and a final snapshot. */
  readonly production: boolean;
  /** Name prefix of the function roles' secrets, e.g. `adstream/dev/db`. */
  readonly secretPrefix: string;
  /**
   * Performance Insights retention and Enhanced Monitoring (see `DatabaseInsight`).
   * @default - Performance Insights off, no Enhanced Monitoring
   */
  readonly insight?: DatabaseInsightSettings;
}

/** Performance Insights and Enhanced Monitoring of the instance. */
export interface DatabaseInsightSettings {
  /** Days Performance Insights keeps its data (7, or a multiple of 31 up to 731). */
  readonly performanceInsightsRetentionDays: number;
  /** Enhanced Monitoring interval in seconds; 0 turns it off. */
  readonly enhancedMonitoringSeconds: number;
  /** Role RDS publishes Enhanced Monitoring with; required when the interval is above 0. */
  readonly monitoringRoleArn?: string;
}

/**
 * The money ledger: RDS Postgres with a master password RDS generates and rotates in Secrets
 * Manager, encrypted storage, TLS enforced, automated backups, never public. Its security
 * group admits nobody by itself; clients are let in by `WorkerFunction.connectTo`, so only the
 * functions (or the proxy in front) reach port 5432. With `useProxy`, RDS Proxy pools the
 * functions' connections and absorbs failovers.
 */
export class PostgresDatabase extends Construct implements PostgresEndpoint {
  /** Host clients use: the proxy endpoint when there is one, else the instance address. */
  public readonly host: string;
  /** Port clients use. */
  public readonly port = POSTGRES_PORT;
  /** Database name. */
  public readonly databaseName = DATABASE_NAME;
  /** ARN of the RDS-managed master secret. */
  public readonly credentialsSecretArn: string;
  /** ARN of each function role's `{"username","password"}` secret, by role name. */
  public readonly roleSecretArns: Readonly<Record<string, string>>;
  /** Security group clients must be admitted to (the proxy's, when there is one). */
  public readonly securityGroupId: string;
  /** The instance. */
  public readonly instance: DbInstance;
  /** The proxy in front of the instance, when `useProxy`. */
  public readonly proxy?: DbProxy;

  constructor(scope: Construct, id: string, props: PostgresDatabaseProps) {
    super(scope, id);
    const { config, namePrefix, production } = props;
    const identifier = `${namePrefix}-ledger`;
    const major = config.engineVersion;

    const subnets = new DbSubnetGroup(this, 'subnets', {
      name: identifier,
      description: 'Private subnets of the adstream ledger database',
      subnetIds: props.network.privateSubnetIds,
    });
    const instanceGroup = new SecurityGroup(this, 'security-group', {
      name: `${identifier}-db`,
      description: 'adstream ledger database; clients are added one by one',
      vpcId: props.network.vpcId,
    });
    const parameters = new DbParameterGroup(this, 'parameters', {
      name: `${identifier}-postgres${major}`,
      family: `postgres${major}`,
      description: 'adstream ledger: TLS only',
      parameter: [{ name: 'rds.force_ssl', value: '1' }],
    });

    this.instance = new DbInstance(this, 'instance', {
      identifier,
      engine: 'postgres',
      engineVersion: config.engineVersion,
      instanceClass: config.instanceClass,
      allocatedStorage: config.allocatedStorageGb,
      maxAllocatedStorage: config.maxAllocatedStorageGb,
      storageType: 'gp3',
      storageEncrypted: true,
      dbName: DATABASE_NAME,
      username: 'adstream_admin',
      manageMasterUserPassword: true,
      dbSubnetGroupName: subnets.name,
      vpcSecurityGroupIds: [instanceGroup.id],
      parameterGroupName: parameters.name,
      publiclyAccessible: false,
      multiAz: config.multiAz,
      backupRetentionPeriod: config.backupRetentionDays,
      copyTagsToSnapshot: true,
      // engineVersion is the major only: RDS applies minors in the maintenance window, and a
      // major upgrade stays a deliberate config change.
      autoMinorVersionUpgrade: true,
      allowMajorVersionUpgrade: false,
      deletionProtection: production,
      skipFinalSnapshot: !production,
      ...(production ? { finalSnapshotIdentifier: `${identifier}-final` } : {}),
      lifecycle: { preventDestroy: production },
      ...(props.insight
        ? {
            performanceInsightsEnabled: true,
            performanceInsightsRetentionPeriod: props.insight.performanceInsightsRetentionDays,
            ...(props.insight.enhancedMonitoringSeconds > 0
              ? { monitoringInterval: props.insight.enhancedMonitoringSeconds, monitoringRoleArn: props.insight.monitoringRoleArn }
              : {}),
          }
        : {}),
    });
    const masterSecretArn = this.instance.masterUserSecret.get(0).secretArn;
    this.credentialsSecretArn = masterSecretArn;

    // One secret per function role, with a generated password; db-migrate sets it on the role.
    const roleSecrets: Record<string, string> = {};
    for (const role of Object.values(FUNCTION_DATABASE_ROLES)) {
      const secret = new SecretsmanagerSecret(this, `role-${role}`, {
        name: `${props.secretPrefix}/${role}`,
        description: `Credentials of the database role ${role} (one adstream worker function)`,
        recoveryWindowInDays: production ? 30 : 7,
        lifecycle: { preventDestroy: production },
      });
      // Generated once at apply; later plans ignore it (the stored password does not change by itself).
      const password = new DataAwsSecretsmanagerRandomPassword(this, `role-${role}-password`, {
        passwordLength: 48,
        excludePunctuation: true,
        dependsOn: [secret],
      });
      new SecretsmanagerSecretVersion(this, `role-${role}-value`, {
        secretId: secret.id,
        secretString: Fn.jsonencode({ username: role, password: password.randomPassword }),
        lifecycle: { ignoreChanges: ['secret_string'] },
      });
      roleSecrets[role] = secret.arn;
    }
    this.roleSecretArns = roleSecrets;

    if (!config.useProxy) {
      this.host = this.instance.address;
      this.securityGroupId = instanceGroup.id;
      return;
    }

    const proxyGroup = new SecurityGroup(this, 'proxy-security-group', {
      name: `${identifier}-proxy`,
      description: 'RDS Proxy of the adstream ledger; clients are added one by one',
      vpcId: props.network.vpcId,
    });
    new VpcSecurityGroupIngressRule(this, 'instance-from-proxy', {
      securityGroupId: instanceGroup.id,
      description: 'Postgres from the RDS Proxy',
      ipProtocol: 'tcp',
      fromPort: POSTGRES_PORT,
      toPort: POSTGRES_PORT,
      referencedSecurityGroupId: proxyGroup.id,
    });
    new VpcSecurityGroupEgressRule(this, 'proxy-to-instance', {
      securityGroupId: proxyGroup.id,
      description: 'Postgres to the instance',
      ipProtocol: 'tcp',
      fromPort: POSTGRES_PORT,
      toPort: POSTGRES_PORT,
      referencedSecurityGroupId: instanceGroup.id,
    });

    const assume = new DataAwsIamPolicyDocument(this, 'proxy-assume', {
      statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['rds.amazonaws.com'] }] }],
    });
    const access = new DataAwsIamPolicyDocument(this, 'proxy-access', {
      statement: [
        {
          sid: 'ReadDatabaseSecrets',
          effect: 'Allow',
          actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
          resources: [masterSecretArn, ...Object.values(roleSecrets)],
        },
      ],
    });
    const role = new IamRole(this, 'proxy-role', { name: `${identifier}-proxy`, assumeRolePolicy: assume.json });
    const rolePolicy = new IamRolePolicy(this, 'proxy-role-policy', { name: 'read-master-secret', role: role.id, policy: access.json });

    const proxy = new DbProxy(this, 'proxy', {
      name: identifier,
      engineFamily: 'POSTGRESQL',
      roleArn: role.arn,
      vpcSubnetIds: props.network.privateSubnetIds,
      vpcSecurityGroupIds: [proxyGroup.id],
      requireTls: true,
      idleClientTimeout: 1800,
      // The proxy logs in as whoever the client is: the master user (db-migrate) or one role.
      auth: [masterSecretArn, ...Object.values(roleSecrets)].map((secretArn) => ({
        authScheme: 'SECRETS',
        iamAuth: 'DISABLED',
        secretArn,
        clientPasswordAuthType: 'POSTGRES_SCRAM_SHA_256',
      })),
      dependsOn: [rolePolicy],
    });
    new DbProxyDefaultTargetGroup(this, 'proxy-targets', {
      dbProxyName: proxy.name,
      connectionPoolConfig: { maxConnectionsPercent: 90, connectionBorrowTimeout: 30 },
    });
    new DbProxyTarget(this, 'proxy-target', {
      dbProxyName: proxy.name,
      targetGroupName: 'default',
      dbInstanceIdentifier: this.instance.identifier,
    });
    this.proxy = proxy;
    this.host = proxy.endpoint;
    this.securityGroupId = proxyGroup.id;
  }
}
