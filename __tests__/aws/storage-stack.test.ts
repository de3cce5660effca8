// Types of the cdktf matchers that Testing.setupJest() registers.
import 'cdktf/lib/testing/adapters/jest';
import { Testing } from 'cdktf';
import { DbInstance } from '@cdktf/provider-aws/lib/db-instance';
import { FUNCTION_DATABASE_ROLES } from '../../constructs/aws/postgres-database';
import { DbProxy } from '@cdktf/provider-aws/lib/db-proxy';
import { ElasticacheReplicationGroup } from '@cdktf/provider-aws/lib/elasticache-replication-group';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import { DataAwsSecretsmanagerRandomPassword } from '@cdktf/provider-aws/lib/data-aws-secretsmanager-random-password';
import { VpcEndpoint } from '@cdktf/provider-aws/lib/vpc-endpoint';
import { NatGateway } from '@cdktf/provider-aws/lib/nat-gateway';
import { Subnet } from '@cdktf/provider-aws/lib/subnet';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { StorageStack } from '../../stacks/storage-stack';

Testing.setupJest();
import { STORAGE_OUTPUTS } from '../../constructs/aws/stack-inputs';
import { testEnvironment } from './support/fixtures';

type Synthesized = { resource: Record<string, Record<string, Record<string, unknown>>>; output: Record<string, unknown>; provider: Record<string, unknown[]> };

function synthStorage(name: 'dev' | 'prod', overrides = {}) {
  const stack = new StorageStack(Testing.app(), { config: testEnvironment(name, overrides) });
  const json = Testing.synth(stack, true);
  return { stack, json, parsed: JSON.parse(json) as Synthesized };
}

describe('StorageStack', () => {
  describe.each(['dev', 'prod'] as const)('%s', (name) => {
    const config = testEnvironment(name);
    const { stack, json, parsed } = synthStorage(name);

    test('matches the reviewed HCL', () => {
      expect(Testing.synthHcl(stack)).toMatchSnapshot();
    });

    test('passes every policy rule', () => {
      expect(stack.policy.violations).toEqual([]);
    });

    test('the ledger database is encrypted, private, uses an RDS-managed password and TLS', () => {
      expect(json).toHaveResourceWithProperties(DbInstance, {
        engine: 'postgres',
        storage_encrypted: true,
        publicly_accessible: false,
        manage_master_user_password: true,
        multi_az: config.database.multiAz,
        backup_retention_period: config.database.backupRetentionDays,
        deletion_protection: config.production,
      });
      const [db] = Object.values(parsed.resource.aws_db_instance);
      expect(db).not.toHaveProperty('password');
      expect(JSON.stringify(parsed.resource.aws_db_parameter_group)).toContain('"rds.force_ssl"');
    });

    test('one credentials secret per function database role, which the proxy (if any) accepts too', () => {
      const p = JSON.parse(json) as { resource: Record<string, Record<string, Record<string, unknown>>> };
      const names = Object.values(p.resource.aws_secretsmanager_secret)
        .map((secret) => String(secret.name))
        .filter((n) => n.includes('/db/'))
        .sort();
      expect(names).toEqual(
        Object.values(FUNCTION_DATABASE_ROLES)
          .map((role) => `adstream/${name}/db/${role}`)
          .sort(),
      );
      for (const version of Object.values(p.resource.aws_secretsmanager_secret_version).filter((v) => String(v.secret_string).includes('jsonencode'))) {
        expect(version.secret_string).toMatch(
          /^\$\{jsonencode\(\{"username" = "adstream_[a-z_]+", "password" = data\.aws_secretsmanager_random_password\.[^.]+\.random_password\}\)\}$/,
        );
      }
      if (config.database.useProxy) {
        const [proxy] = Object.values(p.resource.aws_db_proxy);
        expect((proxy.auth as unknown[]).length).toBe(1 + Object.keys(FUNCTION_DATABASE_ROLES).length);
      }
    });

    test('Postgres pins the major version only: minors upgrade automatically, majors never by surprise', () => {
      expect(json).toHaveResourceWithProperties(DbInstance, { engine_version: '16', auto_minor_version_upgrade: true, allow_major_version_upgrade: false });
    });

    test("the interface endpoints admit only this account's principals reaching this account's resources", () => {
      const parsed = JSON.parse(json) as {
        resource: Record<string, Record<string, Record<string, unknown>>>;
        data: Record<string, Record<string, Record<string, unknown>>>;
      };
      const interfaces = Object.values(parsed.resource.aws_vpc_endpoint).filter((e) => e.vpc_endpoint_type === 'Interface');
      expect(interfaces).toHaveLength(3);
      for (const endpoint of interfaces) expect(endpoint.policy).toMatch(/^\$\{data\.aws_iam_policy_document\.network_endpoint-policy_[^.]+\.json\}$/);
      const [, document] = Object.entries(parsed.data.aws_iam_policy_document).find(([key]) => key.startsWith('network_endpoint-policy_'))!;
      expect(JSON.stringify(document.statement)).toContain('aws:PrincipalAccount');
      expect(JSON.stringify(document.statement)).toContain('aws:ResourceAccount');
      expect(JSON.stringify(document.statement)).toContain(config.aws.accountId);
    });

    test('Redis uses TLS, encryption at rest and an AUTH token generated into Secrets Manager', () => {
      expect(json).toHaveResourceWithProperties(ElasticacheReplicationGroup, {
        transit_encryption_enabled: true,
        at_rest_encryption_enabled: 'true',
        num_cache_clusters: 1 + config.cache.replicas,
        automatic_failover_enabled: config.cache.replicas > 0,
      });
      const [group] = Object.values(parsed.resource.aws_elasticache_replication_group);
      expect(group.auth_token).toMatch(/^\$\{aws_secretsmanager_secret_version\.[^}]+\.secret_string\}$/);
      expect(json).toHaveDataSourceWithProperties(DataAwsSecretsmanagerRandomPassword, { password_length: 64, exclude_punctuation: true });
      expect(json).toHaveResourceWithProperties(SecretsmanagerSecretVersion, { lifecycle: { ignore_changes: ['secret_string'] } });
    });

    test('the AUTH token is rotated by the runbook, never by an apply: ROTATE strategy, token changes ignored', () => {
      const [group] = Object.values(parsed.resource.aws_elasticache_replication_group);
      expect(group.auth_token_update_strategy).toBe('ROTATE');
      expect((group.lifecycle as { ignore_changes: string[] }).ignore_changes).toEqual(['auth_token', 'auth_token_update_strategy']);
    });

    test('the network has one private subnet per zone, NAT per config and the service endpoints', () => {
      if (config.network.mode !== 'create') throw new Error('test environments create their VPC');
      expect(Object.keys(parsed.resource[Subnet.tfResourceType]).filter((k) => k.includes('private'))).toHaveLength(config.network.availabilityZones);
      expect(Object.keys(parsed.resource[NatGateway.tfResourceType])).toHaveLength(config.network.natGateways);
      for (const service of ['secretsmanager', 'sns', 'sqs']) {
        expect(json).toHaveResourceWithProperties(VpcEndpoint, {
          service_name: `com.amazonaws.${config.aws.region}.${service}`,
          vpc_endpoint_type: 'Interface',
          private_dns_enabled: true,
        });
      }
    });

    test('RDS Proxy is there exactly when config.database.useProxy', () => {
      expect(Object.keys(parsed.resource[DbProxy.tfResourceType] ?? {})).toHaveLength(config.database.useProxy ? 1 : 0);
    });

    test('outputs the named values people and tools read (STORAGE_OUTPUTS)', () => {
      expect(Object.keys(parsed.output).sort()).toEqual(Object.values(STORAGE_OUTPUTS).sort());
    });

    test('the provider pins the account and carries no credentials', () => {
      expect(json).toHaveProviderWithProperties(AwsProvider, { region: config.aws.region, allowed_account_ids: [config.aws.accountId] });
      expect(JSON.stringify(parsed.provider)).not.toMatch(/access_key|secret_key|skip_/);
    });
  });

  test('production protects the database and cache from destroy; dev does not', () => {
    for (const name of ['dev', 'prod'] as const) {
      const { parsed } = synthStorage(name);
      const production = name === 'prod';
      for (const type of ['aws_db_instance', 'aws_elasticache_replication_group']) {
        for (const resource of Object.values(parsed.resource[type])) {
          expect((resource.lifecycle as { prevent_destroy: boolean }).prevent_destroy).toBe(production);
        }
      }
    }
  });

  test('the database admits nobody until a function is connected', () => {
    const { parsed } = synthStorage('dev');
    const ingress = Object.values(parsed.resource.aws_vpc_security_group_ingress_rule ?? {});
    // dev has no proxy: the only ingress rule is HTTPS into the endpoints, none on 5432 or 6379.
    expect(ingress.map((r) => r.from_port)).toEqual([443]);
  });

  test('a referenced VPC creates no network, only uses the given subnets', () => {
    const { parsed } = synthStorage('dev', {
      network: { mode: 'reference', vpcId: 'vpc-0abc12345', privateSubnetIds: ['subnet-0abc12345', 'subnet-0abc12346'] },
    });
    expect(parsed.resource.aws_vpc).toBeUndefined();
    expect(JSON.stringify(parsed.resource.aws_db_subnet_group)).toContain('subnet-0abc12346');
  });
});
