import { ConfigError } from './errors';
import { readInt, readObject, readOneOf, rejectUnknownKeys } from './validate';

/**
 * Alarm thresholds and insight settings of one environment. Every field has a default that
 * suits a small production deployment; environments override only what differs. The alarm
 * texts, what each one means for the money path and what to do, are in docs/operations.md.
 */

/** Retention values RDS Performance Insights accepts: 7 days (free), or months up to 2 years. */
export const PERFORMANCE_INSIGHTS_RETENTION_DAYS = [7, ...Array.from({ length: 23 }, (_, i) => 31 * (i + 1)), 731] as const;
/** Enhanced Monitoring intervals RDS accepts, in seconds; 0 turns it off. */
export const ENHANCED_MONITORING_INTERVALS = [0, 1, 5, 10, 15, 30, 60] as const;

/** The Postgres ledger (RDS): what is watched and when it alarms. */
export interface DatabaseMonitoringConfig {
  /** `CPUUtilization` average over 5 minutes, three periods in a row, above this percentage. @default 80 */
  readonly cpuPercent: number;
  /**
   * `FreeStorageSpace` below this percentage of `database.allocatedStorageGb`. With storage
   * autoscaling RDS grows the volume before this (at 10 % free), so the alarm means autoscaling
   * has reached `maxAllocatedStorageGb` or cannot keep up. @default 10
   */
  readonly freeStoragePercent: number;
  /** `FreeableMemory` below this percentage of the instance class's memory. @default 10 */
  readonly freeableMemoryPercent: number;
  /** `DatabaseConnections` above this percentage of the instance's `max_connections`. @default 80 */
  readonly connectionsPercent: number;
  /**
   * `max_connections` of the instance, when it is not the RDS default for a known instance
   * class (a custom parameter group, or a class the built-in table does not know).
   * @default - the RDS default for the class, LEAST(memory / 9531392, 5000)
   */
  readonly maxConnections?: number;
  /**
   * Memory of the instance class in GiB, for classes the built-in table does not know.
   * @default - from the built-in table of db.t3/t4g/m5/m6g/m6i/m7g/r5/r6g/r6i/r7g classes
   */
  readonly instanceMemoryGib?: number;
  /** `ReadLatency` average above this many milliseconds, three periods in a row. @default 20 */
  readonly readLatencyMs: number;
  /** `WriteLatency` average above this many milliseconds, three periods in a row. @default 20 */
  readonly writeLatencyMs: number;
  /**
   * `MaximumUsedTransactionIDs` (the age of the oldest unfrozen transaction id) above this.
   * Postgres stops accepting writes at about 2.1 billion; autovacuum starts forced freezing
   * at 200 million. @default 1000000000
   */
  readonly transactionIdAge: number;
  /** Deadlocks (Performance Insights `db.Concurrency.deadlocks`) above this per 5 minutes. @default 0 */
  readonly deadlocks: number;
  /** Days Performance Insights keeps its data: 7 (free) or a multiple of 31 up to 731. @default 7 */
  readonly performanceInsightsRetentionDays: (typeof PERFORMANCE_INSIGHTS_RETENTION_DAYS)[number];
  /** Enhanced Monitoring interval in seconds; 0 turns it off. @default 0 */
  readonly enhancedMonitoringSeconds: (typeof ENHANCED_MONITORING_INTERVALS)[number];
}

/** RDS Proxy (when `database.useProxy`). */
export interface ProxyMonitoringConfig {
  /**
   * `ClientConnections` above this. Each function instance holds at most one connection, so
   * more than the total reserved concurrency of the functions that connect means connections
   * are leaking.
   * @default - the sum of the reserved concurrency of every worker function and the reconciliation
   */
  readonly clientConnections?: number;
  /** `DatabaseConnectionsBorrowLatency` average above this many milliseconds. @default 50 */
  readonly borrowLatencyMs: number;
  /** `DatabaseConnectionsCurrentlySessionPinned` above this. The handlers never pin. @default 0 */
  readonly pinnedConnections: number;
}

/** The Redis cache (ElastiCache), per node. */
export interface CacheMonitoringConfig {
  /** `EngineCPUUtilization` above this percentage, three periods in a row. @default 80 */
  readonly engineCpuPercent: number;
  /** `DatabaseMemoryUsagePercentage` above this percentage. @default 80 */
  readonly memoryPercent: number;
  /** `Evictions` above this per 5 minutes. @default 0 */
  readonly evictions: number;
  /** `CurrConnections` above this per node. @default 1000 */
  readonly connections: number;
  /** `ReplicationLag` of a replica above this many seconds. @default 10 */
  readonly replicationLagSeconds: number;
}

/** NAT gateways (the outbox producer's path to Confluent Cloud). */
export interface NatMonitoringConfig {
  /** `ErrorPortAllocation` above this per 5 minutes. @default 0 */
  readonly portAllocationErrors: number;
  /** `PacketsDropCount` above this per 5 minutes. @default 100 */
  readonly packetsDropped: number;
}

/** Alarms for silence: the failures that produce no error, only missing money movements. */
export interface SilenceMonitoringConfig {
  /**
   * Minutes `click-balance` may receive nothing from `ad-events` before it alarms, missing data
   * breaching: a dead trigger (revoked key, wrong ACL, disabled mapping) or a silent ad server.
   * Set it where clicks flow around the clock.
   * @default - no such alarm (an environment that is idle most of the time)
   */
  readonly clickTrafficQuietMinutes?: number;
  /** Minutes over which "records arrive but no click is charged" and "a trigger lags but consumes nothing" are judged. @default 15 */
  readonly stalledMinutes: number;
  /** Clicks charged in an hour from which at least one duplicate-click compensation is expected. @default 20000 */
  readonly clicksPerHourExpectingDuplicates: number;
  /** Minutes the oldest unpublished outbox row may wait (at least twice `workers.outboxSweepMinutes`). @default 10 */
  readonly outboxMaxAgeMinutes: number;
  /** Minutes between checks of the Flink statements' status. @default 5 */
  readonly flinkCheckMinutes: number;
  /** Minutes between checks of the Kafka triggers' state (Enabled, no PROBLEM). @default 5 */
  readonly triggerCheckMinutes: number;
}

/** How long a blocked partition can wait before Kafka retention deletes its records. */
export interface RecoveryMonitoringConfig {
  /** Minutes the oldest record of a batch may wait before "a partition is behind" alarms. @default 30 */
  readonly recordAgeWarnMinutes: number;
  /**
   * Percentage of a consumed topic's retention (the recovery window) after which the oldest
   * unprocessed record alarms, leaving the rest of the window to fix and drain. @default 25
   */
  readonly recoveryWindowAlarmPercent: number;
}

/** Everything watched in one environment. */
export interface MonitoringConfig {
  /** The ledger database. */
  readonly database: DatabaseMonitoringConfig;
  /** RDS Proxy. */
  readonly proxy: ProxyMonitoringConfig;
  /** The cache. */
  readonly cache: CacheMonitoringConfig;
  /** NAT gateways. */
  readonly nat: NatMonitoringConfig;
  /** Silence alarms. */
  readonly silence: SilenceMonitoringConfig;
  /** Recovery window. */
  readonly recovery: RecoveryMonitoringConfig;
}

/** What the monitoring section is checked against elsewhere in the environment. */
export interface MonitoringContext {
  /** Minutes between outbox sweeps (`workers.outboxSweepMinutes`). */
  readonly outboxSweepMinutes: number;
}

function readPercent(raw: unknown, path: string, fallback: number): number {
  return readInt(raw, path, 1, 99, fallback);
}

function parseDatabaseMonitoring(raw: unknown, path: string): DatabaseMonitoringConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, [
    'cpuPercent',
    'freeStoragePercent',
    'freeableMemoryPercent',
    'connectionsPercent',
    'maxConnections',
    'instanceMemoryGib',
    'readLatencyMs',
    'writeLatencyMs',
    'transactionIdAge',
    'deadlocks',
    'performanceInsightsRetentionDays',
    'enhancedMonitoringSeconds',
  ]);
  const transactionIdAge = readInt(o.transactionIdAge, `${path}.transactionIdAge`, 100_000_000, 2_000_000_000, 1_000_000_000);
  if (transactionIdAge > 1_500_000_000) {
    throw new ConfigError(
      `${path}.transactionIdAge`,
      transactionIdAge,
      'at most 1500000000: Postgres stops accepting writes near 2.1 billion, and a forced vacuum of the ledger takes hours',
    );
  }
  return {
    cpuPercent: readPercent(o.cpuPercent, `${path}.cpuPercent`, 80),
    freeStoragePercent: readInt(o.freeStoragePercent, `${path}.freeStoragePercent`, 1, 50, 10),
    freeableMemoryPercent: readInt(o.freeableMemoryPercent, `${path}.freeableMemoryPercent`, 1, 50, 10),
    connectionsPercent: readPercent(o.connectionsPercent, `${path}.connectionsPercent`, 80),
    ...(o.maxConnections === undefined ? {} : { maxConnections: readInt(o.maxConnections, `${path}.maxConnections`, 10, 262_143) }),
    ...(o.instanceMemoryGib === undefined ? {} : { instanceMemoryGib: readInt(o.instanceMemoryGib, `${path}.instanceMemoryGib`, 1, 4096) }),
    readLatencyMs: readInt(o.readLatencyMs, `${path}.readLatencyMs`, 1, 10_000, 20),
    writeLatencyMs: readInt(o.writeLatencyMs, `${path}.writeLatencyMs`, 1, 10_000, 20),
    transactionIdAge,
    deadlocks: readInt(o.deadlocks, `${path}.deadlocks`, 0, 10_000, 0),
    performanceInsightsRetentionDays: readOneOf(
      o.performanceInsightsRetentionDays,
      `${path}.performanceInsightsRetentionDays`,
      PERFORMANCE_INSIGHTS_RETENTION_DAYS,
      7,
    ),
    enhancedMonitoringSeconds: readOneOf(o.enhancedMonitoringSeconds, `${path}.enhancedMonitoringSeconds`, ENHANCED_MONITORING_INTERVALS, 0),
  };
}

function parseProxyMonitoring(raw: unknown, path: string): ProxyMonitoringConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, ['clientConnections', 'borrowLatencyMs', 'pinnedConnections']);
  return {
    ...(o.clientConnections === undefined ? {} : { clientConnections: readInt(o.clientConnections, `${path}.clientConnections`, 1, 100_000) }),
    borrowLatencyMs: readInt(o.borrowLatencyMs, `${path}.borrowLatencyMs`, 1, 30_000, 50),
    pinnedConnections: readInt(o.pinnedConnections, `${path}.pinnedConnections`, 0, 100_000, 0),
  };
}

function parseCacheMonitoring(raw: unknown, path: string): CacheMonitoringConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, ['engineCpuPercent', 'memoryPercent', 'evictions', 'connections', 'replicationLagSeconds']);
  return {
    engineCpuPercent: readPercent(o.engineCpuPercent, `${path}.engineCpuPercent`, 80),
    memoryPercent: readPercent(o.memoryPercent, `${path}.memoryPercent`, 80),
    evictions: readInt(o.evictions, `${path}.evictions`, 0, 1_000_000, 0),
    // ElastiCache caps a node at 65 000 client connections.
    connections: readInt(o.connections, `${path}.connections`, 1, 65_000, 1000),
    replicationLagSeconds: readInt(o.replicationLagSeconds, `${path}.replicationLagSeconds`, 1, 3600, 10),
  };
}

function parseNatMonitoring(raw: unknown, path: string): NatMonitoringConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, ['portAllocationErrors', 'packetsDropped']);
  return {
    portAllocationErrors: readInt(o.portAllocationErrors, `${path}.portAllocationErrors`, 0, 1_000_000, 0),
    packetsDropped: readInt(o.packetsDropped, `${path}.packetsDropped`, 0, 100_000_000, 100),
  };
}

/** Whole minutes that are a multiple of 5 (the alarms' period). */
function readFiveMinutes(raw: unknown, path: string, min: number, max: number, fallback?: number): number {
  const minutes = readInt(raw, path, min, max, fallback);
  if (minutes % 5 !== 0) throw new ConfigError(path, minutes, `a multiple of 5 from ${min} to ${max} (the alarms evaluate 5-minute periods)`);
  return minutes;
}

function parseSilenceMonitoring(raw: unknown, path: string, context: MonitoringContext): SilenceMonitoringConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, [
    'clickTrafficQuietMinutes',
    'stalledMinutes',
    'clicksPerHourExpectingDuplicates',
    'outboxMaxAgeMinutes',
    'flinkCheckMinutes',
    'triggerCheckMinutes',
  ]);
  const outboxMaxAgeMinutes = readInt(o.outboxMaxAgeMinutes, `${path}.outboxMaxAgeMinutes`, 2, 1440, Math.max(10, 2 * context.outboxSweepMinutes));
  if (outboxMaxAgeMinutes < 2 * context.outboxSweepMinutes) {
    throw new ConfigError(
      `${path}.outboxMaxAgeMinutes`,
      outboxMaxAgeMinutes,
      `at least ${2 * context.outboxSweepMinutes}, twice workers.outboxSweepMinutes (a row normally waits up to one sweep)`,
    );
  }
  return {
    ...(o.clickTrafficQuietMinutes === undefined
      ? {}
      : { clickTrafficQuietMinutes: readFiveMinutes(o.clickTrafficQuietMinutes, `${path}.clickTrafficQuietMinutes`, 5, 1440) }),
    stalledMinutes: readFiveMinutes(o.stalledMinutes, `${path}.stalledMinutes`, 5, 240, 15),
    clicksPerHourExpectingDuplicates: readInt(o.clicksPerHourExpectingDuplicates, `${path}.clicksPerHourExpectingDuplicates`, 100, 100_000_000, 20_000),
    outboxMaxAgeMinutes,
    flinkCheckMinutes: readInt(o.flinkCheckMinutes, `${path}.flinkCheckMinutes`, 1, 60, 5),
    triggerCheckMinutes: readInt(o.triggerCheckMinutes, `${path}.triggerCheckMinutes`, 1, 60, 5),
  };
}

function parseRecoveryMonitoring(raw: unknown, path: string): RecoveryMonitoringConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, ['recordAgeWarnMinutes', 'recoveryWindowAlarmPercent']);
  return {
    recordAgeWarnMinutes: readFiveMinutes(o.recordAgeWarnMinutes, `${path}.recordAgeWarnMinutes`, 5, 1440, 30),
    recoveryWindowAlarmPercent: readInt(o.recoveryWindowAlarmPercent, `${path}.recoveryWindowAlarmPercent`, 5, 50, 25),
  };
}

/** Parses `monitoring` (absent means every default). */
export function parseMonitoringConfig(raw: unknown, path: string, context: MonitoringContext): MonitoringConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, ['database', 'proxy', 'cache', 'nat', 'silence', 'recovery']);
  return {
    database: parseDatabaseMonitoring(o.database, `${path}.database`),
    proxy: parseProxyMonitoring(o.proxy, `${path}.proxy`),
    cache: parseCacheMonitoring(o.cache, `${path}.cache`),
    nat: parseNatMonitoring(o.nat, `${path}.nat`),
    silence: parseSilenceMonitoring(o.silence, `${path}.silence`, context),
    recovery: parseRecoveryMonitoring(o.recovery, `${path}.recovery`),
  };
}
