import { RTB_RANKINGS_PARTITIONS, RTB_RANKINGS_TOPIC } from '../contracts/rankings';
import { ConfigError, ConfigErrors } from './errors';
import { FlinkConfig, parseFlinkConfig } from './flink';
import { MonitoringConfig, parseMonitoringConfig } from './monitoring';
import { readArray, readBoolean, readInt, readObject, readOneOf, readString, readTimeZone, rejectUnknownKeys } from './validate';

/** Topics this project creates and registers contracts for (Flink creates its own sink tables). */
export const TOPIC_NAMES = ['ad-events', 'campaign-events', 'conversion-events', 'compensation-events', 'product-catalog'] as const;
/** One of the project's Terraform-managed topics. */
export type TopicName = (typeof TOPIC_NAMES)[number];

/** Cleanup policies a topic may have. */
export const CLEANUP_POLICIES = ['delete', 'compact', 'compact,delete'] as const;

/** Partitions, retention and cleanup of one topic. */
export interface TopicConfig {
  /** Partition count; also the upper bound of Lambda concurrency for its consumer. */
  readonly partitions: number;
  /** Retention in milliseconds; -1 keeps records forever (compacted feeds). */
  readonly retentionMs: number;
  /** `delete` for event streams, `compact` for latest-value feeds. */
  readonly cleanupPolicy: (typeof CLEANUP_POLICIES)[number];
}

/** Create a Confluent environment, or reference an existing one by id. */
export type ConfluentEnvironmentConfig =
  | {
      readonly mode: 'create';
      /** Display name; also the Flink catalog name. */
      readonly displayName: string;
      /** Stream Governance package of the environment. */
      readonly streamGovernance: 'ESSENTIALS' | 'ADVANCED';
    }
  | {
      readonly mode: 'reference';
      /** Existing environment id, `env-xxxxx`. */
      readonly id: string;
    };

/** Create a Kafka cluster, or reference an existing one by id. */
export type KafkaClusterConfig =
  | {
      readonly mode: 'create';
      /** Display name; also the Flink database name. */
      readonly displayName: string;
      /** Cluster type. */
      readonly type: 'BASIC' | 'STANDARD' | 'ENTERPRISE' | 'DEDICATED';
      /** Zone redundancy. */
      readonly availability: 'SINGLE_ZONE' | 'MULTI_ZONE';
      /** CKUs, for DEDICATED clusters only. */
      readonly cku?: number;
    }
  | {
      readonly mode: 'reference';
      /** Existing cluster id, `lkc-xxxxx`. */
      readonly id: string;
    };

/** The Confluent Cloud side of an environment. */
export interface ConfluentConfig {
  /** Cloud provider hosting the cluster and the Flink pool. */
  readonly cloud: 'AWS' | 'GCP' | 'AZURE';
  /** Cloud region, e.g. `ap-northeast-2`. */
  readonly region: string;
  /** The Confluent environment. */
  readonly environment: ConfluentEnvironmentConfig;
  /** The Kafka cluster. */
  readonly kafkaCluster: KafkaClusterConfig;
  /** Settings of every project topic. */
  readonly topics: Readonly<Record<TopicName, TopicConfig>>;
  /**
   * The workers' Confluent API key slots (consumer and producer alike). A rotation adds the
   * other slot, makes it active, then removes the old one; see docs/operations.md, "Key rotation".
   * @default - { slots: ['blue'], active: 'blue' }
   */
  readonly workerApiKeys: WorkerApiKeysConfig;
}

/** A slot for a worker API key: a key per slot, and one Secrets Manager secret per slot. */
export type ApiKeySlot = 'blue' | 'green';

/** Which worker API keys exist and which one the functions and triggers use. */
export interface WorkerApiKeysConfig {
  /** Slots that have a key: one normally, both during a rotation. */
  readonly slots: readonly ApiKeySlot[];
  /** The slot whose secret the triggers and the outbox producer use; one of `slots`. */
  readonly active: ApiKeySlot;
}

/** The AWS account the workers run in. */
export interface AwsConfig {
  /** Region of the functions, database and cache. */
  readonly region: string;
  /** 12-digit account id; the provider refuses any other account. */
  readonly accountId: string;
  /** Tags applied to every AWS resource. */
  readonly tags: Readonly<Record<string, string>>;
}

/** Where alerts go. */
export interface AlertsConfig {
  /** E-mail addresses subscribed to the alerts topic (each must confirm once). */
  readonly emails: readonly string[];
  /** Slack channel through AWS Chatbot. @default - no Slack delivery */
  readonly slack?: {
    /** Slack workspace (team) id, `T…`. */
    readonly workspaceId: string;
    /** Slack channel id, `C…` or `G…`. */
    readonly channelId: string;
    /**
     * Region whose Chatbot API holds the channel configuration (the API runs in four regions
     * only; the configuration may subscribe to topics of any supported region).
     * @default 'us-east-2'
     */
    readonly apiRegion: (typeof CHATBOT_API_REGIONS)[number];
  };
}

/** Regions whose Chatbot API accepts channel configurations (AWS Chatbot API reference). */
export const CHATBOT_API_REGIONS = ['us-east-2', 'us-west-2', 'ap-southeast-1', 'eu-west-1'] as const;

/**
 * Regions whose SNS topics AWS Chatbot delivers from (Chatbot admin guide, "Regions and
 * quotas"): the commercial regions and the supported opt-in regions.
 */
export const CHATBOT_TOPIC_REGIONS: readonly string[] = [
  'us-east-1',
  'us-east-2',
  'us-west-1',
  'us-west-2',
  'ap-south-1',
  'ap-northeast-3',
  'ap-northeast-2',
  'ap-southeast-1',
  'ap-southeast-2',
  'ap-northeast-1',
  'ca-central-1',
  'eu-central-1',
  'eu-west-1',
  'eu-west-2',
  'eu-west-3',
  'eu-north-1',
  'sa-east-1',
  // opt-in regions
  'af-south-1',
  'ap-east-1',
  'ap-south-2',
  'ap-southeast-3',
  'ap-southeast-5',
  'ap-southeast-4',
  'ap-southeast-7',
  'ca-west-1',
  'eu-south-1',
  'eu-south-2',
  'eu-central-2',
  'mx-central-1',
  'me-south-1',
  'il-central-1',
];

/** Terraform state backend of every stack of the environment. */
export type StateBackendConfig =
  | {
      readonly kind: 's3';
      /** Bucket holding the state. */
      readonly bucket: string;
      /** Key prefix; each stack appends `<stack>.tfstate`. */
      readonly keyPrefix: string;
      /** Region of the bucket. */
      readonly region: string;
      /** Server-side encryption of the state object; must be on. */
      readonly encrypt: true;
      /** Lock with an S3 lock file (Terraform ≥ 1.10). */
      readonly useLockfile: true;
      /**
       * KMS key (ARN) the state objects are encrypted with (SSE-KMS), so reading a state that
       * holds API secrets needs kms:Decrypt on this key as well as s3:GetObject.
       * @default - SSE-S3 (the bucket's default encryption)
       */
      readonly kmsKeyId?: string;
    }
  | {
      readonly kind: 'local';
      /** Directory for the state files, relative to the stack's working directory. */
      readonly directory: string;
    };

/** The VPC the functions, database and cache live in. */
export type NetworkConfig =
  | {
      readonly mode: 'create';
      /** VPC CIDR block. */
      readonly cidr: string;
      /** How many availability zones (and private subnets) to spread over. */
      readonly availabilityZones: number;
      /** NAT gateways for the functions that produce to Confluent (0 disables egress). */
      readonly natGateways: number;
    }
  | {
      readonly mode: 'reference';
      /** Existing VPC id. */
      readonly vpcId: string;
      /** Existing private subnet ids (with a route to NAT). */
      readonly privateSubnetIds: readonly string[];
    };

/** The Postgres database (RDS). */
export interface DatabaseConfig {
  /** Instance class, e.g. `db.t4g.medium`. */
  readonly instanceClass: string;
  /** Postgres major version (`"16"`); RDS picks and upgrades the minor automatically. */
  readonly engineVersion: string;
  /** Initial storage in GiB. */
  readonly allocatedStorageGb: number;
  /** Storage autoscaling ceiling in GiB. */
  readonly maxAllocatedStorageGb: number;
  /** Standby in another zone. */
  readonly multiAz: boolean;
  /** Days of automated backups. */
  readonly backupRetentionDays: number;
  /** Put RDS Proxy between the functions and the database. */
  readonly useProxy: boolean;
  /** Retention of the day-partitioned history: the ledger (`ad_balance_histories`), `click_voids`, `duplicate_clicks`, `dead_letters`, `outbox`. */
  readonly history: HistoryConfig;
}

/**
 * How long the ledger, the voids, the duplicate log, the dead letters and the outbox keep their
 * daily partitions, applied every day by budget-reset through `adstream_maintain_history()`
 * (db/migrations/1764800000000_partitioned-ledger.sql, 1764940000000_partitioned-voids-duplicates.sql,
 * 1764980000000_partitioned-dead-letters-outbox.sql; one table per transaction since
 * 1765040000000_upkeep-one-table-at-a-time.sql). An outbox day with a row not published, or a
 * dead-letter day with a row not re-driven, is kept past the retention until that is done.
 */
export interface HistoryConfig {
  /**
   * Days of ledger, voids, duplicate log, dead letters and outbox kept in daily partitions (default 400). At least 35, and longer than the
   * retention of `ad-events` and `compensation-events`: a replayed click must find its charge,
   * and a refund the charge it returns.
   */
  readonly ledgerRetentionDays: number;
  /** Daily partitions created ahead of today (default 7). */
  readonly partitionsAheadDays: number;
  /** An expired partition is detached and kept as `archived_<name>` for export, or dropped (default detach; production must detach). */
  readonly expired: 'detach' | 'drop';
}

/** The Redis cache (ElastiCache). */
export interface CacheConfig {
  /** Node type, e.g. `cache.t4g.small`. */
  readonly nodeType: string;
  /** Redis engine version. */
  readonly engineVersion: string;
  /** Read replicas; ≥ 1 enables automatic failover and multi-AZ. */
  readonly replicas: number;
}

/** Names of the worker functions. */
export const WORKER_FUNCTIONS = ['clickBalance', 'compensation', 'rankingCache', 'budgetReset', 'outboxSweep', 'dbMigrate'] as const;
/** One worker function. */
export type WorkerFunctionName = (typeof WORKER_FUNCTIONS)[number];

/** Size and concurrency of one function. */
export interface FunctionSizing {
  /** Memory in MB (CPU scales with it). */
  readonly memoryMb: number;
  /** Timeout in seconds (≤ 840 for Kafka triggers). */
  readonly timeoutSeconds: number;
  /** Reserved concurrency; for Kafka consumers at least the topic's partitions. */
  readonly reservedConcurrency: number;
}

/** CloudWatch Logs retention values the service accepts. */
export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

/** The worker Lambdas and their Kafka triggers. */
export interface WorkersConfig {
  /** Calendar day of budgets and of the reset schedule. */
  readonly budgetTimeZone: string;
  /** Records per Lambda invocation. */
  readonly batchSize: number;
  /** Where a new consumer group starts; TRIM_HORIZON so no click is skipped. */
  readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
  /** Confluent Cloud as self-managed Kafka, or topics mirrored into MSK. */
  readonly kafkaSource: { readonly kind: 'confluent' } | { readonly kind: 'msk'; readonly clusterArn: string };
  /** Per-function sizing. */
  readonly functions: Readonly<Record<WorkerFunctionName, FunctionSizing>>;
  /** Days the functions' logs are kept. */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** Minutes between outbox sweeps. */
  readonly outboxSweepMinutes: number;
  /**
   * Freshness bound of the RTB rankings: the TTL of the freshness key, counted from the ranking
   * statement's latest heartbeat (event time). Rankings themselves never expire.
   */
  readonly rankingTtlSeconds: number;
}

/** Everything one deployment environment needs, validated. */
export interface EnvironmentConfig {
  /** Short name, used in stack names and resource names. */
  readonly name: string;
  /** Production turns on deletion protection and prevent_destroy. */
  readonly production: boolean;
  /** Confluent Cloud side. */
  readonly confluent: ConfluentConfig;
  /** Flink compute pool and pipelines. */
  readonly flink: FlinkConfig;
  /** AWS account and region. */
  readonly aws: AwsConfig;
  /**
   * Why the Confluent and AWS regions may differ. Absent means they must match: the workers'
   * latency budget assumes same-region traffic.
   * @default - regions must match
   */
  readonly regionMismatchReason?: string;
  /** Alert delivery. */
  readonly alerts: AlertsConfig;
  /** Terraform state backend. */
  readonly stateBackend: StateBackendConfig;
  /** VPC of the workers. */
  readonly network: NetworkConfig;
  /** Postgres. */
  readonly database: DatabaseConfig;
  /** Redis. */
  readonly cache: CacheConfig;
  /** Worker functions. */
  readonly workers: WorkersConfig;
  /** Alarm thresholds and database insight (config/monitoring.ts); every field has a default. */
  readonly monitoring: MonitoringConfig;
}

const NAME = /^[a-z][a-z0-9-]{1,14}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const MAX_RETENTION_MS = 90 * 24 * 3600 * 1000;

function parseTopic(raw: unknown, path: string): TopicConfig {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['partitions', 'retentionMs', 'cleanupPolicy']);
  const cleanupPolicy = readOneOf(o.cleanupPolicy, `${path}.cleanupPolicy`, CLEANUP_POLICIES);
  const retentionMs = o.retentionMs;
  if (!(
    retentionMs === -1 ||
    (typeof retentionMs === 'number' && Number.isInteger(retentionMs) && retentionMs >= 3_600_000 && retentionMs <= MAX_RETENTION_MS)
  )) {
    throw new ConfigError(`${path}.retentionMs`, retentionMs, `-1 (forever) or an integer from 3600000 (1 h) to ${MAX_RETENTION_MS} (90 d)`);
  }
  if (retentionMs === -1 && cleanupPolicy === 'delete') {
    throw new ConfigError(`${path}.retentionMs`, retentionMs, 'a finite retention for a topic whose cleanupPolicy is "delete"');
  }
  return { partitions: readInt(o.partitions, `${path}.partitions`, 1, 120), retentionMs, cleanupPolicy };
}

function parseConfluent(raw: unknown, path: string): ConfluentConfig {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['cloud', 'region', 'environment', 'kafkaCluster', 'topics', 'workerApiKeys']);
  const env = readObject(o.environment, `${path}.environment`);
  const environment: ConfluentEnvironmentConfig =
    readOneOf(env.mode, `${path}.environment.mode`, ['create', 'reference'] as const) === 'create'
      ? {
          mode: 'create',
          displayName: readString(
            env.displayName,
            `${path}.environment.displayName`,
            /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
            'letters, digits, "_", "." and "-", at most 64',
          ),
          streamGovernance: readOneOf(env.streamGovernance, `${path}.environment.streamGovernance`, ['ESSENTIALS', 'ADVANCED'] as const, 'ESSENTIALS'),
        }
      : { mode: 'reference', id: readString(env.id, `${path}.environment.id`, /^env-[a-z0-9]+$/, 'an environment id such as "env-abc123"') };

  const k = readObject(o.kafkaCluster, `${path}.kafkaCluster`);
  let kafkaCluster: KafkaClusterConfig;
  if (readOneOf(k.mode, `${path}.kafkaCluster.mode`, ['create', 'reference'] as const) === 'create') {
    const type = readOneOf(k.type, `${path}.kafkaCluster.type`, ['BASIC', 'STANDARD', 'ENTERPRISE', 'DEDICATED'] as const);
    const cku = k.cku === undefined ? undefined : readInt(k.cku, `${path}.kafkaCluster.cku`, 1, 152);
    if (type === 'DEDICATED' && cku === undefined) {
      throw new ConfigError(`${path}.kafkaCluster.cku`, undefined, 'an integer from 1 to 152 for a DEDICATED cluster');
    }
    if (type !== 'DEDICATED' && cku !== undefined) {
      throw new ConfigError(`${path}.kafkaCluster.cku`, cku, 'nothing: only DEDICATED clusters take a CKU count');
    }
    kafkaCluster = {
      mode: 'create',
      displayName: readString(
        k.displayName,
        `${path}.kafkaCluster.displayName`,
        /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
        'letters, digits, "_", "." and "-", at most 64',
      ),
      type,
      availability: readOneOf(k.availability, `${path}.kafkaCluster.availability`, ['SINGLE_ZONE', 'MULTI_ZONE'] as const),
      ...(cku === undefined ? {} : { cku }),
    };
  } else {
    kafkaCluster = { mode: 'reference', id: readString(k.id, `${path}.kafkaCluster.id`, /^lkc-[a-z0-9]+$/, 'a cluster id such as "lkc-abc123"') };
  }

  const t = readObject(o.topics, `${path}.topics`);
  rejectUnknownKeys(t, `${path}.topics`, TOPIC_NAMES);
  const topics = Object.fromEntries(TOPIC_NAMES.map((name) => [name, parseTopic(t[name], `${path}.topics.${name}`)])) as Record<TopicName, TopicConfig>;
  if (topics['product-catalog'].cleanupPolicy === 'delete') {
    throw new ConfigError(`${path}.topics.product-catalog.cleanupPolicy`, 'delete', '"compact" or "compact,delete": the catalogue is a latest-value feed');
  }
  return {
    cloud: readOneOf(o.cloud, `${path}.cloud`, ['AWS', 'GCP', 'AZURE'] as const),
    region: readString(o.region, `${path}.region`, /^[a-z0-9-]{3,32}$/, 'a cloud region such as "ap-northeast-2"'),
    environment,
    kafkaCluster,
    topics,
    workerApiKeys: parseWorkerApiKeys(o.workerApiKeys, `${path}.workerApiKeys`),
  };
}

const API_KEY_SLOTS = ['blue', 'green'] as const;

function parseWorkerApiKeys(raw: unknown, path: string): WorkerApiKeysConfig {
  if (raw === undefined) return { slots: ['blue'], active: 'blue' };
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['slots', 'active']);
  const slots = readArray(o.slots, `${path}.slots`, (item, itemPath) => readOneOf(item, itemPath, API_KEY_SLOTS), 1);
  if (new Set(slots).size !== slots.length) throw new ConfigError(`${path}.slots`, slots, 'each slot at most once: ["blue"], ["green"] or ["blue", "green"]');
  const active = readOneOf(o.active, `${path}.active`, API_KEY_SLOTS);
  if (!slots.includes(active)) {
    throw new ConfigError(
      `${path}.active`,
      active,
      `one of the slots that have a key (${JSON.stringify(slots)}): add the slot to "slots" first, deploy, then make it active`,
    );
  }
  return { slots, active };
}

function parseAws(raw: unknown, path: string): AwsConfig {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['region', 'accountId', 'tags']);
  const tagsRaw = o.tags === undefined ? {} : readObject(o.tags, `${path}.tags`);
  const tags = Object.fromEntries(Object.entries(tagsRaw).map(([key, value]) => [key, readString(value, `${path}.tags.${key}`)]));
  return {
    region: readString(o.region, `${path}.region`, REGION, 'an AWS region such as "ap-northeast-2"'),
    accountId: readString(o.accountId, `${path}.accountId`, /^\d{12}$/, 'a 12-digit AWS account id'),
    tags,
  };
}

function parseAlerts(raw: unknown, path: string, region: string): AlertsConfig {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['emails', 'slack']);
  const emails = readArray(o.emails, `${path}.emails`, (item, p) => readString(item, p, EMAIL, 'an e-mail address'), 1);
  if (o.slack === undefined) return { emails };
  const s = readObject(o.slack, `${path}.slack`);
  rejectUnknownKeys(s, `${path}.slack`, ['workspaceId', 'channelId', 'apiRegion']);
  if (!CHATBOT_TOPIC_REGIONS.includes(region)) {
    throw new ConfigError(
      `${path}.slack`,
      s,
      `nothing while aws.region is ${region}: Slack delivery needs a region where AWS Chatbot delivers SNS notifications (${CHATBOT_TOPIC_REGIONS.join(', ')}); use e-mail only`,
    );
  }
  return {
    emails,
    slack: {
      workspaceId: readString(s.workspaceId, `${path}.slack.workspaceId`, /^T[A-Z0-9]{6,}$/, 'a Slack workspace id such as "T0123ABCD"'),
      channelId: readString(s.channelId, `${path}.slack.channelId`, /^[CG][A-Z0-9]{6,}$/, 'a Slack channel id such as "C0123ABCD"'),
      apiRegion: readOneOf(s.apiRegion, `${path}.slack.apiRegion`, CHATBOT_API_REGIONS, 'us-east-2'),
    },
  };
}

function parseStateBackend(raw: unknown, path: string, production: boolean): StateBackendConfig {
  const o = readObject(raw, path);
  const kind = readOneOf(o.kind, `${path}.kind`, ['s3', 'local'] as const);
  if (kind === 'local') {
    if (production) throw new ConfigError(`${path}.kind`, kind, '"s3": production state must be remote, encrypted and locked');
    rejectUnknownKeys(o, path, ['kind', 'directory']);
    return { kind, directory: readString(o.directory ?? 'terraform-state', `${path}.directory`) };
  }
  rejectUnknownKeys(o, path, ['kind', 'bucket', 'keyPrefix', 'region', 'encrypt', 'useLockfile', 'kmsKeyId']);
  if (o.encrypt !== true) throw new ConfigError(`${path}.encrypt`, o.encrypt, 'true: state holds API key secrets and must be encrypted');
  if (o.useLockfile !== true) throw new ConfigError(`${path}.useLockfile`, o.useLockfile, 'true: concurrent applies must be locked');
  return {
    kind,
    bucket: readString(o.bucket, `${path}.bucket`, /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name'),
    keyPrefix: readString(o.keyPrefix, `${path}.keyPrefix`, /^[A-Za-z0-9_./-]+$/, 'an S3 key prefix'),
    region: readString(o.region, `${path}.region`, REGION, 'an AWS region such as "ap-northeast-2"'),
    encrypt: true,
    useLockfile: true,
    ...(o.kmsKeyId === undefined
      ? {}
      : {
          kmsKeyId: readString(
            o.kmsKeyId,
            `${path}.kmsKeyId`,
            /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key\/[0-9a-f-]{36}|alias\/[A-Za-z0-9/_-]+)$/,
            'a KMS key or alias ARN such as "arn:aws:kms:ap-northeast-2:111111111111:key/<uuid>"',
          ),
        }),
  };
}

function parseNetwork(raw: unknown, path: string): NetworkConfig {
  const o = readObject(raw, path);
  if (readOneOf(o.mode, `${path}.mode`, ['create', 'reference'] as const) === 'reference') {
    rejectUnknownKeys(o, path, ['mode', 'vpcId', 'privateSubnetIds']);
    return {
      mode: 'reference',
      vpcId: readString(o.vpcId, `${path}.vpcId`, /^vpc-[0-9a-f]{8,17}$/, 'a VPC id such as "vpc-0abc12345"'),
      privateSubnetIds: readArray(
        o.privateSubnetIds,
        `${path}.privateSubnetIds`,
        (item, p) => readString(item, p, /^subnet-[0-9a-f]{8,17}$/, 'a subnet id'),
        2,
      ),
    };
  }
  rejectUnknownKeys(o, path, ['mode', 'cidr', 'availabilityZones', 'natGateways']);
  const availabilityZones = readInt(o.availabilityZones, `${path}.availabilityZones`, 2, 3);
  return {
    mode: 'create',
    cidr: readString(o.cidr, `${path}.cidr`, /^(\d{1,3}\.){3}\d{1,3}\/(1[6-9]|2[0-4])$/, 'an IPv4 CIDR from /16 to /24'),
    availabilityZones,
    natGateways: readInt(o.natGateways, `${path}.natGateways`, 0, availabilityZones),
  };
}

const DAY_MS = 24 * 3600 * 1000;

function parseHistory(raw: unknown, path: string, production: boolean, topics: Readonly<Record<TopicName, TopicConfig>> | undefined): HistoryConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, ['ledgerRetentionDays', 'partitionsAheadDays', 'expired']);
  const ledgerRetentionDays = readInt(o.ledgerRetentionDays, `${path}.ledgerRetentionDays`, 35, 3650, 400);
  for (const topic of ['ad-events', 'compensation-events'] as const) {
    const retentionMs = topics?.[topic]?.retentionMs;
    if (retentionMs === -1) {
      throw new ConfigError(
        `${path}.ledgerRetentionDays`,
        ledgerRetentionDays,
        `a finite ${topic} retention: a ledger that expires cannot keep replays of a topic kept forever idempotent`,
      );
    }
    if (retentionMs !== undefined && ledgerRetentionDays * DAY_MS <= retentionMs + DAY_MS) {
      throw new ConfigError(
        `${path}.ledgerRetentionDays`,
        ledgerRetentionDays,
        `more than ${Math.ceil(retentionMs / DAY_MS) + 1} days (the ${topic} retention plus a day), so a replayed record still finds its charge`,
      );
    }
  }
  const expired = readOneOf(o.expired, `${path}.expired`, ['detach', 'drop'] as const, 'detach');
  if (production && expired === 'drop') {
    throw new ConfigError(`${path}.expired`, expired, '"detach" in production (expired ledger days are archived, never dropped)');
  }
  return { ledgerRetentionDays, partitionsAheadDays: readInt(o.partitionsAheadDays, `${path}.partitionsAheadDays`, 2, 60, 7), expired };
}

function parseDatabase(raw: unknown, path: string, production: boolean, topics?: Readonly<Record<TopicName, TopicConfig>>): DatabaseConfig {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, [
    'instanceClass',
    'engineVersion',
    'allocatedStorageGb',
    'maxAllocatedStorageGb',
    'multiAz',
    'backupRetentionDays',
    'useProxy',
    'history',
  ]);
  const allocatedStorageGb = readInt(o.allocatedStorageGb, `${path}.allocatedStorageGb`, 20, 65536);
  const backupRetentionDays = readInt(o.backupRetentionDays, `${path}.backupRetentionDays`, 1, 35);
  if (production && backupRetentionDays < 7) {
    throw new ConfigError(`${path}.backupRetentionDays`, backupRetentionDays, 'at least 7 in production');
  }
  return {
    instanceClass: readString(o.instanceClass, `${path}.instanceClass`, /^db\.[a-z0-9]+\.[a-z0-9]+$/, 'an RDS instance class such as "db.t4g.medium"'),
    // The major only: with auto minor upgrades a pinned minor becomes a refused downgrade after
    // the first upgrade, and AWS stops offering old minors for new instances.
    engineVersion: readString(
      o.engineVersion ?? '16',
      `${path}.engineVersion`,
      /^1[4-7]$/,
      'a Postgres major version from "14" to "17" (the minor is upgraded automatically)',
    ),
    allocatedStorageGb,
    maxAllocatedStorageGb: readInt(o.maxAllocatedStorageGb, `${path}.maxAllocatedStorageGb`, allocatedStorageGb, 65536),
    multiAz: readBoolean(o.multiAz, `${path}.multiAz`),
    backupRetentionDays,
    useProxy: readBoolean(o.useProxy, `${path}.useProxy`, false),
    history: parseHistory(o.history, `${path}.history`, production, topics),
  };
}

function parseCache(raw: unknown, path: string, production: boolean): CacheConfig {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['nodeType', 'engineVersion', 'replicas']);
  const replicas = readInt(o.replicas, `${path}.replicas`, 0, 5);
  if (production && replicas < 1) {
    throw new ConfigError(`${path}.replicas`, replicas, 'at least 1 in production (a replica in another zone for failover)');
  }
  return {
    nodeType: readString(o.nodeType, `${path}.nodeType`, /^cache\.[a-z0-9]+\.[a-z0-9]+$/, 'an ElastiCache node type such as "cache.t4g.small"'),
    engineVersion: readString(o.engineVersion ?? '7.1', `${path}.engineVersion`, /^[67]\.\d+$/, 'a Redis version 6.x or 7.x'),
    replicas,
  };
}

function parseSizing(raw: unknown, path: string): FunctionSizing {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['memoryMb', 'timeoutSeconds', 'reservedConcurrency']);
  return {
    memoryMb: readInt(o.memoryMb, `${path}.memoryMb`, 128, 10240),
    timeoutSeconds: readInt(o.timeoutSeconds, `${path}.timeoutSeconds`, 1, 840),
    reservedConcurrency: readInt(o.reservedConcurrency, `${path}.reservedConcurrency`, 1, 1000),
  };
}

function parseWorkers(raw: unknown, path: string, topics: Readonly<Record<TopicName, TopicConfig>>): WorkersConfig {
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, [
    'budgetTimeZone',
    'batchSize',
    'startingPosition',
    'kafkaSource',
    'functions',
    'logRetentionDays',
    'outboxSweepMinutes',
    'rankingTtlSeconds',
  ]);
  const source = readObject(o.kafkaSource ?? { kind: 'confluent' }, `${path}.kafkaSource`);
  const kafkaSource: WorkersConfig['kafkaSource'] =
    readOneOf(source.kind, `${path}.kafkaSource.kind`, ['confluent', 'msk'] as const) === 'msk'
      ? {
          kind: 'msk',
          clusterArn: readString(
            source.clusterArn,
            `${path}.kafkaSource.clusterArn`,
            /^arn:aws[a-z-]*:kafka:[a-z0-9-]+:\d{12}:cluster\/.+$/,
            'an MSK cluster ARN',
          ),
        }
      : { kind: 'confluent' };
  const f = readObject(o.functions, `${path}.functions`);
  rejectUnknownKeys(f, `${path}.functions`, WORKER_FUNCTIONS);
  const functions = Object.fromEntries(WORKER_FUNCTIONS.map((name) => [name, parseSizing(f[name], `${path}.functions.${name}`)])) as Record<
    WorkerFunctionName,
    FunctionSizing
  >;
  // Every Kafka-triggered function; the rankings topic is Flink's, its partitions its DDL's.
  const consumers: ReadonlyArray<[WorkerFunctionName, string, number]> = [
    ['clickBalance', 'ad-events', topics['ad-events'].partitions],
    ['compensation', 'compensation-events', topics['compensation-events'].partitions],
    ['rankingCache', RTB_RANKINGS_TOPIC, RTB_RANKINGS_PARTITIONS],
  ];
  for (const [fn, topic, partitions] of consumers) {
    const reserved = functions[fn].reservedConcurrency;
    if (reserved < partitions) {
      throw new ConfigError(
        `${path}.functions.${fn}.reservedConcurrency`,
        reserved,
        `at least ${partitions}, the partition count of ${topic} (fewer makes Lambda throttle its Kafka pollers)`,
      );
    }
  }
  return {
    budgetTimeZone: readTimeZone(o.budgetTimeZone, `${path}.budgetTimeZone`, 'Asia/Seoul'),
    batchSize: readInt(o.batchSize, `${path}.batchSize`, 1, 10000, 100),
    startingPosition: readOneOf(o.startingPosition, `${path}.startingPosition`, ['TRIM_HORIZON', 'LATEST'] as const, 'TRIM_HORIZON'),
    kafkaSource,
    functions,
    logRetentionDays: readOneOf(o.logRetentionDays, `${path}.logRetentionDays`, LOG_RETENTION_DAYS, 30),
    outboxSweepMinutes: readInt(o.outboxSweepMinutes, `${path}.outboxSweepMinutes`, 1, 60, 1),
    rankingTtlSeconds: readInt(o.rankingTtlSeconds, `${path}.rankingTtlSeconds`, 360, 86400, 900),
  };
}

/**
 * Parses and validates one environment file. Every section is checked even when an earlier
 * one failed, so a file with several mistakes reports all of them at once: one problem throws
 * its ConfigError (naming the field, the value and what is allowed), several throw
 * ConfigErrors listing each (a section that depends on a failed one is not checked).
 */
export function parseEnvironment(raw: unknown): EnvironmentConfig {
  const root = readObject(raw, 'environment');
  const name = readString(root.name, 'environment.name', NAME, 'lowercase letters, digits and "-", 2 to 15 characters, starting with a letter');
  const path = name;
  const errors: ConfigError[] = [];
  const check = <T>(parse: () => T): T | undefined => {
    try {
      return parse();
    } catch (error) {
      if (error instanceof ConfigErrors) errors.push(...error.errors);
      else if (error instanceof ConfigError) errors.push(error);
      else throw error;
      return undefined;
    }
  };
  check(() =>
    rejectUnknownKeys(root, path, [
      'name',
      'production',
      'confluent',
      'flink',
      'aws',
      'regionMismatchReason',
      'alerts',
      'stateBackend',
      'network',
      'database',
      'cache',
      'workers',
      'monitoring',
    ]),
  );
  const production = check(() => readBoolean(root.production, `${path}.production`));
  const confluent = check(() => parseConfluent(root.confluent, `${path}.confluent`));
  const aws = check(() => parseAws(root.aws, `${path}.aws`));
  const regionMismatchReason = check(() =>
    root.regionMismatchReason === undefined ? undefined : readString(root.regionMismatchReason, `${path}.regionMismatchReason`),
  );
  if (confluent && aws && regionMismatchReason === undefined && (confluent.cloud !== 'AWS' || confluent.region !== aws.region)) {
    errors.push(
      new ConfigError(
        `${path}.confluent.region`,
        `${confluent.cloud}/${confluent.region}`,
        `AWS/${aws.region} to match aws.region (the workers' latency budget assumes same-region Kafka); set regionMismatchReason to override`,
      ),
    );
  }
  const prod = production ?? false;
  const flink = check(() => parseFlinkConfig(root.flink, `${path}.flink`, prod));
  const alerts = aws ? check(() => parseAlerts(root.alerts, `${path}.alerts`, aws.region)) : undefined;
  const stateBackend = check(() => parseStateBackend(root.stateBackend, `${path}.stateBackend`, prod));
  const network = check(() => parseNetwork(root.network, `${path}.network`));
  const database = check(() => parseDatabase(root.database, `${path}.database`, prod, confluent?.topics));
  const cache = check(() => parseCache(root.cache, `${path}.cache`, prod));
  const workers = confluent ? check(() => parseWorkers(root.workers, `${path}.workers`, confluent.topics)) : undefined;
  const monitoring = workers
    ? check(() => parseMonitoringConfig(root.monitoring, `${path}.monitoring`, { outboxSweepMinutes: workers.outboxSweepMinutes }))
    : undefined;
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrors(errors);
  return {
    name,
    production: production!,
    confluent: confluent!,
    flink: flink!,
    aws: aws!,
    ...(regionMismatchReason === undefined ? {} : { regionMismatchReason }),
    alerts: alerts!,
    stateBackend: stateBackend!,
    network: network!,
    database: database!,
    cache: cache!,
    workers: workers!,
    monitoring: monitoring!,
  };
}
