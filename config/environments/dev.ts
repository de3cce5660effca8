import { defineEnvironment } from '../define';

/** Development: single-zone, small, cheap; state in S3 like every shared environment. */
export default defineEnvironment({
  name: 'dev',
  production: false,
  confluent: {
    cloud: 'AWS',
    region: 'ap-northeast-2',
    environment: { mode: 'create', displayName: 'adstream-dev', streamGovernance: 'ESSENTIALS' },
    kafkaCluster: { mode: 'create', displayName: 'adstream-dev', type: 'BASIC', availability: 'SINGLE_ZONE' },
    topics: {
      'ad-events': { partitions: 3, retentionMs: 3 * 24 * 3600 * 1000, cleanupPolicy: 'delete' },
      'campaign-events': { partitions: 3, retentionMs: -1, cleanupPolicy: 'compact' },
      'conversion-events': { partitions: 3, retentionMs: 3 * 24 * 3600 * 1000, cleanupPolicy: 'delete' },
      'compensation-events': { partitions: 3, retentionMs: 7 * 24 * 3600 * 1000, cleanupPolicy: 'delete' },
      'product-catalog': { partitions: 1, retentionMs: -1, cleanupPolicy: 'compact' },
    },
  },
  flink: { maxCfu: 10 },
  aws: { region: 'ap-northeast-2', accountId: '111111111111', tags: { project: 'adstream', environment: 'dev' } },
  alerts: { emails: ['adstream-dev-alerts@example.com'] },
  stateBackend: { kind: 's3', bucket: 'adstream-dev-tfstate', keyPrefix: 'adstream/dev', region: 'ap-northeast-2', encrypt: true, useLockfile: true },
  network: { mode: 'create', cidr: '10.40.0.0/16', availabilityZones: 2, natGateways: 1 },
  database: {
    instanceClass: 'db.t4g.micro',
    allocatedStorageGb: 20,
    maxAllocatedStorageGb: 50,
    multiAz: false,
    backupRetentionDays: 1,
    useProxy: false,
    history: { ledgerRetentionDays: 35, expired: 'drop' },
  },
  cache: { nodeType: 'cache.t4g.micro', replicas: 0 },
  workers: {
    functions: {
      clickBalance: { memoryMb: 512, timeoutSeconds: 60, reservedConcurrency: 3 },
      compensation: { memoryMb: 256, timeoutSeconds: 60, reservedConcurrency: 3 },
      rankingCache: { memoryMb: 256, timeoutSeconds: 60, reservedConcurrency: 6 },
      budgetReset: { memoryMb: 256, timeoutSeconds: 300, reservedConcurrency: 1 },
      outboxSweep: { memoryMb: 256, timeoutSeconds: 60, reservedConcurrency: 1 },
      dbMigrate: { memoryMb: 256, timeoutSeconds: 300, reservedConcurrency: 1 },
    },
    logRetentionDays: 14,
  },
});
