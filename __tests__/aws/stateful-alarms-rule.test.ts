import { App, TerraformStack, Testing } from 'cdktf';
import { Construct } from 'constructs';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { DbInstance, DbInstanceConfig } from '@cdktf/provider-aws/lib/db-instance';
import { DbProxy } from '@cdktf/provider-aws/lib/db-proxy';
import { ElasticacheReplicationGroup } from '@cdktf/provider-aws/lib/elasticache-replication-group';
import { NatGateway } from '@cdktf/provider-aws/lib/nat-gateway';
import { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { REQUIRED_STATEFUL_ALARMS, statefulResourcesAlarmed } from '../../constructs/policy/rules/aws';
import { applyPolicy } from '../../constructs/policy/aspect';

const DEV = { production: false };
const TOPIC = 'arn:aws:sns:ap-northeast-2:111111111111:alerts';

function stack(): TerraformStack {
  const s = new TerraformStack(new App(), 'alarm-rule-test');
  new AwsProvider(s, 'aws', { region: 'ap-northeast-2' });
  return s;
}

let counter = 0;
/** One alarm on `metric` with `dimensions`, notifying the topic unless `actions` says otherwise. */
function alarmOn(scope: Construct, namespace: string, metric: string, dimensions: Record<string, string>, actions: string[] = [TOPIC]): void {
  counter += 1;
  new CloudwatchMetricAlarm(scope, `alarm-${counter}`, {
    alarmName: `a-${counter}`,
    namespace,
    metricName: metric,
    dimensions,
    statistic: 'Maximum',
    period: 300,
    evaluationPeriods: 1,
    threshold: 0,
    comparisonOperator: 'GreaterThanThreshold',
    alarmActions: actions,
  });
}

function database(scope: Construct, overrides: Partial<DbInstanceConfig> = {}): DbInstance {
  return new DbInstance(scope, 'db', { instanceClass: 'db.t4g.micro', engine: 'postgres', storageEncrypted: true, ...overrides });
}

/** Alarms on every required RDS metric of `db` (the deadlock one through Performance Insights). */
function watchDatabase(scope: Construct, db: DbInstance, skip: string[] = [], extra: string[] = []): void {
  for (const metric of [...REQUIRED_STATEFUL_ALARMS.aws_db_instance, ...extra].filter((m) => !skip.includes(m) && !m.startsWith('db.'))) {
    alarmOn(scope, 'AWS/RDS', metric, { DBInstanceIdentifier: db.identifier });
  }
  if (!skip.includes('db.Concurrency.deadlocks')) {
    new CloudwatchMetricAlarm(scope, 'deadlocks', {
      alarmName: 'deadlocks',
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: 'GreaterThanThreshold',
      alarmActions: [TOPIC],
      metricQuery: [{ id: 'd', expression: `DB_PERF_INSIGHTS('RDS', '${db.resourceId}', 'db.Concurrency.deadlocks.avg')`, period: 300, returnData: true }],
    });
  }
}

describe('ADS-AWS9 stateful resources have alarms', () => {
  test('compliant: a database alarmed on every required metric', () => {
    const s = stack();
    const db = database(s);
    watchDatabase(s, db);
    expect(statefulResourcesAlarmed.check(db, DEV)).toBeUndefined();
  });

  test('violation: a database without alarms names every missing metric', () => {
    const message = statefulResourcesAlarmed.check(database(stack()), DEV);
    expect(message).toMatch(
      /aws_db_instance db has no alarm on CPUUtilization, FreeStorageSpace, FreeableMemory, DatabaseConnections, ReadLatency, WriteLatency, MaximumUsedTransactionIDs, db\.Concurrency\.deadlocks/,
    );
  });

  test('violation: the deadlock alarm is missing', () => {
    const s = stack();
    const db = database(s);
    watchDatabase(s, db, ['db.Concurrency.deadlocks']);
    expect(statefulResourcesAlarmed.check(db, DEV)).toMatch(/no alarm on db\.Concurrency\.deadlocks:/);
  });

  test('violation: alarms that notify nobody do not count', () => {
    const s = stack();
    const db = database(s);
    for (const metric of REQUIRED_STATEFUL_ALARMS.aws_db_instance) alarmOn(s, 'AWS/RDS', metric, { DBInstanceIdentifier: db.identifier }, []);
    expect(statefulResourcesAlarmed.check(db, DEV)).toMatch(/no alarm on CPUUtilization/);
  });

  test('violation: alarms on another instance do not count', () => {
    const s = stack();
    const db = database(s);
    const other = new DbInstance(s, 'other', { instanceClass: 'db.t4g.micro', engine: 'postgres' });
    watchDatabase(s, other);
    expect(statefulResourcesAlarmed.check(db, DEV)).toMatch(/no alarm on CPUUtilization/);
    expect(statefulResourcesAlarmed.check(other, DEV)).toBeUndefined();
  });

  test('violation: a read replica without a replica-lag alarm; compliant with one', () => {
    const s = stack();
    const replica = database(s, { replicateSourceDb: 'ledger' });
    watchDatabase(s, replica);
    expect(statefulResourcesAlarmed.check(replica, DEV)).toMatch(/no alarm on ReplicaLag/);
    alarmOn(s, 'AWS/RDS', 'ReplicaLag', { DBInstanceIdentifier: replica.identifier });
    expect(statefulResourcesAlarmed.check(replica, DEV)).toBeUndefined();
  });

  test('RDS Proxy: compliant with its three alarms, violation without', () => {
    const s = stack();
    const proxy = new DbProxy(s, 'proxy', {
      name: 'p',
      engineFamily: 'POSTGRESQL',
      roleArn: 'arn:aws:iam::111111111111:role/p',
      vpcSubnetIds: ['subnet-1'],
      auth: [],
    });
    expect(statefulResourcesAlarmed.check(proxy, DEV)).toMatch(
      /aws_db_proxy proxy has no alarm on ClientConnections, DatabaseConnectionsBorrowLatency, DatabaseConnectionsCurrentlySessionPinned/,
    );
    for (const metric of REQUIRED_STATEFUL_ALARMS.aws_db_proxy) alarmOn(s, 'AWS/RDS', metric, { ProxyName: proxy.name });
    expect(statefulResourcesAlarmed.check(proxy, DEV)).toBeUndefined();
  });

  test('ElastiCache: node alarms count by the group id; a replica also needs replication lag and failover', () => {
    const s = stack();
    const group = new ElasticacheReplicationGroup(s, 'cache', { replicationGroupId: 'adstream-x-cache', description: 'c', numCacheClusters: 2 });
    for (const metric of REQUIRED_STATEFUL_ALARMS.aws_elasticache_replication_group)
      alarmOn(s, 'AWS/ElastiCache', metric, { CacheClusterId: 'adstream-x-cache-001' });
    expect(statefulResourcesAlarmed.check(group, DEV)).toMatch(/no alarm on ReplicationLag, IsMaster/);
    alarmOn(s, 'AWS/ElastiCache', 'ReplicationLag', { CacheClusterId: 'adstream-x-cache-002' });
    alarmOn(s, 'AWS/ElastiCache', 'IsMaster', { CacheClusterId: 'adstream-x-cache-001' });
    expect(statefulResourcesAlarmed.check(group, DEV)).toBeUndefined();
  });

  test("ElastiCache: alarms on another group's nodes do not count", () => {
    const s = stack();
    const group = new ElasticacheReplicationGroup(s, 'cache', { replicationGroupId: 'adstream-x-cache', description: 'c' });
    for (const metric of REQUIRED_STATEFUL_ALARMS.aws_elasticache_replication_group)
      alarmOn(s, 'AWS/ElastiCache', metric, { CacheClusterId: 'adstream-y-cache-001' });
    expect(statefulResourcesAlarmed.check(group, DEV)).toMatch(/no alarm on EngineCPUUtilization/);
  });

  test('NAT gateway: compliant with both alarms, violation with one', () => {
    const s = stack();
    const nat = new NatGateway(s, 'nat', { subnetId: 'subnet-1', allocationId: 'eipalloc-1' });
    alarmOn(s, 'AWS/NATGateway', 'ErrorPortAllocation', { NatGatewayId: nat.id });
    expect(statefulResourcesAlarmed.check(nat, DEV)).toMatch(/aws_nat_gateway nat has no alarm on PacketsDropCount/);
    alarmOn(s, 'AWS/NATGateway', 'PacketsDropCount', { NatGatewayId: nat.id });
    expect(statefulResourcesAlarmed.check(nat, DEV)).toBeUndefined();
  });

  test('the aspect fails synth on a database without alarms', () => {
    const s = stack();
    applyPolicy(s, [statefulResourcesAlarmed], DEV);
    database(s);
    expect(() => Testing.synth(s, true)).toThrow(/ADS-AWS9/);
  });
});
