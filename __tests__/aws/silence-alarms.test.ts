// Types of the cdktf matchers that Testing.setupJest() registers.
import 'cdktf/lib/testing/adapters/jest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Testing } from 'cdktf';
import { CloudwatchDashboard } from '@cdktf/provider-aws/lib/cloudwatch-dashboard';
import { storageAlarmNames } from '../../constructs/aws/storage-alarms';
import { continuousFlinkStatements } from '../../stacks/flink-statement-names';
import { createFakeBundleRoot, testEnvironment } from './support/fixtures';
import { addAwsStacks } from './support/synth';

Testing.setupJest();

type Alarm = {
  alarm_name: string;
  alarm_description: string;
  metric_name?: string;
  dimensions?: Record<string, string>;
  statistic?: string;
  threshold: number;
  comparison_operator: string;
  treat_missing_data: string;
  evaluation_periods: number;
  metric_query?: Array<{ id: string; expression?: string; metric?: { metric_name: string; dimensions: Record<string, string>; period: number } }>;
  alarm_actions: string[];
};
type Synthesized = { resource: Record<string, Record<string, Record<string, unknown>>>; output: Record<string, { value: unknown }> };

const bundleRoot = createFakeBundleRoot();
const OPERATIONS = readFileSync(join(__dirname, '../../docs/operations.md'), 'utf8');

function synth(name: 'dev' | 'prod') {
  const config = testEnvironment(name);
  const { storage, workers } = addAwsStacks(Testing.app() as App, config, { bundleRoot });
  const workersJson = Testing.synth(workers, true);
  const storageJson = Testing.synth(storage, true);
  const parsed = JSON.parse(workersJson) as Synthesized;
  const alarms = Object.values(parsed.resource.aws_cloudwatch_metric_alarm) as Alarm[];
  const byName = new Map(alarms.map((a) => [a.alarm_name, a]));
  return { config, workers, workersJson, storageJson, parsed, alarms, byName };
}

describe.each(['dev', 'prod'] as const)('silence alarms and dashboard of %s', (name) => {
  const { config, workers, workersJson, storageJson, parsed, alarms, byName } = synth(name);
  const prefix = `adstream-${name}`;
  const alarm = (suffix: string) => {
    const found = byName.get(`${prefix}-${suffix}`);
    if (!found) throw new Error(`no alarm ${prefix}-${suffix}`);
    return found;
  };

  test('the workers stack passes every policy rule', () => {
    expect(workers.policy.violations).toEqual([]);
  });

  test('click charging stopped: records to charge arrive and none is charged, for the stalled window', () => {
    const a = alarm('click-charging-stopped');
    expect(a.evaluation_periods).toBe(config.monitoring.silence.stalledMinutes / 5);
    expect(a.metric_query!.find((q) => q.id === 'stopped')!.expression).toBe('IF(FILL(received, 0) - FILL(skipped, 0) > 0 AND FILL(charged, 0) == 0, 1, 0)');
    expect(a.metric_query!.filter((q) => q.metric).map((q) => [q.metric!.metric_name, q.metric!.dimensions.service])).toEqual([
      ['RecordsReceived', 'click-balance'],
      ['RecordsSkipped', 'click-balance'],
      ['ClicksCharged', 'click-balance'],
    ]);
  });

  test('no click traffic at all breaches on missing data where clicks must flow, and does not exist where they need not', () => {
    const quiet = byName.get(`${prefix}-click-traffic-stopped`);
    if (config.monitoring.silence.clickTrafficQuietMinutes === undefined) {
      expect(quiet).toBeUndefined();
      return;
    }
    expect(quiet).toMatchObject({
      metric_name: 'RecordsReceived',
      dimensions: { service: 'click-balance' },
      comparison_operator: 'LessThanThreshold',
      threshold: 1,
      treat_missing_data: 'breaching',
    });
    expect(quiet!.evaluation_periods).toBe(config.monitoring.silence.clickTrafficQuietMinutes / 5);
  });

  test('compensations stopped while clicks flow, judged per hour', () => {
    const a = alarm('compensations-stopped');
    expect(a.metric_query!.find((q) => q.id === 'stopped')!.expression).toBe(
      `IF(FILL(charged, 0) >= ${config.monitoring.silence.clicksPerHourExpectingDuplicates} AND FILL(received, 0) == 0, 1, 0)`,
    );
    expect(a.metric_query!.find((q) => q.id === 'received')!.metric).toMatchObject({
      metric_name: 'RecordsReceived',
      dimensions: { service: 'compensation' },
      period: 3600,
    });
  });

  test('each trigger: lagging but consuming nothing, a partition behind, and the recovery window', () => {
    for (const [fn, topic] of [
      ['click-balance', 'ad-events'],
      ['compensation', 'compensation-events'],
      ['ranking-cache', 'rtb-rankings-v2'],
    ] as const) {
      expect(alarm(`${fn}-not-consuming`).metric_query!.find((q) => q.id === 'lag')!.metric!.metric_name).toBe('OffsetLag');
      expect(alarm(`${fn}-record-age`)).toMatchObject({
        metric_name: 'OldestRecordAgeSeconds',
        dimensions: { service: fn },
        threshold: config.monitoring.recovery.recordAgeWarnMinutes * 60,
      });
      const retention = topic === 'rtb-rankings-v2' ? 7 * 24 * 3600 * 1000 : config.confluent.topics[topic].retentionMs;
      const window = alarm(`${fn}-recovery-window`);
      expect(window.threshold).toBe(Math.floor((retention * config.monitoring.recovery.recoveryWindowAlarmPercent) / 100 / 1000));
      expect(window.alarm_description).toContain(`${Math.round((retention / 3_600_000) * 10) / 10} h retention`);
    }
  });

  test("each trigger's mapping state (Enabled, no PROBLEM) is checked on a schedule, and silence breaches", () => {
    const mappings = Object.keys(parsed.resource.aws_lambda_event_source_mapping);
    for (const fn of ['click-balance', 'compensation', 'ranking-cache']) {
      expect(alarm(`${fn}-trigger-state`)).toMatchObject({
        metric_name: 'TriggerHealthy',
        dimensions: { service: 'trigger-status', trigger: fn },
        comparison_operator: 'LessThanThreshold',
        threshold: 1,
        treat_missing_data: 'breaching',
        evaluation_periods: 2,
      });
    }
    const checker = Object.values(parsed.resource.aws_lambda_function).find((f) => f.function_name === `${prefix}-trigger-status`) as {
      environment: { variables: Record<string, string> };
    };
    const pairs = checker.environment.variables.TRIGGER_MAPPINGS.split(',');
    expect(pairs).toHaveLength(3);
    for (const pair of pairs) expect(pair).toMatch(/^(click-balance|compensation|ranking-cache)=\$\{aws_lambda_event_source_mapping\.[^.]+\.uuid\}$/);
    const documents = (parsed as unknown as { data: { aws_iam_policy_document: Record<string, unknown> } }).data.aws_iam_policy_document;
    const grant = JSON.stringify(
      Object.entries(documents)
        .filter(([key]) => key.startsWith('trigger-status-check_trigger-status_access'))
        .map(([, doc]) => doc),
    );
    expect(grant).toContain('lambda:GetEventSourceMapping');
    for (const id of mappings) expect(grant).toContain(`event-source-mapping:\${aws_lambda_event_source_mapping.${id}.uuid}`);
  });

  test('every continuous Flink statement has an alarm that breaches when the check is silent', () => {
    const statements = continuousFlinkStatements(config);
    expect(statements.map((s) => s.pipeline)).toEqual(expect.arrayContaining(['duplicate-clicks', 'rtb-ranking']));
    for (const s of statements) {
      const a = alarms.find((x) => x.dimensions?.statement === s.statementName)!;
      expect(a).toMatchObject({
        metric_name: 'FlinkStatementRunning',
        dimensions: { service: 'flink-status' },
        comparison_operator: 'LessThanThreshold',
        threshold: 1,
        treat_missing_data: 'breaching',
      });
    }
    const duplicate = statements.find((s) => s.pipeline === 'duplicate-clicks')!;
    expect(alarms.find((x) => x.dimensions?.statement === duplicate.statementName)!.alarm_description).toMatch(/duplicate clicks stay charged/);
  });

  test('the Flink check runs on a schedule with the statement names and an empty secret for its key', () => {
    const fn = Object.values(parsed.resource.aws_lambda_function).find((f) => f.function_name === `${prefix}-flink-status`) as {
      environment: { variables: Record<string, string> };
    };
    expect(fn.environment.variables.FLINK_STATEMENTS).toBe(
      continuousFlinkStatements(config)
        .map((s) => s.statementName)
        .join(','),
    );
    expect(fn.environment.variables.FLINK_STATUS_SECRET_ARN).toMatch(/^\$\{aws_secretsmanager_secret\.flink-status-check_credentials_[A-Z0-9]+\.arn\}$/);
    const schedules = Object.values(parsed.resource.aws_scheduler_schedule).map((s) => [s.name, s.schedule_expression]);
    expect(schedules).toContainEqual([`${prefix}-flink-status`, `rate(${config.monitoring.silence.flinkCheckMinutes} minutes)`]);
    expect(Object.values(parsed.resource.aws_secretsmanager_secret_version ?? {})).toEqual([]);
    expect(parsed.output.flink_status_secret_name.value).toBe(`adstream/${name}/flink/status-reader`);
  });

  test('outbox: backlog age breaches when the sweep stops reporting; failed publishes alarm after two periods', () => {
    expect(alarm('outbox-backlog-age')).toMatchObject({
      metric_name: 'OutboxOldestUnpublishedSeconds',
      dimensions: { service: 'outbox-sweep' },
      threshold: config.monitoring.silence.outboxMaxAgeMinutes * 60,
      treat_missing_data: 'breaching',
    });
    expect(alarm('outbox-publish-failures')).toMatchObject({ metric_name: 'OutboxRowsFailing', evaluation_periods: 2 });
  });

  test("scheduled functions' error alarms do not talk about a blocked partition; the consumers' do", () => {
    for (const fn of ['budget-reset', 'outbox-sweep', 'flink-status', 'trigger-status', 'db-migrate'])
      expect(alarm(`${fn}-errors`).alarm_description).not.toMatch(/partition/);
    for (const fn of ['click-balance', 'compensation', 'ranking-cache']) expect(alarm(`${fn}-errors`).alarm_description).toMatch(/partition is blocked/);
  });

  test('every alarm text that names a runbook names one docs/operations.md has', () => {
    const anchors = new Set([...OPERATIONS.matchAll(/^#+ .*\{#([a-z0-9-]+)\}|<a id="([a-z0-9-]+)"><\/a>/gm)].map((m) => m[1] ?? m[2]));
    const texts = [
      ...alarms.map((a) => a.alarm_description),
      ...Object.values((JSON.parse(storageJson) as Synthesized).resource.aws_cloudwatch_metric_alarm).map((a) => a.alarm_description as string),
    ];
    const named = texts.flatMap((t) => [...t.matchAll(/docs\/operations\.md#([a-z0-9-]+)/g)].map((m) => m[1]));
    expect(named.length).toBeGreaterThan(30);
    expect([...new Set(named)].filter((anchor) => !anchors.has(anchor))).toEqual([]);
  });

  describe('dashboard', () => {
    const [dashboard] = Object.values(parsed.resource.aws_cloudwatch_dashboard) as Array<{ dashboard_name: string; dashboard_body: string }>;
    const body = JSON.parse(dashboard.dashboard_body) as {
      widgets: Array<{ type: string; x: number; y: number; width: number; height: number; properties: Record<string, unknown> }>;
    };
    const titled = (title: string) => body.widgets.find((w) => w.properties.title === title)!;
    const lines = (title: string) => JSON.stringify(titled(title).properties.metrics);

    test('one dashboard per environment, synthesized with the workers stack', () => {
      expect(workersJson).toHaveResourceWithProperties(CloudwatchDashboard, { dashboard_name: prefix });
    });

    test('shows the money flowing: charged, refunded, voided per minute, the duplicate rate, dead letters, budget pauses', () => {
      expect(titled('Clicks charged, refunded and voided per minute').properties).toMatchObject({ period: 60, stat: 'Sum' });
      expect(lines('Clicks charged, refunded and voided per minute')).toContain('"ClicksCharged","service","click-balance"');
      expect(lines('Clicks charged, refunded and voided per minute')).toContain('"ClicksRefunded","service","compensation"');
      expect(lines('Duplicate click rate (per hour)')).toContain('duplicates / charged');
      expect(lines('Dead-lettered records per minute')).toContain('"RecordsDeadLettered","service","ranking-cache"');
      expect(lines('Budget: campaigns paused by budget, outbox rows published')).toContain('CampaignsBudgetPaused');
    });

    test('shows lag and the oldest record per trigger, the outbox backlog, Flink, errors and duration', () => {
      expect(lines('Consumer lag per trigger (records)').match(/OffsetLag/g)).toHaveLength(3);
      expect(lines('Oldest unprocessed record per trigger (seconds)').match(/OldestRecordAgeSeconds/g)).toHaveLength(3);
      expect(lines('Outbox backlog')).toContain('OutboxOldestUnpublishedSeconds');
      expect(lines('Flink statements RUNNING (1) or not (0)').match(/FlinkStatementRunning/g)).toHaveLength(continuousFlinkStatements(config).length);
      expect(lines('Function errors').match(/"Errors"/g)).toHaveLength(9);
      expect(lines('Kafka triggers consuming (1) or not (0)').match(/TriggerHealthy/g)).toHaveLength(3);
      expect(titled('Function duration p99 (ms)').properties.stat).toBe('p99');
    });

    test('shows every alarm of both AWS stacks, and one graph per stateful-tier alarm', () => {
      const grids = body.widgets.filter((w) => w.type === 'alarm').flatMap((w) => w.properties.alarms as string[]);
      const arn = (alarmName: string) => `arn:aws:cloudwatch:${config.aws.region}:${config.aws.accountId}:alarm:${alarmName}`;
      expect(grids.sort()).toEqual([...alarms.map((a) => arn(a.alarm_name)), ...storageAlarmNames(config).map(arn)].sort());
      const graphs = body.widgets
        .filter((w) => (w.properties.annotations as { alarms?: string[] } | undefined)?.alarms)
        .map((w) => (w.properties.annotations as { alarms: string[] }).alarms[0]);
      expect(graphs).toEqual(storageAlarmNames(config).map(arn));
      const storageAlarms = Object.values((JSON.parse(storageJson) as Synthesized).resource.aws_cloudwatch_metric_alarm).map((a) => a.alarm_name);
      expect(storageAlarms.sort()).toEqual(storageAlarmNames(config).sort());
    });

    test('widgets sit on the 24-column grid without overlapping', () => {
      const cells = new Set<string>();
      for (const w of body.widgets) {
        expect(w.x + w.width).toBeLessThanOrEqual(24);
        for (let dx = 0; dx < w.width; dx++)
          for (let dy = 0; dy < w.height; dy++) {
            const cell = `${w.x + dx},${w.y + dy}`;
            expect(cells.has(cell)).toBe(false);
            cells.add(cell);
          }
      }
    });
  });
});
