import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Construct } from 'constructs';
import { TerraformOutput, Token } from 'cdktf';
import { RTB_RANKINGS_TOPIC, adEventContract, campaignEventContract, compensationEventContract } from '../contracts';
import { rankingHeartbeatPartitions, writesVersionedRankingRows } from '../config/flink';
import type { WorkerFunctionName } from '../config/schema';
import { createAwsProvider } from '../constructs/aws/aws-provider';
import type { StorageHandoff, StreamingHandoff } from '../constructs/aws/stack-inputs';
import { AlertChannel } from '../constructs/aws/alert-channel';
import { WorkerAlarms } from '../constructs/aws/worker-alarms';
import { WorkerFunction } from '../constructs/aws/worker-function';
import { KafkaTrigger, KafkaTriggerSource } from '../constructs/aws/kafka-trigger';
import { WorkerSchedule, rate } from '../constructs/aws/worker-schedule';
import { SchemaMigration } from '../constructs/aws/schema-migration';
import { FlinkStatusCheck } from '../constructs/aws/flink-status-check';
import { Reconciliation } from '../constructs/aws/reconciliation';
import { TriggerStatusCheck } from '../constructs/aws/trigger-status-check';
import { SilenceAlarms } from '../constructs/aws/silence-alarms';
import { MoneyDashboard } from '../constructs/aws/dashboard';
import { storageAlarmNames } from '../constructs/aws/storage-alarms';
import { continuousFlinkStatements } from './flink-statement-names';
import { assertBundlesFresh } from '../constructs/aws/bundle-manifest';
import { FUNCTION_DATABASE_ROLES } from '../constructs/aws/postgres-database';
import { EnvironmentStack } from './environment-stack';
import type { AwsStackProps } from './storage-stack';
import { WORKER_CONSUMER_GROUPS } from './streaming-stack';

/** Where `npm run bundle` writes the Lambda bundles. */
export const DEFAULT_BUNDLE_ROOT = join(__dirname, '..', 'build', 'lambdas');
/** The repository the default bundles are built from. */
const REPOSITORY_ROOT = join(__dirname, '..');
/** One bundle per function (`build/lambdas/<name>`). */
const BUNDLES = ['click-balance', 'compensation', 'ranking-cache', 'budget-reset', 'outbox-sweep', 'db-migrate'] as const;

/** Records a consumer group may lag before its alarm fires. */
const OFFSET_LAG_ALARM = 10_000;
/** Hours between ledger reconciliations (each reads the whole ledger in one read-only snapshot). */
const RECONCILE_EVERY_HOURS = 1;
/** Duplicate clicks per charged click (per hour) above which someone should look. */
const DUPLICATE_RATE_ALARM = 0.05;

/** Props of {@link WorkersStack}. */
export interface WorkersStackProps extends AwsStackProps {
  /**
   * Directory holding one bundle directory per function (`click-balance/index.js`, …).
   * @default DEFAULT_BUNDLE_ROOT - `build/lambdas`, made by `npm run bundle`
   */
  readonly bundleRoot?: string;
  /**
   * Repository the bundles were built from. Synth refuses any bundle whose recorded sources
   * (`manifest.json`) differ from these, so stale handler code is never packaged.
   * @default - the repository root when bundleRoot is the default; no check for any other bundleRoot (tests' stand-in bundles)
   */
  readonly bundleSources?: string;
  /** The storage stack (network, database, cache): read through cdktf cross-stack references. */
  readonly storage: StorageHandoff;
  /** The streaming stack (Kafka endpoint, key secrets, schema id): cross-stack references too. */
  readonly streaming: StreamingHandoff;
}

/**
 * The fast-changing AWS side of one environment: the worker functions, their Kafka triggers,
 * the schedules, the schema migration on deploy, and alerts. It takes typed references to the
 * storage and streaming stacks; cdktf wires them as cross-stack references, so the stack has
 * no input variable and `cdktf deploy 'adstream-<env>-*'` deploys it after both.
 */
export class WorkersStack extends EnvironmentStack {
  /** The alert channel. */
  public readonly alerts: AlertChannel;
  /** The functions, by config name. */
  public readonly functions: Readonly<Record<WorkerFunctionName, WorkerFunction>>;
  /** The Kafka triggers. */
  public readonly triggers: readonly KafkaTrigger[];

  constructor(scope: Construct, props: WorkersStackProps) {
    super(scope, 'workers', props);
    const { config } = props;
    const { workers } = config;
    const prefix = `adstream-${config.name}`;
    const bundleRoot = props.bundleRoot ?? DEFAULT_BUNDLE_ROOT;
    const bundleSources = props.bundleSources ?? (props.bundleRoot === undefined ? REPOSITORY_ROOT : undefined);
    if (bundleSources !== undefined && existsSync(bundleRoot)) assertBundlesFresh(bundleRoot, BUNDLES, bundleSources);
    const location = { region: config.aws.region, accountId: config.aws.accountId };
    createAwsProvider(this, { aws: config.aws, offlinePlan: props.offlinePlan });

    const { storage, streaming } = props;
    const slack = config.alerts.slack;
    const chatbotProvider = slack
      ? createAwsProvider(this, { aws: config.aws, offlinePlan: props.offlinePlan, alias: { name: 'chatbot', region: slack.apiRegion } })
      : undefined;
    this.alerts = new AlertChannel(this, 'alerts', { config: config.alerts, location, namePrefix: prefix, production: config.production, chatbotProvider });
    const alarms = new WorkerAlarms(this, 'alarms', { alerts: this.alerts, namePrefix: prefix });

    const fn = (id: string, name: WorkerFunctionName, description: string, environment: Record<string, string> = {}) =>
      new WorkerFunction(this, id, {
        functionName: `${prefix}-${id}`,
        description,
        bundleDirectory: join(bundleRoot, id),
        sizing: workers.functions[name],
        logRetentionDays: workers.logRetentionDays,
        network: storage.network,
        serviceName: id,
        environment: { BUDGET_TIME_ZONE: workers.budgetTimeZone, ...environment },
      });
    const clickBalance = fn('click-balance', 'clickBalance', 'Charges each click exactly once and enforces daily budgets.');
    const compensation = fn('compensation', 'compensation', 'Refunds duplicate clicks exactly once.');
    const rankingCache = fn('ranking-cache', 'rankingCache', 'Writes RTB rankings into Redis.', {
      RANKING_TTL_SECONDS: String(workers.rankingTtlSeconds),
      RANKING_ROWS_VERSIONED: String(writesVersionedRankingRows(config.flink)),
      RANKING_HEARTBEAT_PARTITIONS: String(rankingHeartbeatPartitions(config.flink)),
    });
    const { history } = config.database;
    const budgetReset = fn(
      'budget-reset',
      'budgetReset',
      'Opens each budget day once (hourly schedule; the first run of a day resumes budget-paused campaigns) and keeps the history partitions.',
      {
        LEDGER_RETENTION_DAYS: String(history.ledgerRetentionDays),
        LEDGER_PARTITIONS_AHEAD_DAYS: String(history.partitionsAheadDays),
        LEDGER_EXPIRED_PARTITIONS: history.expired,
      },
    );
    const outboxSweep = fn('outbox-sweep', 'outboxSweep', 'Publishes outbox rows that were not published after commit.');
    const dbMigrate = fn('db-migrate', 'dbMigrate', 'Applies db/migrations on deploy.', { MIGRATIONS_DIR: '/var/task/migrations' });
    this.functions = { clickBalance, compensation, rankingCache, budgetReset, outboxSweep, dbMigrate };

    // Each function connects as its own database role (grants in db/migrations); only
    // db-migrate uses the master user, and it sets the roles' passwords from their secrets.
    // The ranking cache's role may only record dead letters.
    const roles = FUNCTION_DATABASE_ROLES;
    clickBalance.connectTo(storage.database, roles.clickBalance);
    compensation.connectTo(storage.database, roles.compensation);
    rankingCache.connectTo(storage.database, roles.rankingCache);
    budgetReset.connectTo(storage.database, roles.budgetReset);
    outboxSweep.connectTo(storage.database, roles.outboxSweep);
    dbMigrate.connectTo(storage.database);
    const roleSecrets = Object.values(roles).map((role) => storage.database.roleSecretArns[role]);
    dbMigrate.setVariables({ DATABASE_ROLE_SECRET_ARNS: roleSecrets.join(',') });
    roleSecrets.forEach((arn, index) => dbMigrate.readsSecret(`DatabaseRole${index}`, arn));
    // Only the ones that touch prices, budgets or rankings get the cache.
    for (const worker of [clickBalance, compensation, rankingCache, budgetReset]) worker.connectToCache(storage.cache);
    // Outbox publishers: after each commit (the consumers, the reset) and from the sweep.
    for (const worker of [clickBalance, compensation, budgetReset, outboxSweep]) {
      this.alerts.grantPublish(worker);
      worker.setVariables({
        KAFKA_BOOTSTRAP_SERVERS: streaming.bootstrapServers,
        KAFKA_PRODUCER_SECRET_ARN: streaming.producerSecretArn,
        CAMPAIGN_EVENTS_TOPIC: campaignEventContract.topic,
        CAMPAIGN_EVENTS_SCHEMA_ID: Token.isUnresolved(streaming.campaignEventsSchemaId)
          ? Token.asString(streaming.campaignEventsSchemaId)
          : String(streaming.campaignEventsSchemaId),
      });
      worker.readsSecret('KafkaProducerKey', streaming.producerSecretArn);
      worker.readsSecret('KafkaProducerKeyStandby', streaming.standbyProducerSecretArn);
      worker.allowEgress('kafka', 9092, '0.0.0.0/0', 'Confluent Cloud brokers through the NAT');
    }

    const migration = new SchemaMigration(this, 'schema-migration', {
      migrator: dbMigrate,
      bundleDirectory: join(bundleRoot, 'db-migrate'),
      rerunOnSecrets: roleSecrets,
    });
    // The release waits for the migration: every alias moves to the new code only after it ran.
    for (const worker of [clickBalance, compensation, rankingCache, budgetReset, outboxSweep]) worker.releaseAfter(migration.invocation);

    const source: KafkaTriggerSource =
      workers.kafkaSource.kind === 'msk'
        ? { kind: 'msk', clusterArn: workers.kafkaSource.clusterArn }
        : { kind: 'confluent', bootstrapServers: streaming.bootstrapServers, credentialsSecretArn: streaming.consumerSecretArn };
    const trigger = (worker: WorkerFunction, topic: string, consumerGroupId: string) =>
      new KafkaTrigger(this, `${worker.node.id}-trigger`, {
        worker,
        topic,
        consumerGroupId,
        source,
        batchSize: workers.batchSize,
        startingPosition: workers.startingPosition,
        failureQueueName: `${prefix}-${worker.node.id}-discarded`,
        production: config.production,
        after: [migration.invocation],
      });
    const clickTrigger = trigger(clickBalance, adEventContract.topic, WORKER_CONSUMER_GROUPS.clickBalance);
    const compensationTrigger = trigger(compensation, compensationEventContract.topic, WORKER_CONSUMER_GROUPS.compensation);
    const rankingTrigger = trigger(rankingCache, RTB_RANKINGS_TOPIC, WORKER_CONSUMER_GROUPS.rankingCache);
    this.triggers = [clickTrigger, compensationTrigger, rankingTrigger];
    if (source.kind === 'confluent') {
      for (const worker of [clickBalance, compensation, rankingCache]) worker.readsSecret('KafkaConsumerKeyStandby', streaming.standbyConsumerSecretArn);
    }

    // Every hour: the first run of a budget day opens it and the others change nothing, so a
    // midnight the zone skips (Scheduler does not run a time DST removes) or a run that failed
    // through its retries is caught up within the hour.
    new WorkerSchedule(this, 'budget-reset-schedule', {
      worker: budgetReset,
      scheduleName: `${prefix}-budget-reset`,
      expression: 'cron(0 * * * ? *)',
      timeZone: workers.budgetTimeZone,
      description: 'Opens the new budget day at local midnight, or at the first hourly run after it that succeeds.',
      accountId: config.aws.accountId,
    });
    new WorkerSchedule(this, 'outbox-sweep-schedule', {
      worker: outboxSweep,
      scheduleName: `${prefix}-outbox-sweep`,
      expression: rate(workers.outboxSweepMinutes, 'minute'),
      description: 'Publishes outbox rows left unpublished after commit.',
      accountId: config.aws.accountId,
    });

    const flinkStatus = new FlinkStatusCheck(this, 'flink-status-check', {
      namePrefix: prefix,
      environmentName: config.name,
      bundleRoot,
      network: storage.network,
      logRetentionDays: workers.logRetentionDays,
      statements: continuousFlinkStatements(config),
      everyMinutes: config.monitoring.silence.flinkCheckMinutes,
      accountId: config.aws.accountId,
      production: config.production,
    });

    const triggerStatus = new TriggerStatusCheck(this, 'trigger-status-check', {
      namePrefix: prefix,
      bundleRoot,
      network: storage.network,
      logRetentionDays: workers.logRetentionDays,
      triggers: this.triggers,
      everyMinutes: config.monitoring.silence.triggerCheckMinutes,
      location,
    });

    // The ledger reconciliation, hourly (it reads the whole ledger in one snapshot, as a read-only role).
    const reconciliation = new Reconciliation(this, 'reconciliation', {
      namePrefix: prefix,
      bundleRoot,
      network: storage.network,
      database: storage.database,
      logRetentionDays: workers.logRetentionDays,
      everyHours: RECONCILE_EVERY_HOURS,
      target: this.alerts,
      accountId: config.aws.accountId,
    });
    reconciliation.worker.releaseAfter(migration.invocation);

    for (const worker of [clickBalance, compensation, rankingCache]) alarms.watchFunction(worker, 'kafka-consumer');
    for (const worker of [budgetReset, outboxSweep, flinkStatus.worker, triggerStatus.worker, reconciliation.worker]) alarms.watchFunction(worker, 'scheduled');
    alarms.watchFunction(dbMigrate, 'deploy');
    for (const t of this.triggers) alarms.watchTrigger(t, { offsetLag: OFFSET_LAG_ALARM });
    for (const worker of [clickBalance, compensation, rankingCache]) alarms.watchDeadLetters(worker);
    alarms.watchDuplicateRate(clickBalance, compensation, DUPLICATE_RATE_ALARM);
    if (rankingHeartbeatPartitions(config.flink) > 0) alarms.watchRankingHeartbeats(rankingCache);
    const silence = new SilenceAlarms(this, 'silence-alarms', {
      config,
      target: this.alerts,
      clickBalance,
      compensation,
      outboxSweep,
      triggers: this.triggers,
      flinkStatus,
      triggerStatus,
    });
    new MoneyDashboard(this, 'dashboard', {
      dashboardName: prefix,
      location,
      clickBalance,
      compensation,
      outboxSweep,
      flinkStatus: flinkStatus.worker,
      triggerStatus: triggerStatus.worker,
      functions: [...Object.values(this.functions), flinkStatus.worker, triggerStatus.worker, reconciliation.worker],
      triggers: this.triggers,
      flinkStatements: flinkStatus.statements.map((s) => s.statementName),
      pipelineAlarmNames: [...alarms.alarmNames, ...silence.alarmNames, ...reconciliation.alarmNames],
      statefulAlarmNames: storageAlarmNames(config),
    });

    new TerraformOutput(this, 'alerts_topic_arn', { value: this.alerts.topicArn });
    new TerraformOutput(this, 'migrations_digest', { value: migration.digest, description: 'sha256 of the migrations applied by this deploy.' });
    new TerraformOutput(this, 'discarded_batch_queues', { value: this.triggers.map((t) => t.failureQueueName) });
    new TerraformOutput(this, 'flink_status_secret_name', {
      value: flinkStatus.secretName,
      description: 'Secret the Flink status check reads; store its credentials once (docs/operations.md).',
    });
  }
}
