// Types of the cdktf matchers that Testing.setupJest() registers.
import 'cdktf/lib/testing/adapters/jest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Testing, TerraformStack } from 'cdktf';
import { LambdaFunction } from '@cdktf/provider-aws/lib/lambda-function';
import { LambdaEventSourceMapping } from '@cdktf/provider-aws/lib/lambda-event-source-mapping';
import { LambdaInvocation } from '@cdktf/provider-aws/lib/lambda-invocation';
import { SchedulerSchedule } from '@cdktf/provider-aws/lib/scheduler-schedule';
import { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { SnsTopicSubscription } from '@cdktf/provider-aws/lib/sns-topic-subscription';
import { ChatbotSlackChannelConfiguration } from '@cdktf/provider-aws/lib/chatbot-slack-channel-configuration';
import { WorkersStack } from '../../stacks/workers-stack';
import { migrationsDigest } from '../../constructs/aws/schema-migration';
import { MissingBundleError } from '../../constructs/aws/errors';
import { KafkaTrigger } from '../../constructs/aws/kafka-trigger';
import { WorkerFunction } from '../../constructs/aws/worker-function';
import { parseWorkerEnv } from '../../lambdas/shared/env';
import { parseRankingRowsVersioned } from '../../lambdas/ranking-cache/ranking-cache';
import { rankingHeartbeatPartitions } from '../../config/flink';
import { FIRST_VERSIONED_RANKING_STATEMENT, RTB_RANKINGS_PARTITIONS, RTB_RANKINGS_TOPIC } from '../../contracts';
import { createFakeBundleRoot, fakeHandoffs, testEnvironment } from './support/fixtures';

Testing.setupJest();

type Block = Record<string, unknown>;
type Synthesized = { resource: Record<string, Record<string, Block>>; data: Record<string, Record<string, Block>>; variable: Record<string, Block> };

const bundleRoot = createFakeBundleRoot();

function synthWorkers(name: 'dev' | 'prod', overrides = {}) {
  const config = testEnvironment(name, overrides);
  const stack = new WorkersStack(Testing.app(), { config, ...fakeHandoffs(config), bundleRoot });
  const json = Testing.synth(stack, true);
  return { stack, json, parsed: JSON.parse(json) as Synthesized };
}

function functionNamed(parsed: Synthesized, name: string): Block {
  const fn = Object.values(parsed.resource.aws_lambda_function).find((f) => f.function_name === name);
  if (!fn) throw new Error(`no function ${name}`);
  return fn;
}

function policyOf(parsed: Synthesized, id: string): Array<{ sid: string; actions: string[]; resources: string[] }> {
  const [, document] = Object.entries(parsed.data.aws_iam_policy_document).find(([key]) => key.startsWith(`${id}_access_`))!;
  return document.statement as Array<{ sid: string; actions: string[]; resources: string[] }>;
}

/** Bucket (= partition) count of the Flink CREATE TABLE in flink-sql/ that creates `table`. */
function bucketsOfFlinkTable(table: string): number {
  const root = join(__dirname, '..', '..', 'flink-sql');
  const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.sql'));
  const counts = files
    .map((file) => readFileSync(join(root, file), 'utf8'))
    .filter((sql) => sql.includes(`CREATE TABLE \`${table}\``))
    .map((sql) => Number(/INTO\s+(\d+)\s+BUCKETS/i.exec(sql)?.[1]));
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n))) throw new Error(`no CREATE TABLE with a bucket count for ${table} under flink-sql/`);
  return Math.max(...counts);
}

describe('WorkersStack', () => {
  describe.each(['dev', 'prod'] as const)('%s', (name) => {
    const config = testEnvironment(name);
    const { storage, streaming } = fakeHandoffs(config);
    const prefix = `adstream-${name}`;
    const { stack, json, parsed } = synthWorkers(name);

    test('matches the reviewed HCL', () => {
      expect(Testing.synthHcl(stack)).toMatchSnapshot();
    });

    test('passes every policy rule', () => {
      expect(stack.policy.violations).toEqual([]);
    });

    test('each worker runs Node.js 22 with its configured memory, timeout and reserved concurrency', () => {
      const sizes = config.workers.functions;
      const expected: Array<[string, keyof typeof sizes]> = [
        ['click-balance', 'clickBalance'],
        ['compensation', 'compensation'],
        ['ranking-cache', 'rankingCache'],
        ['budget-reset', 'budgetReset'],
        ['outbox-sweep', 'outboxSweep'],
        ['db-migrate', 'dbMigrate'],
      ];
      for (const [id, key] of expected) {
        expect(json).toHaveResourceWithProperties(LambdaFunction, {
          function_name: `${prefix}-${id}`,
          runtime: 'nodejs22.x',
          handler: 'index.handler',
          memory_size: sizes[key].memoryMb,
          timeout: sizes[key].timeoutSeconds,
          reserved_concurrent_executions: sizes[key].reservedConcurrency,
        });
      }
    });

    test('the environment carries ARNs and hosts only, in the names lambdas/shared/env.ts reads', () => {
      const variables = functionNamed(parsed, `${prefix}-click-balance`).environment as { variables: Record<string, string> };
      expect(variables.variables).toMatchObject({
        DATABASE_SECRET_ARN: storage.database.roleSecretArns.adstream_click_balance,
        DATABASE_HOST: storage.database.host,
        DATABASE_PORT: '5432',
        DATABASE_NAME: 'adstream',
        REDIS_HOST: storage.cache.host,
        REDIS_PORT: '6379',
        REDIS_AUTH_SECRET_ARN: storage.cache.authTokenSecretArn,
        BUDGET_TIME_ZONE: config.workers.budgetTimeZone,
        KAFKA_BOOTSTRAP_SERVERS: streaming.bootstrapServers,
        KAFKA_PRODUCER_SECRET_ARN: streaming.producerSecretArn,
        CAMPAIGN_EVENTS_SCHEMA_ID: '100003',
        CAMPAIGN_EVENTS_TOPIC: 'campaign-events',
        NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
        POWERTOOLS_SERVICE_NAME: 'click-balance',
        POWERTOOLS_METRICS_NAMESPACE: 'adstream',
      });
      expect(variables.variables.ALERTS_TOPIC_ARN).toMatch(/^\$\{aws_sns_topic\./);
      // The handlers' own parser accepts the deployed environment (with variables filled in).
      const resolved = (key: string, value: string): string => {
        if (!value.startsWith('${')) return value;
        if (key.endsWith('_PORT')) return '5432';
        if (key.endsWith('_ARN')) return 'arn:aws:secretsmanager:ap-northeast-2:111111111111:secret:x';
        if (key === 'CAMPAIGN_EVENTS_SCHEMA_ID') return '100003';
        return 'host.example:9092';
      };
      const filled = Object.fromEntries(Object.entries(variables.variables).map(([key, value]) => [key, resolved(key, value)]));
      const env = parseWorkerEnv(filled);
      expect(env.database.kind).toBe('secret');
      expect(env.redis?.kind).toBe('tls');
      expect(env.kafkaProducer?.secretArn).toBeDefined();
      expect(env.campaignEventsSchemaId).toBe(100003);
    });

    test('the ranking cache gets its TTL and no producer; db-migrate gets its migrations directory', () => {
      const ranking = (functionNamed(parsed, `${prefix}-ranking-cache`).environment as { variables: Record<string, string> }).variables;
      expect(ranking.RANKING_TTL_SECONDS).toBe(String(config.workers.rankingTtlSeconds));
      // The deployed rtb-ranking (v4) writes as_of on every settled row: the worker takes a row without one for an intermediate.
      expect(config.flink.pipelines['rtb-ranking'].version).toBeGreaterThanOrEqual(FIRST_VERSIONED_RANKING_STATEMENT);
      expect(parseRankingRowsVersioned(ranking)).toBe(true);
      expect(ranking.KAFKA_PRODUCER_SECRET_ARN).toBeUndefined();
      const migrate = (functionNamed(parsed, `${prefix}-db-migrate`).environment as { variables: Record<string, string> }).variables;
      expect(migrate.MIGRATIONS_DIR).toBe('/var/task/migrations');
      expect(migrate.DATABASE_SECRET_ARN).toBe(storage.database.credentialsSecretArn);
      expect(migrate.DATABASE_ROLE_SECRET_ARNS.split(',').sort()).toEqual(Object.values(storage.database.roleSecretArns).sort());
    });

    test('roles read only their own secrets', () => {
      const secretsRead = (id: string) =>
        policyOf(parsed, id)
          .filter((s) => s.actions.includes('secretsmanager:GetSecretValue'))
          .flatMap((s) => s.resources)
          .sort();
      expect(secretsRead('click-balance')).toEqual(
        [
          storage.database.roleSecretArns.adstream_click_balance,
          storage.cache.authTokenSecretArn,
          streaming.consumerSecretArn,
          streaming.standbyConsumerSecretArn,
          streaming.producerSecretArn,
          streaming.standbyProducerSecretArn,
        ].sort(),
      );
      expect(secretsRead('ranking-cache')).toEqual(
        [
          storage.database.roleSecretArns.adstream_ranking_cache,
          storage.cache.authTokenSecretArn,
          streaming.consumerSecretArn,
          streaming.standbyConsumerSecretArn,
        ].sort(),
      );
      // db-migrate alone uses the master user, and reads the role secrets to set their passwords.
      expect(secretsRead('db-migrate')).toEqual([storage.database.credentialsSecretArn, ...Object.values(storage.database.roleSecretArns)].sort());
      expect(secretsRead('outbox-sweep')).toEqual(
        [storage.database.roleSecretArns.adstream_outbox_sweep, streaming.producerSecretArn, streaming.standbyProducerSecretArn].sort(),
      );
      for (const id of ['click-balance', 'compensation', 'ranking-cache', 'budget-reset', 'outbox-sweep'])
        expect(secretsRead(id)).not.toContain(storage.database.credentialsSecretArn);
      for (const id of ['click-balance', 'compensation', 'ranking-cache', 'budget-reset', 'outbox-sweep', 'db-migrate']) {
        for (const statement of policyOf(parsed, id)) {
          if (statement.resources.includes('*')) expect(statement.actions.every((a) => a.startsWith('ec2:'))).toBe(true);
        }
      }
    });

    test('one Confluent trigger per topic: bare bootstrap, BASIC_AUTH consumer secret, own group, TRIM_HORIZON, SQS on failure', () => {
      const groups: Array<[string, string, string]> = [
        ['click-balance', 'ad-events', 'click-balance-processor'],
        ['compensation', 'compensation-events', 'compensation-processor'],
        ['ranking-cache', 'rtb-rankings-v2', 'ranking-cache-writer'],
      ];
      for (const [id, topic, group] of groups) {
        expect(json).toHaveResourceWithProperties(LambdaEventSourceMapping, {
          topics: [topic],
          batch_size: config.workers.batchSize,
          starting_position: 'TRIM_HORIZON',
          self_managed_event_source: { endpoints: { KAFKA_BOOTSTRAP_SERVERS: streaming.bootstrapServers } },
          source_access_configuration: [{ type: 'BASIC_AUTH', uri: streaming.consumerSecretArn }],
          self_managed_kafka_event_source_config: { consumer_group_id: group },
        });
        const mapping = Object.values(parsed.resource.aws_lambda_event_source_mapping).find((m) => JSON.stringify(m.topics) === JSON.stringify([topic]))!;
        expect(JSON.stringify(mapping.destination_config)).toMatch(new RegExp(`aws_sqs_queue\\.${id}-trigger_failures_[^.]+\\.arn`));
        // Records never flow before the schema migration ran.
        expect(mapping.depends_on).toEqual(expect.arrayContaining([expect.stringMatching(/^aws_lambda_invocation\./)]));
      }
    });

    test('each Kafka-triggered function may run one batch per partition of its topic at once (reserved concurrency ≥ partitions), the Flink-created rankings topic included', () => {
      // Partitions of each trigger's topic: the config's topics, and for the rankings the
      // bucket count of the CREATE TABLE that made the topic (Flink creates it, not Terraform).
      const partitions = (topic: string): number => {
        const configured = config.confluent.topics[topic as keyof typeof config.confluent.topics];
        if (configured) return configured.partitions;
        return bucketsOfFlinkTable(topic);
      };
      const checked = Object.values(parsed.resource.aws_lambda_event_source_mapping).map((mapping) => {
        const [topic] = mapping.topics as string[];
        const fn = Object.values(parsed.resource.aws_lambda_function).find((f) =>
          String(mapping.function_name).includes(`aws_lambda_alias.${String(f.function_name).replace(`${prefix}-`, '')}_live_`),
        )!;
        return { topic, function: fn.function_name, reserved: fn.reserved_concurrent_executions as number, partitions: partitions(topic) };
      });
      // The schema checks the ranking cache against this constant: it must be the DDL's count.
      expect(bucketsOfFlinkTable(RTB_RANKINGS_TOPIC)).toBe(RTB_RANKINGS_PARTITIONS);
      expect(checked.map((c) => c.topic).sort()).toEqual(['ad-events', 'compensation-events', RTB_RANKINGS_TOPIC].sort());
      for (const c of checked) expect({ ...c, enough: c.reserved >= c.partitions }).toEqual({ ...c, enough: true });
    });

    test('new code goes live only after its migration ran: triggers and schedules invoke the live alias, which waits for the migration', () => {
      const aliases = Object.values(parsed.resource.aws_lambda_alias);
      expect(aliases).toHaveLength(9);
      for (const fn of Object.values(parsed.resource.aws_lambda_function)) expect(fn.publish).toBe(true);
      const waiting = aliases.filter((a) => JSON.stringify(a.depends_on ?? []).includes('aws_lambda_invocation.schema-migration_run_'));
      expect(waiting.map((a) => String(a.function_name)).sort()).toEqual(
        ['budget-reset', 'click-balance', 'compensation', 'outbox-sweep', 'ranking-cache', 'reconciliation_reconcile']
          .map((id) => expect.stringContaining(`aws_lambda_function.${id}_function_`))
          .sort(() => 0),
      );
      for (const alias of aliases) expect(alias.function_version).toMatch(/^\$\{aws_lambda_function\.[^.]+\.version\}$/);
      for (const mapping of Object.values(parsed.resource.aws_lambda_event_source_mapping))
        expect(mapping.function_name).toMatch(/^\$\{aws_lambda_alias\.[^.]+_live_[^.]+\.arn\}$/);
      for (const schedule of Object.values(parsed.resource.aws_scheduler_schedule)) {
        expect((schedule.target as { arn: string }).arn).toMatch(/^\$\{aws_lambda_alias\.[^.]+_live_[^.]+\.arn\}$/);
      }
    });

    test('the migration runs on deploy, keyed by the digest of the bundled SQL files', () => {
      const { digest } = migrationsDigest(join(bundleRoot, 'db-migrate', 'migrations'));
      expect(json).toHaveResourceWithProperties(LambdaInvocation, { triggers: expect.objectContaining({ migrations: digest }) });
      // A replaced role secret (a new password) re-runs db-migrate, which sets it on the role.
      const [invocation] = Object.values(parsed.resource.aws_lambda_invocation);
      for (const arn of Object.values(fakeHandoffs(config).storage.database.roleSecretArns))
        expect((invocation.triggers as { roleSecrets: string }).roleSecrets).toContain(arn);
    });

    test('budget reset every hour of the budget zone and the outbox sweep, each role invoking only its function', () => {
      // The first run of a budget day opens it, the others change nothing: a midnight the zone
      // skips (DST starting at 00:00, which Scheduler does not run) or a run that failed through
      // its retries is caught up within the hour instead of leaving the day unopened.
      expect(json).toHaveResourceWithProperties(SchedulerSchedule, {
        name: `${prefix}-budget-reset`,
        schedule_expression: 'cron(0 * * * ? *)',
        schedule_expression_timezone: config.workers.budgetTimeZone,
        flexible_time_window: { mode: 'OFF' },
      });
      expect(json).toHaveResourceWithProperties(SchedulerSchedule, { name: `${prefix}-outbox-sweep`, schedule_expression: 'rate(1 minute)' });
      const scheduleDocs = Object.entries(parsed.data.aws_iam_policy_document).filter(([key]) => /-schedule_access_/.test(key));
      expect(scheduleDocs).toHaveLength(2);
      for (const [key, document] of scheduleDocs) {
        const id = key.startsWith('budget-reset') ? 'budget-reset' : 'outbox-sweep';
        expect(document.statement).toEqual([
          expect.objectContaining({
            actions: ['lambda:InvokeFunction'],
            resources: [expect.stringMatching(new RegExp(`^\\$\\{aws_lambda_alias\\.${id}_live_[^.]+\\.arn\\}$`))],
          }),
        ]);
      }
    });

    test('alarms: errors and throttles per function, offset lag and discarded batches per trigger, dead letters, duplicate rate', () => {
      const alarms = Object.values(parsed.resource.aws_cloudwatch_metric_alarm);
      const count = (metric: string) => alarms.filter((a) => a.metric_name === metric).length;
      // The six workers, the Flink status check, the trigger status check and the reconciliation.
      expect(count('Errors')).toBe(9);
      expect(count('Throttles')).toBe(9);
      expect(count('OffsetLag')).toBe(3);
      expect(count('ApproximateNumberOfMessagesVisible')).toBe(3);
      expect(json).toHaveResourceWithProperties(CloudwatchMetricAlarm, {
        namespace: 'adstream',
        metric_name: 'RecordsDeadLettered',
        dimensions: { service: 'click-balance' },
      });
      const rate = alarms.find((a) => a.alarm_name === `${prefix}-duplicate-click-rate`)!;
      expect(JSON.stringify(rate.metric_query)).toContain('DuplicateClicks');
      expect(JSON.stringify(rate.metric_query)).toContain('ClicksCharged');
      for (const alarm of alarms) expect(alarm.alarm_actions).toEqual([expect.stringMatching(/^\$\{aws_sns_topic\.alerts_topic_/)]);
    });

    test('an alarm when the reconciliation takes half its function timeout, before the growing ledger makes it fail', () => {
      // Every run reads the whole ledger (docs/operations.md, Known gaps): its time grows with the
      // rows attached until the run is cut off and the drift alarm can only say "did not run".
      const alarm = Object.values(parsed.resource.aws_cloudwatch_metric_alarm).find((a) => a.alarm_name === `${prefix}-reconciliation-slow`);
      expect(alarm).toMatchObject({
        namespace: 'adstream',
        metric_name: 'ReconciliationSeconds',
        dimensions: { service: 'reconcile' },
        statistic: 'Maximum',
        threshold: 150,
        comparison_operator: 'GreaterThanThreshold',
        treat_missing_data: 'notBreaching',
      });
      expect(alarm!.alarm_description).toContain('docs/operations.md#reconciliation-slow');
    });

    test('an alarm when a partition of rtb-rankings-v2 has no heartbeat, where the ranking writes one per partition', () => {
      // Freshness follows the oldest partition (rtb-ranking v5): a partition none of the 64
      // heartbeat keys reaches keeps the freshness key unset, so the bidder reads every ranking stale.
      const alarm = Object.values(parsed.resource.aws_cloudwatch_metric_alarm).find((a) => a.alarm_name === `${prefix}-ranking-heartbeat-partitions-missing`);
      if (rankingHeartbeatPartitions(config.flink) === 0) {
        expect(alarm).toBeUndefined();
        return;
      }
      expect(alarm).toMatchObject({
        namespace: 'adstream',
        metric_name: 'RankingHeartbeatPartitionsMissing',
        dimensions: { service: 'ranking-cache' },
        statistic: 'Maximum',
        threshold: 0,
        comparison_operator: 'GreaterThanThreshold',
        evaluation_periods: 3,
        treat_missing_data: 'notBreaching',
      });
      expect(alarm!.alarm_description).toContain('docs/operations.md#failed-flink-statement');
    });

    test('every configured e-mail address is subscribed to the KMS-encrypted alerts topic', () => {
      for (const email of config.alerts.emails) {
        expect(json).toHaveResourceWithProperties(SnsTopicSubscription, { protocol: 'email', endpoint: email });
      }
      expect(json).not.toHaveResource(ChatbotSlackChannelConfiguration);
    });

    test('without the offline opt-in the provider pins the account and skips no AWS check', () => {
      const provider = JSON.parse(json).provider.aws[0] as Record<string, unknown>;
      expect(provider.allowed_account_ids).toEqual([config.aws.accountId]);
      expect(Object.keys(provider).filter((key) => key.startsWith('skip_') || key.endsWith('_key'))).toEqual([]);
    });

    test('has no input variable: everything comes from config and the other stacks', () => {
      expect(parsed.variable ?? {}).toEqual({});
    });
  });

  test('Slack through AWS Chatbot when alerts.slack is set', () => {
    const base = testEnvironment('dev');
    const { json } = synthWorkers('dev', { alerts: { ...base.alerts, slack: { workspaceId: 'T0123ABCD', channelId: 'C0123ABCD', apiRegion: 'us-east-2' } } });
    expect(json).toHaveResourceWithProperties(ChatbotSlackChannelConfiguration, {
      slack_team_id: 'T0123ABCD',
      slack_channel_id: 'C0123ABCD',
      provider: 'aws.chatbot',
    });
    // The Chatbot API runs in four regions only: the configuration is created through a provider there.
    const providers = JSON.parse(json).provider.aws as Array<{ alias?: string; region: string }>;
    expect(providers.find((p) => p.alias === 'chatbot')?.region).toBe('us-east-2');
  });

  test('MSK as the source: event_source_arn and an MSK consumer group, no BASIC_AUTH', () => {
    const base = testEnvironment('dev');
    const clusterArn = 'arn:aws:kafka:ap-northeast-2:111111111111:cluster/adstream/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-1';
    const { json, parsed } = synthWorkers('dev', { workers: { ...base.workers, kafkaSource: { kind: 'msk', clusterArn } } });
    expect(json).toHaveResourceWithProperties(LambdaEventSourceMapping, {
      event_source_arn: clusterArn,
      amazon_managed_kafka_event_source_config: { consumer_group_id: 'click-balance-processor' },
    });
    expect(JSON.stringify(parsed.resource.aws_lambda_event_source_mapping)).not.toContain('BASIC_AUTH');
  });

  test('HTTPS egress goes to the VPC endpoints only, except the two status checks whose APIs have no endpoint; a referenced VPC (endpoints unknown) keeps it open, with a reason', () => {
    const egress443 = (parsed: Synthesized) => Object.values(parsed.resource.aws_vpc_security_group_egress_rule).filter((r) => r.from_port === 443);
    const { parsed } = synthWorkers('dev');
    const toEndpoints = egress443(parsed).filter((r) => r.cidr_ipv4 === undefined);
    expect(toEndpoints).toHaveLength(9);
    for (const rule of toEndpoints) expect(rule).toMatchObject({ referenced_security_group_id: 'sg-0123456789abcdef2' });
    const throughNat = egress443(parsed).filter((r) => r.cidr_ipv4 !== undefined);
    expect(throughNat.map((r) => String(r.security_group_id)).sort()).toEqual([
      expect.stringContaining('aws_security_group.flink-status-check_'),
      expect.stringContaining('aws_security_group.trigger-status-check_'),
    ]);
    for (const rule of throughNat)
      expect(rule).toMatchObject({ cidr_ipv4: '0.0.0.0/0', description: expect.stringMatching(/(Flink REST|Lambda) API through the NAT/) });

    const config = testEnvironment('dev');
    const handoffs = fakeHandoffs(config);
    const referenced = { ...handoffs.storage, network: { vpcId: handoffs.storage.network.vpcId, privateSubnetIds: handoffs.storage.network.privateSubnetIds } };
    const stack = new WorkersStack(Testing.app(), { config, storage: referenced, streaming: handoffs.streaming, bundleRoot });
    const open = egress443(JSON.parse(Testing.synth(stack)) as Synthesized);
    expect(open).toHaveLength(9);
    for (const rule of open) expect(rule).toMatchObject({ cidr_ipv4: '0.0.0.0/0', description: expect.stringContaining('referenced VPC') });
  });

  test('LATEST is possible but only when configured', () => {
    const base = testEnvironment('dev');
    const { json } = synthWorkers('dev', { workers: { ...base.workers, startingPosition: 'LATEST' } });
    expect(json).toHaveResourceWithProperties(LambdaEventSourceMapping, { starting_position: 'LATEST' });
  });

  test('fails when a bundle is missing, telling to run npm run bundle', () => {
    const empty = mkdtempSync(join(tmpdir(), 'adstream-no-bundles-'));
    expect(() => new WorkersStack(Testing.app(), { config: testEnvironment('dev'), ...fakeHandoffs(testEnvironment('dev')), bundleRoot: empty })).toThrow(
      MissingBundleError,
    );
    expect(() => new WorkersStack(Testing.app(), { config: testEnvironment('dev'), ...fakeHandoffs(testEnvironment('dev')), bundleRoot: empty })).toThrow(
      /click-balance.*npm run bundle/,
    );
    rmSync(empty, { recursive: true, force: true });
  });

  test('fails when the db-migrate bundle carries no migrations', () => {
    const root = createFakeBundleRoot();
    rmSync(join(root, 'db-migrate', 'migrations'), { recursive: true });
    expect(() => new WorkersStack(Testing.app(), { config: testEnvironment('dev'), ...fakeHandoffs(testEnvironment('dev')), bundleRoot: root })).toThrow(
      /db-migrate.*migrations\/\*\.sql.*npm run bundle/,
    );
  });

  test('the migration digest changes when a migration changes', () => {
    const root = createFakeBundleRoot();
    const dir = join(root, 'db-migrate', 'migrations');
    const before = migrationsDigest(dir).digest;
    writeFileSync(join(dir, '0002_more.sql'), 'alter table fake_marker add column x int;\n');
    expect(migrationsDigest(dir).digest).not.toBe(before);
  });

  describe('KafkaTrigger validation', () => {
    const worker = (timeoutSeconds = 60) => {
      const stack = new TerraformStack(new App(), 'trigger-test');
      const fn = new WorkerFunction(stack, 'fn', {
        functionName: 'adstream-test-fn',
        description: 'test',
        bundleDirectory: join(bundleRoot, 'click-balance'),
        sizing: { memoryMb: 256, timeoutSeconds, reservedConcurrency: 1 },
        logRetentionDays: 7,
        network: { vpcId: 'vpc-0abc12345', privateSubnetIds: ['subnet-0abc12345'] },
        serviceName: 'test',
      });
      return { stack, fn };
    };
    const source = {
      kind: 'confluent' as const,
      bootstrapServers: 'pkc-1.example:9092',
      credentialsSecretArn: 'arn:aws:secretsmanager:ap-northeast-2:111111111111:secret:x',
    };
    const base = { topic: 'ad-events', consumerGroupId: 'click-balance-processor', source, failureQueueName: 'q', production: false };

    test('fails on a bootstrap server with a scheme', () => {
      const { stack, fn } = worker();
      expect(() => new KafkaTrigger(stack, 't', { ...base, worker: fn, source: { ...source, bootstrapServers: 'SASL_SSL://pkc-1.example:9092' } })).toThrow(
        /has a scheme.*strip "SASL_SSL:\/\/"/,
      );
    });

    test('fails on a batch size over 10 000', () => {
      const { stack, fn } = worker();
      expect(() => new KafkaTrigger(stack, 't', { ...base, worker: fn, batchSize: 10_001 })).toThrow(/batchSize 10001 is out of range/);
    });

    test('fails on a function timeout over 14 minutes', () => {
      const { stack, fn } = worker(900);
      expect(() => new KafkaTrigger(stack, 't', { ...base, worker: fn })).toThrow(/timeout 900s exceeds the 840s/);
    });

    test('fails on an invalid MSK cluster ARN', () => {
      const { stack, fn } = worker();
      expect(() => new KafkaTrigger(stack, 't', { ...base, worker: fn, source: { kind: 'msk', clusterArn: 'arn:aws:kafka:x' } })).toThrow(
        /is not an MSK cluster ARN/,
      );
    });
  });
});
