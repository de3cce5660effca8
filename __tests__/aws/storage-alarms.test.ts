// Types of the cdktf matchers that Testing.setupJest() registers.
import 'cdktf/lib/testing/adapters/jest';
import { Testing } from 'cdktf';
import { DbInstance } from '@cdktf/provider-aws/lib/db-instance';
import { StorageStack } from '../../stacks/storage-stack';
import { storageAlarmNames } from '../../constructs/aws/storage-alarms';
import { RECONCILE_SIZING } from '../../constructs/aws/reconciliation';
import { createAlarm } from '../../constructs/aws/alarm';
import { TerraformStack } from 'cdktf';
import { defaultMaxConnections, instanceClassMemoryGib } from '../../constructs/aws/rds-instance-classes';
import { parseEnvironment } from '../../config';
import dev from '../../config/environments/dev';
import type { EnvironmentConfig } from '../../config/schema';
import { testEnvironment } from './support/fixtures';

Testing.setupJest();

type Alarm = {
  alarm_name: string;
  alarm_description: string;
  namespace?: string;
  metric_name?: string;
  statistic?: string;
  threshold: number;
  comparison_operator: string;
  treat_missing_data: string;
  dimensions?: Record<string, string>;
  metric_query?: Array<{ expression?: string }>;
  alarm_actions: string[];
  ok_actions: string[];
};
type Synthesized = { resource: Record<string, Record<string, Record<string, unknown>>> };

function synthStorage(config: EnvironmentConfig) {
  const stack = new StorageStack(Testing.app(), { config });
  const json = Testing.synth(stack, true);
  const parsed = JSON.parse(json) as Synthesized;
  const alarms = Object.values(parsed.resource.aws_cloudwatch_metric_alarm ?? {}) as Alarm[];
  const byName = new Map(alarms.map((a) => [a.alarm_name, a]));
  return { stack, json, parsed, alarms, byName };
}

describe('stateful-tier alarms', () => {
  describe.each(['dev', 'prod'] as const)('%s', (name) => {
    const config = testEnvironment(name);
    const { json, parsed, alarms, byName } = synthStorage(config);
    const topics = Object.entries(parsed.resource.aws_sns_topic);
    const alarm = (suffix: string) => {
      const found = byName.get(`adstream-${name}-${suffix}`);
      if (!found) throw new Error(`no alarm adstream-${name}-${suffix}; have ${[...byName.keys()].join(', ')}`);
      return found;
    };

    test('every alarm the dashboard lists is synthesized, and no other', () => {
      expect([...byName.keys()].sort()).toEqual(storageAlarmNames(config).sort());
    });

    test('every alarm notifies the storage alert topic on ALARM and on OK', () => {
      expect(topics).toHaveLength(1);
      const [[topicId, topic]] = topics;
      expect(topic.name).toBe(`adstream-${name}-storage-alerts`);
      for (const a of alarms) {
        expect(a.alarm_actions).toEqual([`\${aws_sns_topic.${topicId}.arn}`]);
        expect(a.ok_actions).toEqual(a.alarm_actions);
      }
    });

    test('every alarm text says what it means for the money path, what to do, and links its runbook', () => {
      for (const a of alarms) {
        expect(a.alarm_description).toMatch(/Money path: /);
        expect(a.alarm_description).toMatch(/docs\/operations\.md#[a-z-]+$/);
        expect(a.alarm_description.length).toBeLessThanOrEqual(1024);
      }
    });

    test('the database is watched on CPU, storage, memory, connections, latency, transaction-ID age and deadlocks', () => {
      const db = Object.keys(parsed.resource.aws_db_instance)[0];
      for (const [suffix, metric] of [
        ['ledger-cpu', 'CPUUtilization'],
        ['ledger-free-storage', 'FreeStorageSpace'],
        ['ledger-freeable-memory', 'FreeableMemory'],
        ['ledger-connections', 'DatabaseConnections'],
        ['ledger-read-latency', 'ReadLatency'],
        ['ledger-write-latency', 'WriteLatency'],
        ['ledger-transaction-id-age', 'MaximumUsedTransactionIDs'],
      ] as const) {
        expect(alarm(suffix)).toMatchObject({
          namespace: 'AWS/RDS',
          metric_name: metric,
          dimensions: { DBInstanceIdentifier: `\${aws_db_instance.${db}.identifier}` },
        });
      }
      expect(alarm('ledger-deadlocks').metric_query).toEqual([
        expect.objectContaining({ expression: `DB_PERF_INSIGHTS('RDS', '\${aws_db_instance.${db}.resource_id}', 'db.Concurrency.deadlocks.avg')` }),
      ]);
      expect(alarm('ledger-free-storage')).toMatchObject({
        comparison_operator: 'LessThanThreshold',
        threshold: 0.1 * config.database.allocatedStorageGb * 1024 ** 3,
      });
      expect(alarm('ledger-transaction-id-age').threshold).toBe(1_000_000_000);
      expect(alarm('ledger-read-latency').threshold).toBe(0.02);
    });

    test("the connections alarm fires at 80 % of the instance class's max_connections", () => {
      const memory = instanceClassMemoryGib(config.database.instanceClass)!;
      expect(alarm('ledger-connections').threshold).toBe(Math.floor(0.8 * defaultMaxConnections(memory)));
    });

    test("Performance Insights is on with the environment's retention; enhanced monitoring only where asked", () => {
      const insight = config.monitoring.database;
      expect(json).toHaveResourceWithProperties(DbInstance, {
        performance_insights_enabled: true,
        performance_insights_retention_period: insight.performanceInsightsRetentionDays,
      });
      const [db] = Object.values(parsed.resource.aws_db_instance);
      if (insight.enhancedMonitoringSeconds > 0) {
        expect(db.monitoring_interval).toBe(insight.enhancedMonitoringSeconds);
        expect(db.monitoring_role_arn).toMatch(/^\$\{aws_iam_role\.ledger-monitoring_role_[A-Z0-9]+\.arn\}$/);
        const [role] = Object.values(parsed.resource.aws_iam_role);
        expect(JSON.stringify(parsed)).toContain('monitoring.rds.amazonaws.com');
        expect(role.name).toBe(`adstream-${name}-ledger-monitoring`);
      } else {
        expect(db).not.toHaveProperty('monitoring_interval');
      }
    });

    test('RDS Proxy is watched where there is one: client connections, borrow latency, pinning', () => {
      const proxies = Object.keys(parsed.resource.aws_db_proxy ?? {});
      const proxyAlarms = alarms.filter((a) => a.dimensions?.ProxyName !== undefined);
      if (!config.database.useProxy) {
        expect(proxyAlarms).toEqual([]);
        return;
      }
      expect(proxyAlarms.map((a) => a.metric_name).sort()).toEqual([
        'ClientConnections',
        'DatabaseConnectionsBorrowLatency',
        'DatabaseConnectionsCurrentlySessionPinned',
      ]);
      for (const a of proxyAlarms) expect(a.dimensions!.ProxyName).toBe(`\${aws_db_proxy.${proxies[0]}.name}`);
      // Every function that connects to the ledger: the workers and the reconciliation.
      const reserved = Object.values(config.workers.functions).reduce((sum, f) => sum + f.reservedConcurrency, 0) + RECONCILE_SIZING.reservedConcurrency;
      expect(alarm('ledger-proxy-client-connections').threshold).toBe(reserved);
      expect(alarm('ledger-proxy-borrow-latency').threshold).toBe(50_000);
    });

    test('every cache node is watched; replication lag and failover where there is a replica', () => {
      const nodes = Array.from({ length: 1 + config.cache.replicas }, (_, i) => `adstream-${name}-cache-00${i + 1}`);
      for (const node of nodes) {
        const metrics = alarms
          .filter((a) => a.dimensions?.CacheClusterId === node && a.metric_name !== 'IsMaster')
          .map((a) => a.metric_name)
          .sort();
        const expected = [
          'CurrConnections',
          'DatabaseMemoryUsagePercentage',
          'EngineCPUUtilization',
          'Evictions',
          ...(config.cache.replicas > 0 ? ['ReplicationLag'] : []),
        ].sort();
        expect(metrics).toEqual(expected);
      }
      const failover = alarms.filter((a) => a.metric_name === 'IsMaster');
      if (config.cache.replicas === 0) expect(failover).toEqual([]);
      else
        expect(failover).toEqual([
          expect.objectContaining({ dimensions: { CacheClusterId: nodes[0] }, comparison_operator: 'LessThanThreshold', threshold: 1 }),
        ]);
    });

    test('every NAT gateway is watched for port-allocation errors and dropped packets', () => {
      const gateways = Object.keys(parsed.resource.aws_nat_gateway ?? {});
      expect(gateways).toHaveLength(config.network.mode === 'create' ? config.network.natGateways : 0);
      for (const gateway of gateways) {
        const metrics = alarms
          .filter((a) => a.dimensions?.NatGatewayId === `\${aws_nat_gateway.${gateway}.id}`)
          .map((a) => a.metric_name)
          .sort();
        expect(metrics).toEqual(['ErrorPortAllocation', 'PacketsDropCount']);
      }
    });
  });

  test("thresholds come from the environment's monitoring config", () => {
    const config = {
      ...testEnvironment('dev'),
      monitoring: parseEnvironment({ ...structuredClone(dev), monitoring: { database: { cpuPercent: 65, maxConnections: 400 }, cache: { evictions: 25 } } })
        .monitoring,
    };
    const { byName } = synthStorage(config);
    expect(byName.get('adstream-dev-ledger-cpu')!.threshold).toBe(65);
    expect(byName.get('adstream-dev-ledger-connections')!.threshold).toBe(320);
    expect(byName.get('adstream-dev-cache-001-evictions')!.threshold).toBe(25);
  });

  test('fails at synth for an instance class whose memory is unknown, and names the fix', () => {
    const config = testEnvironment('dev', { database: { ...testEnvironment('dev').database, instanceClass: 'db.x2iedn.xlarge' } });
    expect(() => synthStorage(config)).toThrow(
      /instance class "db\.x2iedn\.xlarge" is not in the built-in memory table; set monitoring\.database\.instanceMemoryGib/,
    );
    const known = { ...config, monitoring: { ...config.monitoring, database: { ...config.monitoring.database, instanceMemoryGib: 128 } } };
    expect(synthStorage(known).byName.get('adstream-dev-ledger-connections')!.threshold).toBe(Math.floor(0.8 * 5000));
  });

  test('fails at synth when an alarm text is longer than CloudWatch accepts', () => {
    const stack = new TerraformStack(Testing.app(), 'alarm-text');
    const settings = { alarmName: 'a', namespace: 'AWS/RDS', metricName: 'CPUUtilization', statistic: 'Average' };
    expect(() =>
      createAlarm(stack, 'long', { topicArn: 'arn:aws:sns:ap-northeast-2:111111111111:t' }, { ...settings, alarmDescription: 'x'.repeat(1025) }),
    ).toThrow(/alarm description is 1025 characters; CloudWatch accepts at most 1024/);
    expect(() =>
      createAlarm(stack, 'fits', { topicArn: 'arn:aws:sns:ap-northeast-2:111111111111:t' }, { ...settings, alarmDescription: 'x'.repeat(1024) }),
    ).not.toThrow();
  });

  test('max_connections follows the RDS for PostgreSQL default formula', () => {
    expect(instanceClassMemoryGib('db.t4g.micro')).toBe(1);
    expect(instanceClassMemoryGib('db.r7g.large')).toBe(16);
    expect(instanceClassMemoryGib('db.z1d.large')).toBeUndefined();
    expect(defaultMaxConnections(1)).toBe(112);
    expect(defaultMaxConnections(16)).toBe(1802);
    expect(defaultMaxConnections(768)).toBe(5000);
  });
});
