import { defineEnvironment } from '../define';

/** Production: multi-zone cluster and database, Redis replica, protected stateful resources. */
export default defineEnvironment({
  name: 'prod',
  production: true,
  confluent: {
    cloud: 'AWS',
    region: 'ap-northeast-2',
    environment: { mode: 'create', displayName: 'adstream-prod', streamGovernance: 'ADVANCED' },
    kafkaCluster: { mode: 'create', displayName: 'adstream-prod', type: 'STANDARD', availability: 'MULTI_ZONE' },
    topics: {
      'ad-events': { partitions: 12, retentionMs: 7 * 24 * 3600 * 1000, cleanupPolicy: 'delete' },
      'campaign-events': { partitions: 6, retentionMs: -1, cleanupPolicy: 'compact' },
      'conversion-events': { partitions: 6, retentionMs: 7 * 24 * 3600 * 1000, cleanupPolicy: 'delete' },
      'compensation-events': { partitions: 6, retentionMs: 30 * 24 * 3600 * 1000, cleanupPolicy: 'delete' },
      'product-catalog': { partitions: 3, retentionMs: -1, cleanupPolicy: 'compact' },
    },
  },
  flink: { maxCfu: 20 },
  aws: { region: 'ap-northeast-2', accountId: '222222222222', tags: { project: 'adstream', environment: 'prod' } },
  alerts: { emails: ['adstream-oncall@example.com', 'ad-finance@example.com'] },
  stateBackend: { kind: 's3', bucket: 'adstream-prod-tfstate', keyPrefix: 'adstream/prod', region: 'ap-northeast-2', encrypt: true, useLockfile: true },
  network: { mode: 'create', cidr: '10.50.0.0/16', availabilityZones: 3, natGateways: 3 },
  database: {
    instanceClass: 'db.r7g.large',
    allocatedStorageGb: 100,
    maxAllocatedStorageGb: 1000,
    multiAz: true,
    backupRetentionDays: 14,
    useProxy: true,
    history: { ledgerRetentionDays: 400, partitionsAheadDays: 14, expired: 'detach' },
  },
  cache: { nodeType: 'cache.r7g.large', replicas: 1 },
  workers: {
    functions: {
      clickBalance: { memoryMb: 1024, timeoutSeconds: 120, reservedConcurrency: 12 },
      compensation: { memoryMb: 512, timeoutSeconds: 120, reservedConcurrency: 6 },
      rankingCache: { memoryMb: 512, timeoutSeconds: 60, reservedConcurrency: 6 },
      budgetReset: { memoryMb: 512, timeoutSeconds: 600, reservedConcurrency: 1 },
      outboxSweep: { memoryMb: 256, timeoutSeconds: 120, reservedConcurrency: 1 },
      dbMigrate: { memoryMb: 512, timeoutSeconds: 600, reservedConcurrency: 1 },
    },
    logRetentionDays: 90,
  },
  monitoring: {
    // A month of Performance Insights history and OS metrics every minute for incidents.
    database: { performanceInsightsRetentionDays: 31, enhancedMonitoringSeconds: 60 },
    // Clicks flow around the clock in production: a quarter of an hour without one is an outage.
    silence: { clickTrafficQuietMinutes: 15 },
  },
});
