import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ConfigErrors, loadEnvironment, loadEnvironments, parseEnvironment } from '../../config';
import dev from '../../config/environments/dev';
import prod from '../../config/environments/prod';

type Json = Record<string, unknown>;

/** A deep copy of `base` with the value at a dotted path replaced (or deleted for undefined). */
function withValue(base: object, path: string, value: unknown): Json {
  const copy = structuredClone(base) as Json;
  const keys = path.split('.');
  let node: Json = copy;
  for (const key of keys.slice(0, -1)) node = node[key] as Json;
  const last = keys[keys.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

function errorOf(raw: unknown): ConfigError {
  try {
    parseEnvironment(raw);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected parseEnvironment to throw a ConfigError');
}

describe('environment configuration', () => {
  test('the committed dev and prod files are valid and distinct', () => {
    const envs = loadEnvironments();
    expect(envs.map((e) => e.name)).toEqual(['dev', 'prod']);
    const [d, p] = envs;
    expect(d.production).toBe(false);
    expect(p.production).toBe(true);
    expect(p.flink.maxCfu).toBe(20);
    expect(p.workers.budgetTimeZone).toBe('Asia/Seoul');
    expect(p.workers.startingPosition).toBe('TRIM_HORIZON');
    expect(p.workers.batchSize).toBe(100);
  });

  test('adding an environment is adding one file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'adstream-envs-'));
    writeFileSync(join(dir, 'staging.js'), `module.exports = { default: ${JSON.stringify({ ...structuredClone(dev), name: 'staging' })} };`);
    expect(loadEnvironment('staging', dir).name).toBe('staging');
  });

  test('fails when the file name and the environment name differ', () => {
    const dir = mkdtempSync(join(tmpdir(), 'adstream-envs-'));
    writeFileSync(join(dir, 'qa.js'), `module.exports = { default: ${JSON.stringify(dev)} };`);
    expect(() => loadEnvironments(dir)).toThrow('Invalid configuration at qa.name: got "dev"; allowed: "qa", the name of its file config/environments/qa.js.');
  });

  test('fails when there is no environment file', () => {
    expect(() => loadEnvironments(mkdtempSync(join(tmpdir(), 'adstream-envs-')))).toThrow('at least one environment file');
  });

  test('fails when an unknown environment is asked for', () => {
    expect(() => loadEnvironment('qa')).toThrow('Invalid configuration at --env: got "qa"; allowed: one of "dev", "prod".');
  });

  // Each row: the mutation, the field the message must name, and what it must say is allowed.
  const cases: Array<[string, object, string, unknown, string, string]> = [
    ['the name is not a slug', dev, 'name', 'Dev_1', 'environment.name', 'lowercase letters'],
    ['production is not a boolean', dev, 'production', 'yes', 'dev.production', 'true or false'],
    ['a section has a typo', dev, 'databse', {}, 'dev.databse', 'no such field'],
    ['the Confluent cloud is unknown', dev, 'confluent.cloud', 'IBM', 'dev.confluent.cloud', 'one of "AWS", "GCP", "AZURE"'],
    ['the environment mode is unknown', dev, 'confluent.environment.mode', 'import', 'dev.confluent.environment.mode', 'one of "create", "reference"'],
    [
      'a referenced environment id is malformed',
      dev,
      'confluent.environment',
      { mode: 'reference', id: 'prod' },
      'dev.confluent.environment.id',
      'an environment id',
    ],
    [
      'the environment display name has spaces',
      dev,
      'confluent.environment.displayName',
      'ad stream',
      'dev.confluent.environment.displayName',
      'letters, digits',
    ],
    ['the cluster type is unknown', dev, 'confluent.kafkaCluster.type', 'FREIGHTX', 'dev.confluent.kafkaCluster.type', 'one of "BASIC"'],
    [
      'the cluster availability is unknown',
      dev,
      'confluent.kafkaCluster.availability',
      'TRIPLE_ZONE',
      'dev.confluent.kafkaCluster.availability',
      '"SINGLE_ZONE", "MULTI_ZONE"',
    ],
    ['a DEDICATED cluster has no CKU', dev, 'confluent.kafkaCluster.type', 'DEDICATED', 'dev.confluent.kafkaCluster.cku', 'for a DEDICATED cluster'],
    ['a BASIC cluster has CKUs', dev, 'confluent.kafkaCluster.cku', 2, 'dev.confluent.kafkaCluster.cku', 'only DEDICATED clusters'],
    [
      'a referenced cluster id is malformed',
      dev,
      'confluent.kafkaCluster',
      { mode: 'reference', id: 'cluster-1' },
      'dev.confluent.kafkaCluster.id',
      'a cluster id',
    ],
    ['a topic is missing', dev, 'confluent.topics.ad-events', undefined, 'dev.confluent.topics.ad-events', 'an object'],
    [
      'an unknown topic is configured',
      dev,
      'confluent.topics.clicks',
      { partitions: 1, retentionMs: -1, cleanupPolicy: 'compact' },
      'dev.confluent.topics.clicks',
      'no such field',
    ],
    ['partitions are zero', dev, 'confluent.topics.ad-events.partitions', 0, 'dev.confluent.topics.ad-events.partitions', 'an integer from 1 to 120'],
    [
      'retention is shorter than an hour',
      dev,
      'confluent.topics.ad-events.retentionMs',
      1000,
      'dev.confluent.topics.ad-events.retentionMs',
      '-1 (forever) or an integer',
    ],
    [
      'a delete-policy topic keeps records forever',
      dev,
      'confluent.topics.ad-events.retentionMs',
      -1,
      'dev.confluent.topics.ad-events.retentionMs',
      'a finite retention',
    ],
    [
      'the cleanup policy is unknown',
      dev,
      'confluent.topics.ad-events.cleanupPolicy',
      'purge',
      'dev.confluent.topics.ad-events.cleanupPolicy',
      'one of "delete", "compact", "compact,delete"',
    ],
    [
      'the catalogue feed is not compacted',
      dev,
      'confluent.topics.product-catalog',
      { partitions: 1, retentionMs: 3600000, cleanupPolicy: 'delete' },
      'dev.confluent.topics.product-catalog.cleanupPolicy',
      'latest-value feed',
    ],
    ['the Confluent region is malformed', dev, 'confluent.region', 'Seoul Region', 'dev.confluent.region', 'a cloud region'],
    ['the Flink pool max CFU is not offered', dev, 'flink.maxCfu', 7, 'dev.flink.maxCfu', 'one of 5, 10, 20, 30, 40, 50'],
    ['the AWS region is malformed', dev, 'aws.region', 'seoul', 'dev.aws.region', 'an AWS region'],
    ['the AWS account id is short', dev, 'aws.accountId', '1234', 'dev.aws.accountId', 'a 12-digit AWS account id'],
    ['a tag value is not a string', dev, 'aws.tags', { team: 7 }, 'dev.aws.tags.team', 'a non-empty string'],
    ['Confluent and AWS regions differ', dev, 'aws.region', 'us-east-1', 'dev.confluent.region', 'set regionMismatchReason to override'],
    ['no alert e-mail is configured', dev, 'alerts.emails', [], 'dev.alerts.emails', 'at least 1 item'],
    ['an alert e-mail is malformed', dev, 'alerts.emails', ['oncall'], 'dev.alerts.emails[0]', 'an e-mail address'],
    [
      'the Slack workspace id is malformed',
      dev,
      'alerts.slack',
      { workspaceId: 'acme', channelId: 'C0123ABCD' },
      'dev.alerts.slack.workspaceId',
      'a Slack workspace id',
    ],
    [
      'the Slack channel id is malformed',
      dev,
      'alerts.slack',
      { workspaceId: 'T0123ABCD', channelId: '#alerts' },
      'dev.alerts.slack.channelId',
      'a Slack channel id',
    ],
    ['the state backend kind is unknown', dev, 'stateBackend.kind', 'gcs', 'dev.stateBackend.kind', 'one of "s3", "local"'],
    ['state encryption is off', dev, 'stateBackend.encrypt', false, 'dev.stateBackend.encrypt', 'must be encrypted'],
    ['state locking is off', dev, 'stateBackend.useLockfile', false, 'dev.stateBackend.useLockfile', 'must be locked'],
    ['the state bucket name is invalid', dev, 'stateBackend.bucket', 'My_Bucket', 'dev.stateBackend.bucket', 'an S3 bucket name'],
    ['production state is local', prod, 'stateBackend', { kind: 'local', directory: 'x' }, 'prod.stateBackend.kind', 'production state must be remote'],
    ['the VPC CIDR is too large', dev, 'network.cidr', '10.0.0.0/8', 'dev.network.cidr', 'an IPv4 CIDR from /16 to /24'],
    ['only one availability zone is asked for', dev, 'network.availabilityZones', 1, 'dev.network.availabilityZones', 'an integer from 2 to 3'],
    ['more NAT gateways than zones', dev, 'network.natGateways', 3, 'dev.network.natGateways', 'an integer from 0 to 2'],
    ['a referenced VPC id is malformed', dev, 'network', { mode: 'reference', vpcId: 'main', privateSubnetIds: [] }, 'dev.network.vpcId', 'a VPC id'],
    [
      'a referenced network has one subnet',
      dev,
      'network',
      { mode: 'reference', vpcId: 'vpc-0abc12345', privateSubnetIds: ['subnet-0abc12345'] },
      'dev.network.privateSubnetIds',
      'at least 2 item',
    ],
    ['the RDS instance class is malformed', dev, 'database.instanceClass', 't4g.micro', 'dev.database.instanceClass', 'an RDS instance class'],
    ['the Postgres version is unsupported', dev, 'database.engineVersion', '12', 'dev.database.engineVersion', 'a Postgres major version from "14" to "17"'],
    [
      'the Postgres version pins a minor (auto minor upgrades would turn it into a refused downgrade)',
      dev,
      'database.engineVersion',
      '16.4',
      'dev.database.engineVersion',
      'the minor is upgraded automatically',
    ],
    [
      'Slack is configured where AWS Chatbot does not run',
      withValue(withValue(dev, 'aws.region', 'us-gov-west-1'), 'regionMismatchReason', 'test'),
      'alerts.slack',
      { workspaceId: 'T0123ABCD', channelId: 'C0123ABCD' },
      'dev.alerts.slack',
      'a region where AWS Chatbot delivers',
    ],
    [
      'the Chatbot API region is not one AWS Chatbot offers',
      dev,
      'alerts.slack',
      { workspaceId: 'T0123ABCD', channelId: 'C0123ABCD', apiRegion: 'ap-northeast-2' },
      'dev.alerts.slack.apiRegion',
      'one of "us-east-2", "us-west-2", "ap-southeast-1", "eu-west-1"',
    ],
    ['the state KMS key is not a KMS ARN', dev, 'stateBackend.kmsKeyId', 'my-key', 'dev.stateBackend.kmsKeyId', 'a KMS key or alias ARN'],
    ['storage is below the RDS minimum', dev, 'database.allocatedStorageGb', 5, 'dev.database.allocatedStorageGb', 'an integer from 20'],
    ['max storage is below allocated storage', dev, 'database.maxAllocatedStorageGb', 10, 'dev.database.maxAllocatedStorageGb', 'an integer from 20'],
    ['multi-AZ is not a boolean', dev, 'database.multiAz', 'no', 'dev.database.multiAz', 'true or false'],
    ['production keeps backups under a week', prod, 'database.backupRetentionDays', 3, 'prod.database.backupRetentionDays', 'at least 7 in production'],
    [
      'the ledger keeps under 35 days of history',
      dev,
      'database.history.ledgerRetentionDays',
      20,
      'dev.database.history.ledgerRetentionDays',
      'an integer from 35 to 3650',
    ],
    [
      'the ledger expires before a replayed compensation could find its charge',
      dev,
      'confluent.topics.compensation-events.retentionMs',
      40 * 24 * 3600 * 1000,
      'dev.database.history.ledgerRetentionDays',
      'more than 41 days (the compensation-events retention plus a day)',
    ],
    [
      'production drops expired ledger days instead of archiving them',
      prod,
      'database.history.expired',
      'drop',
      'prod.database.history.expired',
      '"detach" in production',
    ],
    [
      'expired ledger days are neither detached nor dropped',
      dev,
      'database.history.expired',
      'truncate',
      'dev.database.history.expired',
      'one of "detach", "drop"',
    ],
    [
      'partitions are created less than two days ahead',
      dev,
      'database.history.partitionsAheadDays',
      1,
      'dev.database.history.partitionsAheadDays',
      'an integer from 2 to 60',
    ],
    ['the history section has an unknown key', dev, 'database.history.retention', 30, 'dev.database.history.retention', ''],
    ['the cache node type is malformed', dev, 'cache.nodeType', 'r7g.large', 'dev.cache.nodeType', 'an ElastiCache node type'],
    ['the Redis version is unsupported', dev, 'cache.engineVersion', '5.0', 'dev.cache.engineVersion', 'a Redis version 6.x or 7.x'],
    ['production Redis has no replica', prod, 'cache.replicas', 0, 'prod.cache.replicas', 'at least 1 in production'],
    ['the budget time zone is unknown', dev, 'workers.budgetTimeZone', 'Mars/Olympus', 'dev.workers.budgetTimeZone', 'an IANA time zone'],
    ['the batch size exceeds the Kafka maximum', dev, 'workers.batchSize', 20000, 'dev.workers.batchSize', 'an integer from 1 to 10000'],
    ['the starting position is unknown', dev, 'workers.startingPosition', 'EARLIEST', 'dev.workers.startingPosition', 'one of "TRIM_HORIZON", "LATEST"'],
    [
      'an MSK source has no cluster ARN',
      dev,
      'workers.kafkaSource',
      { kind: 'msk', clusterArn: 'my-cluster' },
      'dev.workers.kafkaSource.clusterArn',
      'an MSK cluster ARN',
    ],
    ['a function is missing', dev, 'workers.functions.outboxSweep', undefined, 'dev.workers.functions.outboxSweep', 'an object'],
    [
      'a function timeout exceeds the Kafka trigger limit',
      dev,
      'workers.functions.clickBalance.timeoutSeconds',
      900,
      'dev.workers.functions.clickBalance.timeoutSeconds',
      'an integer from 1 to 840',
    ],
    [
      'function memory is below the minimum',
      dev,
      'workers.functions.compensation.memoryMb',
      64,
      'dev.workers.functions.compensation.memoryMb',
      'an integer from 128 to 10240',
    ],
    [
      'reserved concurrency is below the partition count',
      dev,
      'workers.functions.clickBalance.reservedConcurrency',
      2,
      'dev.workers.functions.clickBalance.reservedConcurrency',
      'at least 3, the partition count of ad-events',
    ],
    [
      'the ranking cache reserved concurrency is below the partition count of the rankings topic Flink creates',
      dev,
      'workers.functions.rankingCache.reservedConcurrency',
      5,
      'dev.workers.functions.rankingCache.reservedConcurrency',
      'at least 6, the partition count of rtb-rankings-v2',
    ],
    ['log retention is not a CloudWatch value', dev, 'workers.logRetentionDays', 10, 'dev.workers.logRetentionDays', 'one of 1, 3, 5, 7, 14'],
    ['the outbox sweep interval exceeds an hour', dev, 'workers.outboxSweepMinutes', 120, 'dev.workers.outboxSweepMinutes', 'an integer from 1 to 60'],
    ['the ranking TTL is under a minute', dev, 'workers.rankingTtlSeconds', 5, 'dev.workers.rankingTtlSeconds', 'an integer from 360 to 86400'],
    [
      'the active worker key slot has no key',
      dev,
      'confluent.workerApiKeys',
      { slots: ['blue'], active: 'green' },
      'dev.confluent.workerApiKeys.active',
      'add the slot to "slots" first, deploy, then make it active',
    ],
    [
      'a worker key slot is listed twice',
      dev,
      'confluent.workerApiKeys',
      { slots: ['blue', 'blue'], active: 'blue' },
      'dev.confluent.workerApiKeys.slots',
      'each slot at most once',
    ],
    [
      'a worker key slot is unknown',
      dev,
      'confluent.workerApiKeys',
      { slots: ['red'], active: 'blue' },
      'dev.confluent.workerApiKeys.slots[0]',
      'one of "blue", "green"',
    ],
  ];

  test.each(cases)('fails when %s', (_title, base, path, value, field, allowed) => {
    const error = errorOf(withValue(base, path, value));
    expect(error.field).toBe(field);
    expect(error.allowed).toContain(allowed);
    expect(error.message).toMatch(/^Invalid configuration at \S+: got .+; allowed: .+\.$/);
  });

  test('a file with several mistakes reports all of them at once, each with its field', () => {
    let raw = withValue(dev, 'database.engineVersion', '16.4');
    raw = withValue(raw, 'network.natGateways', 3);
    raw = withValue(raw, 'workers.batchSize', 20000);
    let caught: unknown;
    try {
      parseEnvironment(raw);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigErrors);
    const errors = (caught as ConfigErrors).errors;
    expect(errors.map((e) => e.field)).toEqual(['dev.network.natGateways', 'dev.database.engineVersion', 'dev.workers.batchSize']);
    expect((caught as Error).message).toMatch(/^3 configuration problems:\n {2}- Invalid configuration at dev\.network\.natGateways/);
  });

  test('a region mismatch is accepted when a reason is given', () => {
    const raw = withValue(withValue(dev, 'aws.region', 'us-east-1'), 'regionMismatchReason', 'DR drill in us-east-1');
    expect(parseEnvironment(raw).regionMismatchReason).toBe('DR drill in us-east-1');
  });

  test('the error names the received value and keeps it for tooling', () => {
    const error = errorOf(withValue(dev, 'confluent.topics.ad-events.partitions', 500));
    expect(error.message).toBe('Invalid configuration at dev.confluent.topics.ad-events.partitions: got 500; allowed: an integer from 1 to 120.');
    expect(error.received).toBe(500);
  });
});
