import { App, TerraformStack, TerraformVariable, Testing } from 'cdktf';
import { Construct } from 'constructs';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { DbInstance, DbInstanceConfig } from '@cdktf/provider-aws/lib/db-instance';
import { ElasticacheReplicationGroup, ElasticacheReplicationGroupConfig } from '@cdktf/provider-aws/lib/elasticache-replication-group';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { SecurityGroupRule } from '@cdktf/provider-aws/lib/security-group-rule';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule';
import { LambdaFunction, LambdaFunctionConfig } from '@cdktf/provider-aws/lib/lambda-function';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import {
  AWS_POLICY_RULES,
  findSecretLiterals,
  functionLimits,
  noOpenStoreIngress,
  noSecretLiterals,
  productionStatefulPreventDestroy,
  rdsStorageEncrypted,
  redisEncrypted,
  snsEncrypted,
  sqsEncrypted,
} from '../../constructs/policy/rules/aws';
import { applyPolicy } from '../../constructs/policy/aspect';
import { ALL_POLICY_RULES } from '../../constructs/policy/rules';
import type { PolicyRule } from '../../constructs/policy/rule';
import { StreamingStack } from '../../stacks/streaming-stack';
import { loadEnvironment } from '../../config';

const DEV = { production: false };
const PROD = { production: true };

function stack(): TerraformStack {
  const s = new TerraformStack(new App(), 'policy-test');
  new AwsProvider(s, 'aws', { region: 'ap-northeast-2' });
  return s;
}

function database(scope: Construct, overrides: Partial<DbInstanceConfig> = {}): DbInstance {
  return new DbInstance(scope, 'db', {
    instanceClass: 'db.t4g.micro',
    engine: 'postgres',
    storageEncrypted: true,
    manageMasterUserPassword: true,
    ...overrides,
  });
}

function cache(scope: Construct, overrides: Partial<ElasticacheReplicationGroupConfig> = {}): ElasticacheReplicationGroup {
  return new ElasticacheReplicationGroup(scope, 'cache', {
    replicationGroupId: 'c',
    description: 'c',
    transitEncryptionEnabled: true,
    atRestEncryptionEnabled: 'true',
    ...overrides,
  });
}

function fn(scope: Construct, overrides: Partial<LambdaFunctionConfig> = {}): LambdaFunction {
  return new LambdaFunction(scope, 'fn', {
    functionName: 'worker',
    role: 'arn:aws:iam::111111111111:role/r',
    timeout: 60,
    reservedConcurrentExecutions: 2,
    ...overrides,
  });
}

test('AWS_POLICY_RULES are part of ALL_POLICY_RULES and have unique ids', () => {
  for (const rule of AWS_POLICY_RULES) expect(ALL_POLICY_RULES).toContain(rule);
  expect(new Set(AWS_POLICY_RULES.map((r) => r.id)).size).toBe(AWS_POLICY_RULES.length);
});

describe('ADS-AWS1 RDS storage encryption', () => {
  test('compliant: storage_encrypted = true', () => expect(rdsStorageEncrypted.check(database(stack()), DEV)).toBeUndefined());
  test('violation: storage not encrypted', () =>
    expect(rdsStorageEncrypted.check(database(stack(), { storageEncrypted: false }), DEV)).toMatch(/storage_encrypted = true/));
  test('not applicable to other resources', () => expect(rdsStorageEncrypted.check(new SqsQueue(stack(), 'q', {}), DEV)).toBeUndefined());
});

describe('ADS-AWS2 Redis encryption', () => {
  test('compliant: transit and at rest', () => expect(redisEncrypted.check(cache(stack()), DEV)).toBeUndefined());
  test('violation: no transit encryption', () =>
    expect(redisEncrypted.check(cache(stack(), { transitEncryptionEnabled: false }), DEV)).toMatch(/transit_encryption_enabled = true/));
  test('violation: no encryption at rest', () =>
    expect(redisEncrypted.check(cache(stack(), { atRestEncryptionEnabled: undefined }), DEV)).toMatch(/at_rest_encryption_enabled = true/));
});

describe('ADS-AWS3 SQS encryption', () => {
  test('compliant: SSE-SQS', () => expect(sqsEncrypted.check(new SqsQueue(stack(), 'q', { sqsManagedSseEnabled: true }), DEV)).toBeUndefined());
  test('compliant: KMS', () => expect(sqsEncrypted.check(new SqsQueue(stack(), 'q', { kmsMasterKeyId: 'alias/k' }), DEV)).toBeUndefined());
  test('violation: unencrypted queue', () =>
    expect(sqsEncrypted.check(new SqsQueue(stack(), 'q', { sqsManagedSseEnabled: false }), DEV)).toMatch(/sqs_managed_sse_enabled/));
});

describe('ADS-AWS4 SNS encryption', () => {
  test('compliant: KMS key', () => expect(snsEncrypted.check(new SnsTopic(stack(), 't', { kmsMasterKeyId: 'arn:aws:kms:x' }), DEV)).toBeUndefined());
  test('violation: no key', () => expect(snsEncrypted.check(new SnsTopic(stack(), 't', {}), DEV)).toMatch(/kms_master_key_id/));
});

describe('ADS-AWS5 no open ingress to 5432/6379', () => {
  const rule = noOpenStoreIngress;
  test('compliant: Postgres from a security group', () => {
    expect(
      rule.check(
        new VpcSecurityGroupIngressRule(stack(), 'r', {
          securityGroupId: 'sg-1',
          ipProtocol: 'tcp',
          fromPort: 5432,
          toPort: 5432,
          referencedSecurityGroupId: 'sg-2',
        }),
        DEV,
      ),
    ).toBeUndefined();
  });
  test("compliant: HTTPS from anywhere is not this rule's business", () => {
    expect(
      rule.check(
        new VpcSecurityGroupIngressRule(stack(), 'r', { securityGroupId: 'sg-1', ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidrIpv4: '0.0.0.0/0' }),
        DEV,
      ),
    ).toBeUndefined();
  });
  test('violation: Postgres from 0.0.0.0/0 (vpc ingress rule)', () => {
    expect(
      rule.check(
        new VpcSecurityGroupIngressRule(stack(), 'r', { securityGroupId: 'sg-1', ipProtocol: 'tcp', fromPort: 5432, toPort: 5432, cidrIpv4: '0.0.0.0/0' }),
        DEV,
      ),
    ).toMatch(/0\.0\.0\.0\/0 → 5432/);
  });
  test('violation: Redis from ::/0 inside a port range (security group rule)', () => {
    expect(
      rule.check(
        new SecurityGroupRule(stack(), 'r', {
          type: 'ingress',
          securityGroupId: 'sg-1',
          protocol: 'tcp',
          fromPort: 6000,
          toPort: 7000,
          ipv6CidrBlocks: ['::/0'],
        }),
        DEV,
      ),
    ).toMatch(/::\/0 → 6379/);
  });
  test('violation: all traffic from anywhere (inline ingress of a security group)', () => {
    const group = new SecurityGroup(stack(), 'g', { ingress: [{ protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'] }] });
    expect(rule.check(group, DEV)).toMatch(/0\.0\.0\.0\/0 → 5432/);
  });
  test('compliant: an egress security group rule to anywhere', () => {
    expect(
      rule.check(
        new SecurityGroupRule(stack(), 'r', {
          type: 'egress',
          securityGroupId: 'sg-1',
          protocol: 'tcp',
          fromPort: 5432,
          toPort: 5432,
          cidrBlocks: ['0.0.0.0/0'],
        }),
        DEV,
      ),
    ).toBeUndefined();
  });
});

describe('ADS-AWS6 function limits', () => {
  test('compliant: timeout, reserved concurrency and its log group with retention', () => {
    const s = stack();
    new CloudwatchLogGroup(s, 'logs', { name: '/aws/lambda/worker', retentionInDays: 14 });
    expect(functionLimits.check(fn(s), DEV)).toBeUndefined();
  });
  test('compliant: log group referenced through logging_config', () => {
    const s = stack();
    const logs = new CloudwatchLogGroup(s, 'logs', { name: 'custom/worker', retentionInDays: 14 });
    expect(functionLimits.check(fn(s, { loggingConfig: { logFormat: 'JSON', logGroup: logs.name } }), DEV)).toBeUndefined();
  });
  test('violation: no timeout and no reserved concurrency', () => {
    const s = stack();
    new CloudwatchLogGroup(s, 'logs', { name: '/aws/lambda/worker', retentionInDays: 14 });
    const message = functionLimits.check(fn(s, { timeout: undefined, reservedConcurrentExecutions: undefined }), DEV);
    expect(message).toMatch(/set timeout/);
    expect(message).toMatch(/reserved_concurrent_executions/);
  });
  test('violation: no log group', () => expect(functionLimits.check(fn(stack()), DEV)).toMatch(/create its log group/));
  test('violation: log group without retention', () => {
    const s = stack();
    new CloudwatchLogGroup(s, 'logs', { name: '/aws/lambda/worker' });
    expect(functionLimits.check(fn(s), DEV)).toMatch(/retention_in_days/);
  });
});

describe('ADS-AWS7 production stateful resources', () => {
  const rule = productionStatefulPreventDestroy;
  test('compliant: protected database in production', () => {
    expect(rule.check(database(stack(), { deletionProtection: true, lifecycle: { preventDestroy: true } }), PROD)).toBeUndefined();
  });
  test('not applicable outside production', () => expect(rule.check(database(stack()), DEV)).toBeUndefined());
  test('violation: database without deletion protection', () => {
    expect(rule.check(database(stack(), { lifecycle: { preventDestroy: true } }), PROD)).toMatch(/deletion_protection = true/);
  });
  test('violation: cache, queue and key without prevent_destroy', () => {
    expect(rule.check(cache(stack()), PROD)).toMatch(/prevent_destroy/);
    expect(rule.check(new SqsQueue(stack(), 'q', { sqsManagedSseEnabled: true }), PROD)).toMatch(/prevent_destroy/);
    expect(rule.check(new KmsKey(stack(), 'k', {}), PROD)).toMatch(/prevent_destroy/);
  });
});

describe('ADS-AWS8 no secret literals', () => {
  test('compliant: secret value from a sensitive variable', () => {
    const s = stack();
    const value = new TerraformVariable(s, 'token', { type: 'string', sensitive: true });
    new SecretsmanagerSecretVersion(s, 'v', { secretId: 'x', secretString: value.stringValue });
    expect(noSecretLiterals.check(s, DEV)).toBeUndefined();
  });
  test('violation: a literal secret_string', () => {
    const s = stack();
    new SecretsmanagerSecretVersion(s, 'v', { secretId: 'x', secretString: 'hunter2-literal' });
    expect(noSecretLiterals.check(s, DEV)).toMatch(/secret_string is a literal/);
  });
  test('violation: a literal auth_token', () => {
    const s = stack();
    cache(s, { authToken: 'a-literal-token-of-sixteen-plus' });
    expect(noSecretLiterals.check(s, DEV)).toMatch(/auth_token is a literal/);
  });
  test('violation: a provider access key', () => {
    const s = new TerraformStack(new App(), 'keys');
    new AwsProvider(s, 'aws', { region: 'ap-northeast-2', accessKey: 'AKIAABCDEFGHIJKLMNOP', secretKey: 'x'.repeat(40) });
    const message = noSecretLiterals.check(s, DEV);
    expect(message).toMatch(/access_key is a literal/);
    expect(message).toMatch(/looks like an AWS access key id/);
  });
  test('violation: a sensitive variable with a default', () => {
    const s = stack();
    new TerraformVariable(s, 'api_secret', { type: 'string', sensitive: true, default: 'x' });
    expect(noSecretLiterals.check(s, DEV)).toMatch(/variable api_secret is sensitive but has a default/);
  });
  test('detects a Confluent-shaped secret anywhere, but not a sha256 digest', () => {
    expect(findSecretLiterals({ resource: { x: { y: { description: 'Ab1+'.repeat(16) } } } })).toEqual([expect.stringMatching(/Confluent API secret/)]);
    expect(findSecretLiterals({ resource: { x: { y: { triggers: { migrations: 'ab12'.repeat(16) } } } } })).toEqual([]);
  });
  test('ignores cdktf metadata ("//"), which names outputs such as api_key', () => {
    expect(findSecretLiterals({ '//': { outputs: { stack: { flink_api_key: 'flink_api_key' } } } })).toEqual([]);
  });
  test('the streaming stack (Confluent keys into Secrets Manager) has no secret literal', () => {
    for (const name of ['dev', 'prod'] as const) {
      const streaming = new StreamingStack(Testing.app(), { config: loadEnvironment(name) });
      Testing.synth(streaming, true);
      expect(streaming.policy.violations.filter((v) => v.ruleId.startsWith('ADS-AWS'))).toEqual([]);
    }
  });
  test('not applicable to resources (it checks whole stacks)', () => expect(noSecretLiterals.check(new SqsQueue(stack(), 'q', {}), DEV)).toBeUndefined());
});

test('the aspect fails synth on an AWS rule violation', () => {
  const s = stack();
  applyPolicy(s, AWS_POLICY_RULES as PolicyRule[], DEV);
  new SqsQueue(s, 'q', {});
  expect(() => Testing.synth(s, true)).toThrow(/ADS-AWS3/);
});
