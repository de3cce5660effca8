import { Construct } from 'constructs';
import type { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import type { EnvironmentConfig } from '../../config/schema';
import { AlarmSettings, AlarmTarget, createAlarm } from './alarm';
import { availabilityZoneNames } from './arn';
import { AwsConstructError } from './errors';
import { RECONCILE_SIZING } from './reconciliation';
import { defaultMaxConnections, instanceClassMemoryGib } from './rds-instance-classes';

const GIB = 1024 ** 3;
const RUNBOOK = 'Runbook: docs/operations.md';

/** The stateful resources the alarms watch, as their CloudWatch dimensions. */
export interface StatefulTier {
  /** The ledger instance: `DBInstanceIdentifier` and the `DbiResourceId` Performance Insights uses. */
  readonly database: { readonly instanceIdentifier: string; readonly resourceId: string };
  /** `ProxyName` of RDS Proxy, when there is one. */
  readonly proxyName?: string;
  /** `CacheClusterId` of every cache node; the first is created as the primary. */
  readonly cacheNodeIds: readonly string[];
  /** NAT gateways by zone. */
  readonly natGateways: ReadonlyArray<{ readonly zone: string; readonly id: string }>;
}

/** One alarm to create: its construct id and settings. */
interface AlarmSpec {
  readonly id: string;
  readonly settings: AlarmSettings;
}

/** Memory and `max_connections` the database alarms measure against. */
export function databaseLimits(config: Pick<EnvironmentConfig, 'database' | 'monitoring'>): { memoryGib: number; maxConnections: number } {
  const monitoring = config.monitoring.database;
  const memoryGib = monitoring.instanceMemoryGib ?? instanceClassMemoryGib(config.database.instanceClass);
  if (memoryGib === undefined) {
    throw new AwsConstructError(
      'StorageAlarms',
      `instance class "${config.database.instanceClass}" is not in the built-in memory table; set monitoring.database.instanceMemoryGib (and monitoring.database.maxConnections if the parameter group changes max_connections).`,
    );
  }
  return { memoryGib, maxConnections: monitoring.maxConnections ?? defaultMaxConnections(memoryGib) };
}

/**
 * Every alarm on the stateful tier of `config`, in creation order. Names depend on the
 * configuration only, so the workers stack's dashboard can list them without reading the
 * storage stack's state.
 */
export function storageAlarmSpecs(config: EnvironmentConfig, tier: StatefulTier): AlarmSpec[] {
  const prefix = `adstream-${config.name}`;
  const { database: db, proxy, cache, nat } = config.monitoring;
  const { memoryGib, maxConnections } = databaseLimits(config);
  const specs: AlarmSpec[] = [];
  const add = (id: string, settings: Omit<AlarmSettings, 'alarmName'>) => specs.push({ id, settings: { alarmName: `${prefix}-${id}`, ...settings } });

  const rds = (metricName: string, statistic: string) => ({
    namespace: 'AWS/RDS',
    metricName,
    statistic,
    dimensions: { DBInstanceIdentifier: tier.database.instanceIdentifier },
  });
  add('ledger-cpu', {
    ...rds('CPUUtilization', 'Average'),
    evaluationPeriods: 3,
    threshold: db.cpuPercent,
    alarmDescription: `Ledger database CPU above ${db.cpuPercent}% for 15 minutes. Money path: charges and refunds slow down, batches time out and partitions block. Do: check Performance Insights top SQL, then scale the instance class. ${RUNBOOK}#ledger-cpu`,
  });
  const freeStorageBytes = Math.floor((db.freeStoragePercent / 100) * config.database.allocatedStorageGb * GIB);
  const autoscaling = config.database.maxAllocatedStorageGb > config.database.allocatedStorageGb;
  add('ledger-free-storage', {
    ...rds('FreeStorageSpace', 'Minimum'),
    comparisonOperator: 'LessThanThreshold',
    threshold: freeStorageBytes,
    alarmDescription:
      `Ledger database free storage below ${db.freeStoragePercent}% of ${config.database.allocatedStorageGb} GiB. ` +
      (autoscaling
        ? `Storage autoscaling (ceiling ${config.database.maxAllocatedStorageGb} GiB) did not keep up or reached its ceiling. `
        : 'Storage autoscaling is off. ') +
      `Money path: a full disk stops every write, so no click is charged or refunded. Do: raise database.maxAllocatedStorageGb / allocatedStorageGb and deploy storage. ${RUNBOOK}#ledger-free-storage`,
  });
  const freeMemoryBytes = Math.floor((db.freeableMemoryPercent / 100) * memoryGib * GIB);
  add('ledger-freeable-memory', {
    ...rds('FreeableMemory', 'Minimum'),
    evaluationPeriods: 3,
    comparisonOperator: 'LessThanThreshold',
    threshold: freeMemoryBytes,
    alarmDescription: `Ledger database freeable memory below ${db.freeableMemoryPercent}% of ${memoryGib} GiB for 15 minutes. Money path: swapping makes charges slow and batches time out. Do: look for connection growth or large sorts in Performance Insights; scale the instance class. ${RUNBOOK}#ledger-freeable-memory`,
  });
  const connections = Math.floor((db.connectionsPercent / 100) * maxConnections);
  add('ledger-connections', {
    ...rds('DatabaseConnections', 'Maximum'),
    threshold: connections,
    alarmDescription: `Ledger database has more than ${connections} connections (${db.connectionsPercent}% of max_connections ${maxConnections}). Money path: new function instances cannot connect, throw, and their partitions stop being charged. Do: check for leaked connections and reserved concurrency; use RDS Proxy. ${RUNBOOK}#ledger-connections`,
  });
  add('ledger-read-latency', {
    ...rds('ReadLatency', 'Average'),
    evaluationPeriods: 3,
    threshold: db.readLatencyMs / 1000,
    alarmDescription: `Ledger database read latency above ${db.readLatencyMs} ms for 15 minutes. Money path: every charge reads balances and campaigns; batches slow down and lag grows. Do: check IOPS/throughput limits and Performance Insights waits. ${RUNBOOK}#ledger-latency`,
  });
  add('ledger-write-latency', {
    ...rds('WriteLatency', 'Average'),
    evaluationPeriods: 3,
    threshold: db.writeLatencyMs / 1000,
    alarmDescription: `Ledger database write latency above ${db.writeLatencyMs} ms for 15 minutes. Money path: every charge and refund commits a write; batches slow down and lag grows. Do: check IOPS/throughput limits and Performance Insights waits. ${RUNBOOK}#ledger-latency`,
  });
  add('ledger-transaction-id-age', {
    ...rds('MaximumUsedTransactionIDs', 'Maximum'),
    threshold: db.transactionIdAge,
    alarmDescription: `Ledger database transaction-ID age above ${db.transactionIdAge}. Money path: near 2.1 billion Postgres refuses all writes to prevent wraparound, and charging stops. Do: find what blocks autovacuum (long transactions, abandoned replication slots) and vacuum freeze the oldest tables. ${RUNBOOK}#ledger-transaction-id-age`,
  });
  add('ledger-deadlocks', {
    threshold: db.deadlocks,
    metricQuery: [
      {
        id: 'deadlocks',
        expression: `DB_PERF_INSIGHTS('RDS', '${tier.database.resourceId}', 'db.Concurrency.deadlocks.avg')`,
        label: 'Deadlocks (Performance Insights)',
        period: 300,
        returnData: true,
      },
    ],
    alarmDescription: `Ledger database reported deadlocks. Money path: the handlers lock advertisers in a fixed order, so a deadlock means a new code path or a manual session broke that order; the losing batch is retried (no money lost) but its partition stalls. Do: read the deadlock detail in the Postgres log. ${RUNBOOK}#ledger-deadlocks`,
  });

  if (tier.proxyName !== undefined) {
    // One connection per instance of every function that connects: the workers and the reconciliation.
    const clientLimit =
      proxy.clientConnections ??
      Object.values(config.workers.functions).reduce((sum, f) => sum + f.reservedConcurrency, 0) + RECONCILE_SIZING.reservedConcurrency;
    // Proxy metrics are published per proxy node each minute; Sum over a minute adds the nodes.
    const rdsProxy = (metricName: string, statistic: string) => ({
      namespace: 'AWS/RDS',
      metricName,
      statistic,
      period: 60,
      evaluationPeriods: 5,
      dimensions: { ProxyName: tier.proxyName! },
    });
    add('ledger-proxy-client-connections', {
      ...rdsProxy('ClientConnections', 'Sum'),
      threshold: clientLimit,
      alarmDescription: `RDS Proxy has more than ${clientLimit} client connections for 5 minutes, more than the functions can open (one each, reserved concurrency ${clientLimit}). Money path: leaked connections exhaust the pool and charges wait or fail. Do: find the client holding connections. ${RUNBOOK}#ledger-proxy`,
    });
    add('ledger-proxy-borrow-latency', {
      ...rdsProxy('DatabaseConnectionsBorrowLatency', 'Average'),
      threshold: proxy.borrowLatencyMs * 1000,
      alarmDescription: `RDS Proxy takes more than ${proxy.borrowLatencyMs} ms to hand out a database connection, for 5 minutes. Money path: every batch waits for a connection before it can charge; lag grows. Do: check ledger connections and the proxy's max_connections_percent. ${RUNBOOK}#ledger-proxy`,
    });
    add('ledger-proxy-pinned-connections', {
      ...rdsProxy('DatabaseConnectionsCurrentlySessionPinned', 'Sum'),
      threshold: proxy.pinnedConnections,
      alarmDescription: `RDS Proxy has more than ${proxy.pinnedConnections} session-pinned connections for 5 minutes. Money path: pinned connections are not shared, so the pool drains and charges wait. The handlers avoid pinning (no SET, no named prepared statements, no session-level advisory locks); a change or a manual client pinned. Do: read the proxy log for the pinning reason. ${RUNBOOK}#ledger-proxy`,
    });
  }

  const replicated = tier.cacheNodeIds.length > 1;
  tier.cacheNodeIds.forEach((node, index) => {
    const suffix = String(index + 1).padStart(3, '0');
    const redis = (metricName: string, statistic: string) => ({ namespace: 'AWS/ElastiCache', metricName, statistic, dimensions: { CacheClusterId: node } });
    add(`cache-${suffix}-engine-cpu`, {
      ...redis('EngineCPUUtilization', 'Average'),
      evaluationPeriods: 3,
      threshold: cache.engineCpuPercent,
      alarmDescription: `Redis node ${node}: engine CPU above ${cache.engineCpuPercent}% for 15 minutes. Money path: price and ranking reads slow down; charges fall back to Postgres (correct, slower) and the bidder sees stale rankings. Do: look for slow commands (SLOWLOG), scale the node type. ${RUNBOOK}#cache`,
    });
    add(`cache-${suffix}-memory`, {
      ...redis('DatabaseMemoryUsagePercentage', 'Maximum'),
      threshold: cache.memoryPercent,
      alarmDescription: `Redis node ${node}: memory above ${cache.memoryPercent}% of maxmemory. Money path: next comes eviction of prices and rankings; charges stay correct (Postgres decides) but slower, and the bidder loses rankings. Do: check key counts and TTLs, scale the node type. ${RUNBOOK}#cache`,
    });
    add(`cache-${suffix}-evictions`, {
      ...redis('Evictions', 'Sum'),
      threshold: cache.evictions,
      alarmDescription: `Redis node ${node} evicted keys. Money path: evicted prices are re-read from Postgres (correct, slower); evicted rankings make the bidder fall back to no ranking until Flink rewrites them. Do: scale the node type or shorten ranking TTLs. ${RUNBOOK}#cache`,
    });
    add(`cache-${suffix}-connections`, {
      ...redis('CurrConnections', 'Maximum'),
      threshold: cache.connections,
      alarmDescription: `Redis node ${node} has more than ${cache.connections} client connections. Money path: the functions hold one connection per instance; more means a leak or a foreign client, and new connections may be refused (charges then fall back to Postgres). Do: CLIENT LIST on the node. ${RUNBOOK}#cache`,
    });
    if (replicated) {
      add(`cache-${suffix}-replication-lag`, {
        ...redis('ReplicationLag', 'Maximum'),
        threshold: cache.replicationLagSeconds,
        alarmDescription: `Redis node ${node} (as a replica) is more than ${cache.replicationLagSeconds} s behind its primary. Money path: after a failover the cache would serve older prices and rankings; the ledger is unaffected. Do: check network and primary load. ${RUNBOOK}#cache-failover`,
      });
    }
  });
  if (replicated) {
    add('cache-failover', {
      namespace: 'AWS/ElastiCache',
      metricName: 'IsMaster',
      statistic: 'Minimum',
      dimensions: { CacheClusterId: tier.cacheNodeIds[0] },
      period: 60,
      comparisonOperator: 'LessThanThreshold',
      threshold: 1,
      alarmDescription: `Redis failed over: node ${tier.cacheNodeIds[0]} is no longer the primary. Money path: writes during the switch failed and the functions fell back to Postgres (correct); the cache now runs without a healthy standby until the node recovers. Stays in ALARM until ${tier.cacheNodeIds[0]} is primary again. ${RUNBOOK}#cache-failover`,
    });
  }

  for (const gateway of tier.natGateways) {
    const natMetric = (metricName: string) => ({ namespace: 'AWS/NATGateway', metricName, statistic: 'Sum', dimensions: { NatGatewayId: gateway.id } });
    add(`nat-${gateway.zone}-port-allocation`, {
      ...natMetric('ErrorPortAllocation'),
      threshold: nat.portAllocationErrors,
      alarmDescription: `NAT gateway in ${gateway.zone} could not allocate a source port. Money path: outbox publishes to Confluent (CAMPAIGN_PAUSED / RESUMED) fail from this zone; rows stay in the outbox and the sweep retries, but a paused campaign keeps serving meanwhile. Do: check connection churn to Confluent. ${RUNBOOK}#nat`,
    });
    add(`nat-${gateway.zone}-packets-dropped`, {
      ...natMetric('PacketsDropCount'),
      threshold: nat.packetsDropped,
      alarmDescription: `NAT gateway in ${gateway.zone} dropped more than ${nat.packetsDropped} packets in 5 minutes. Money path: outbox publishes to Confluent time out and are retried by the sweep; pauses reach the bidder late. Do: check the AWS Health dashboard for the NAT, and outbox backlog. ${RUNBOOK}#nat`,
    });
  }
  return specs;
}

/** Names of every stateful-tier alarm of `config` (the dashboard shows each one). */
export function storageAlarmNames(config: EnvironmentConfig): string[] {
  const natZones = config.network.mode === 'create' ? availabilityZoneNames(config.aws.region, config.network.natGateways) : [];
  const tier: StatefulTier = {
    database: { instanceIdentifier: '-', resourceId: '-' },
    ...(config.database.useProxy ? { proxyName: '-' } : {}),
    cacheNodeIds: Array.from({ length: 1 + config.cache.replicas }, () => '-'),
    natGateways: natZones.map((zone) => ({ zone, id: '-' })),
  };
  return storageAlarmSpecs(config, tier).map((spec) => spec.settings.alarmName);
}

/** Props of {@link StorageAlarms}. */
export interface StorageAlarmsProps {
  /** The environment (thresholds in `monitoring`, sizes in `database` and `cache`). */
  readonly config: EnvironmentConfig;
  /** The resources to watch. */
  readonly tier: StatefulTier;
  /** Where every alarm, and its recovery, is sent. */
  readonly target: AlarmTarget;
}

/**
 * The alarms on the stateful tier, RDS, RDS Proxy, ElastiCache and the NAT gateways, each
 * saying what it means for charging and refunding and what to do (docs/operations.md has
 * the runbooks). Thresholds come from `monitoring` in the environment's config.
 */
export class StorageAlarms extends Construct {
  /** The alarms, in creation order. */
  public readonly alarms: readonly CloudwatchMetricAlarm[];

  constructor(scope: Construct, id: string, props: StorageAlarmsProps) {
    super(scope, id);
    this.alarms = storageAlarmSpecs(props.config, props.tier).map((spec) => createAlarm(this, spec.id, props.target, spec.settings));
  }
}
