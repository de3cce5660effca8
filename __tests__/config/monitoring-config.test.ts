import { ConfigError, parseEnvironment } from '../../config';
import dev from '../../config/environments/dev';
import prod from '../../config/environments/prod';

function errorOf(raw: unknown): ConfigError {
  try {
    parseEnvironment(raw);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected parseEnvironment to throw a ConfigError');
}

const withMonitoring = (monitoring: unknown) => ({ ...structuredClone(dev), monitoring });

describe('monitoring configuration', () => {
  test('absent means the documented defaults', () => {
    const { monitoring } = parseEnvironment(structuredClone(dev));
    expect(monitoring.database).toEqual({
      cpuPercent: 80,
      freeStoragePercent: 10,
      freeableMemoryPercent: 10,
      connectionsPercent: 80,
      readLatencyMs: 20,
      writeLatencyMs: 20,
      transactionIdAge: 1_000_000_000,
      deadlocks: 0,
      performanceInsightsRetentionDays: 7,
      enhancedMonitoringSeconds: 0,
    });
    expect(monitoring.proxy).toEqual({ borrowLatencyMs: 50, pinnedConnections: 0 });
    expect(monitoring.cache).toEqual({ engineCpuPercent: 80, memoryPercent: 80, evictions: 0, connections: 1000, replicationLagSeconds: 10 });
    expect(monitoring.nat).toEqual({ portAllocationErrors: 0, packetsDropped: 100 });
    expect(monitoring.silence).toEqual({
      stalledMinutes: 15,
      clicksPerHourExpectingDuplicates: 20_000,
      outboxMaxAgeMinutes: 10,
      flinkCheckMinutes: 5,
      triggerCheckMinutes: 5,
    });
    expect(monitoring.recovery).toEqual({ recordAgeWarnMinutes: 30, recoveryWindowAlarmPercent: 25 });
  });

  test('production alarms on a quarter of an hour without clicks; dev, idle most of the time, does not', () => {
    expect(parseEnvironment(structuredClone(prod)).monitoring.silence.clickTrafficQuietMinutes).toBe(15);
    expect(parseEnvironment(structuredClone(dev)).monitoring.silence).not.toHaveProperty('clickTrafficQuietMinutes');
  });

  test('the outbox age default follows a slower sweep', () => {
    const raw = structuredClone(dev) as unknown as Record<string, Record<string, unknown>>;
    raw.workers.outboxSweepMinutes = 15;
    expect(parseEnvironment(raw).monitoring.silence.outboxMaxAgeMinutes).toBe(30);
  });

  test('production keeps a month of Performance Insights and enhanced monitoring every minute', () => {
    const { monitoring } = parseEnvironment(structuredClone(prod));
    expect(monitoring.database.performanceInsightsRetentionDays).toBe(31);
    expect(monitoring.database.enhancedMonitoringSeconds).toBe(60);
  });

  test('an environment overrides one threshold and keeps the other defaults', () => {
    const { monitoring } = parseEnvironment(withMonitoring({ cache: { evictions: 50 }, proxy: { clientConnections: 40 } }));
    expect(monitoring.cache.evictions).toBe(50);
    expect(monitoring.cache.memoryPercent).toBe(80);
    expect(monitoring.proxy.clientConnections).toBe(40);
  });

  const cases: Array<[string, unknown, string, string]> = [
    ['a monitoring section has a typo', { databse: {} }, 'dev.monitoring.databse', 'no such field'],
    ['a database threshold has a typo', { database: { cpu: 90 } }, 'dev.monitoring.database.cpu', 'no such field'],
    ['the CPU threshold is 100 % or more', { database: { cpuPercent: 100 } }, 'dev.monitoring.database.cpuPercent', 'an integer from 1 to 99'],
    [
      'the free storage threshold is above half the disk',
      { database: { freeStoragePercent: 60 } },
      'dev.monitoring.database.freeStoragePercent',
      'an integer from 1 to 50',
    ],
    [
      'the transaction-ID age is too close to wraparound',
      { database: { transactionIdAge: 1_800_000_000 } },
      'dev.monitoring.database.transactionIdAge',
      'Postgres stops accepting writes',
    ],
    [
      'the transaction-ID age is below the autovacuum freeze age',
      { database: { transactionIdAge: 1000 } },
      'dev.monitoring.database.transactionIdAge',
      'an integer from 100000000',
    ],
    [
      'the Performance Insights retention is not offered',
      { database: { performanceInsightsRetentionDays: 30 } },
      'dev.monitoring.database.performanceInsightsRetentionDays',
      'one of 7, 31, 62',
    ],
    [
      'the enhanced monitoring interval is not offered',
      { database: { enhancedMonitoringSeconds: 20 } },
      'dev.monitoring.database.enhancedMonitoringSeconds',
      'one of 0, 1, 5, 10, 15, 30, 60',
    ],
    ['max connections is not an integer', { database: { maxConnections: 'many' } }, 'dev.monitoring.database.maxConnections', 'an integer from 10'],
    ['the proxy borrow latency is zero', { proxy: { borrowLatencyMs: 0 } }, 'dev.monitoring.proxy.borrowLatencyMs', 'an integer from 1'],
    [
      'the cache connection threshold exceeds the node limit',
      { cache: { connections: 70_000 } },
      'dev.monitoring.cache.connections',
      'an integer from 1 to 65000',
    ],
    ['a negative eviction threshold', { cache: { evictions: -1 } }, 'dev.monitoring.cache.evictions', 'an integer from 0'],
    ['a NAT threshold is not a number', { nat: { packetsDropped: '100' } }, 'dev.monitoring.nat.packetsDropped', 'an integer from 0'],
    ['monitoring is not an object', 'on', 'dev.monitoring', 'an object'],
    [
      'the click quiet window is not a multiple of 5 minutes',
      { silence: { clickTrafficQuietMinutes: 12 } },
      'dev.monitoring.silence.clickTrafficQuietMinutes',
      'a multiple of 5',
    ],
    ['the stalled window is longer than 4 hours', { silence: { stalledMinutes: 300 } }, 'dev.monitoring.silence.stalledMinutes', 'an integer from 5 to 240'],
    ['the outbox may wait less than two sweeps', { silence: { outboxMaxAgeMinutes: 1 } }, 'dev.monitoring.silence.outboxMaxAgeMinutes', 'an integer from 2'],
    [
      'the duplicate expectation is below 100 clicks an hour',
      { silence: { clicksPerHourExpectingDuplicates: 10 } },
      'dev.monitoring.silence.clicksPerHourExpectingDuplicates',
      'an integer from 100',
    ],
    [
      'the trigger check runs every 0 minutes',
      { silence: { triggerCheckMinutes: 0 } },
      'dev.monitoring.silence.triggerCheckMinutes',
      'an integer from 1 to 60',
    ],
    ['the Flink check runs less than hourly', { silence: { flinkCheckMinutes: 90 } }, 'dev.monitoring.silence.flinkCheckMinutes', 'an integer from 1 to 60'],
    [
      'the recovery-window alarm comes after half the window',
      { recovery: { recoveryWindowAlarmPercent: 80 } },
      'dev.monitoring.recovery.recoveryWindowAlarmPercent',
      'an integer from 5 to 50',
    ],
    [
      'the record-age warning is not a multiple of 5 minutes',
      { recovery: { recordAgeWarnMinutes: 7 } },
      'dev.monitoring.recovery.recordAgeWarnMinutes',
      'a multiple of 5',
    ],
  ];

  test('fails when the outbox may wait less than two sweeps of a slow sweep', () => {
    const raw = { ...withMonitoring({ silence: { outboxMaxAgeMinutes: 20 } }), workers: { ...structuredClone(dev).workers, outboxSweepMinutes: 15 } };
    const error = errorOf(raw);
    expect(error.field).toBe('dev.monitoring.silence.outboxMaxAgeMinutes');
    expect(error.allowed).toContain('at least 30, twice workers.outboxSweepMinutes');
  });

  test.each(cases)('fails when %s', (_title, monitoring, field, allowed) => {
    const error = errorOf(withMonitoring(monitoring));
    expect(error.field).toBe(field);
    expect(error.allowed).toContain(allowed);
  });
});
