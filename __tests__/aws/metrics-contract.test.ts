import { Testing } from 'cdktf';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { WORKER_METRICS } from '../../constructs/aws/worker-alarms';
import { WORKER_METRICS_NAMESPACE } from '../../constructs/aws/worker-function';
import { METRICS_NAMESPACE, createObservability, emptySummary, reportInvocation, SUMMARY_METRICS, SummaryCounter } from '../../lambdas/shared/observability';
import { BUDGET_RESET_HANDLER, BUDGET_RESET_METRICS } from '../../lambdas/budget-reset/resume-campaigns';
import { CLICK_BALANCE_HANDLER, CLICK_BALANCE_METRICS } from '../../lambdas/click-balance/charge-clicks';
import { COMPENSATION_HANDLER, COMPENSATION_METRICS } from '../../lambdas/compensation/refund-duplicates';
import { DB_MIGRATE_HANDLER } from '../../lambdas/db-migrate/run-migrations';
import { OUTBOX_SWEEP_HANDLER, OUTBOX_SWEEP_METRICS } from '../../lambdas/outbox-sweep/sweep-outbox';
import { RANKING_CACHE_HANDLER, RANKING_CACHE_METRICS, RANKING_HEARTBEAT_PARTITIONS_MISSING_METRIC } from '../../lambdas/ranking-cache/ranking-cache';
import { FLINK_STATUS_HANDLER, FLINK_STATUS_METRICS } from '../../lambdas/flink-status/check-statements';
import { HEALTH_METRICS } from '../../lambdas/shared/health-metrics';
import { TRIGGER_STATUS_HANDLER, TRIGGER_STATUS_METRICS } from '../../lambdas/trigger-status/check-triggers';
import { RECONCILE_HANDLER, RECONCILE_METRICS } from '../../lambdas/reconcile/reconcile-ledger';
import { RECONCILIATION_DRIFT_METRIC, RECONCILIATION_SECONDS_METRIC } from '../../constructs/aws/reconciliation';
import { SILENCE_METRICS } from '../../constructs/aws/silence-alarms';
import { createFakeBundleRoot, testEnvironment } from './support/fixtures';
import { addAwsStacks } from './support/synth';

// The alarms live in the infrastructure and the metrics in the handlers, which may not import
// each other; these tests keep the two sides naming the same things.

/** The summary metrics each handler declares it emits. */
const SUMMARY_EMITS: Readonly<Record<string, readonly SummaryCounter[]>> = {
  [CLICK_BALANCE_HANDLER]: CLICK_BALANCE_METRICS,
  [COMPENSATION_HANDLER]: COMPENSATION_METRICS,
  [RANKING_CACHE_HANDLER]: RANKING_CACHE_METRICS,
  [BUDGET_RESET_HANDLER]: BUDGET_RESET_METRICS,
  [OUTBOX_SWEEP_HANDLER]: OUTBOX_SWEEP_METRICS,
};

function emittedMetricNames(handler: string): string[] {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const observability = createObservability(handler);
  const added = jest.spyOn(observability.metrics, 'addMetric');
  reportInvocation(observability, { ...emptySummary(handler, SUMMARY_EMITS[handler] ?? []), charged: 1, refunded: 1 });
  return added.mock.calls.map(([name, unit]) => {
    expect([MetricUnit.Count, MetricUnit.Milliseconds]).toContain(unit);
    return name;
  });
}

describe('worker metrics seen by the alarms', () => {
  test('alarms read the namespace the handlers write to', () => {
    expect(WORKER_METRICS_NAMESPACE).toBe(METRICS_NAMESPACE);
  });

  test('the ranking heartbeat alarm reads the metric the ranking cache sends', () => {
    expect(WORKER_METRICS.rankingHeartbeatPartitionsMissing).toBe(RANKING_HEARTBEAT_PARTITIONS_MISSING_METRIC);
  });

  test('the dead-letter and charged-click metrics are emitted by the charging handler, the duplicate count by compensation', () => {
    expect(emittedMetricNames(CLICK_BALANCE_HANDLER)).toEqual(expect.arrayContaining([WORKER_METRICS.deadLettered, WORKER_METRICS.clicksCharged]));
    expect(emittedMetricNames(COMPENSATION_HANDLER)).toEqual(expect.arrayContaining([WORKER_METRICS.deadLettered, WORKER_METRICS.duplicateClicks]));
    expect(emittedMetricNames(CLICK_BALANCE_HANDLER)).not.toContain(WORKER_METRICS.duplicateClicks);
  });

  test('functions that do not charge emit no click or money counters, and every summary metric an alarm or the dashboard reads is emitted by its function', () => {
    for (const handler of [RANKING_CACHE_HANDLER, BUDGET_RESET_HANDLER, OUTBOX_SWEEP_HANDLER]) {
      expect(emittedMetricNames(handler)).not.toEqual(expect.arrayContaining([WORKER_METRICS.clicksCharged]));
      expect(emittedMetricNames(handler).filter((name) => /^Clicks|DuplicateClicks/.test(name))).toEqual([]);
    }
    expect(emittedMetricNames(OUTBOX_SWEEP_HANDLER)).toEqual(['OutboxPublished', 'InvocationMs']);

    const { workers } = addAwsStacks(Testing.app(), testEnvironment('dev'), { bundleRoot: createFakeBundleRoot() });
    const json = Testing.synth(workers);
    const summaryNames = new Set(Object.values(SUMMARY_METRICS));
    const read = new Set<string>();
    // Alarms: metric_name next to dimensions.service, directly or inside metric_query[].metric.
    for (const match of json.matchAll(/"dimensions":\s*\{\s*"service":\s*"([^"]+)"\s*\},\s*"metric_name":\s*"([^"]+)"/g)) read.add(`${match[1]}/${match[2]}`);
    // Dashboard lines: [namespace, metric, "service", name, ...] inside the escaped body.
    for (const match of json.matchAll(/\\"adstream\\",\\"([A-Za-z]+)\\",\\"service\\",\\"([^\\"]+)\\"/g)) read.add(`${match[2]}/${match[1]}`);
    const summaryReads = [...read].filter((pair) => summaryNames.has(pair.split('/')[1]));
    expect(summaryReads.length).toBeGreaterThan(5);
    for (const pair of summaryReads) {
      const [service, metric] = pair.split('/');
      expect({ pair, emitted: emittedMetricNames(service).includes(metric) }).toEqual({ pair, emitted: true });
    }
  });

  test("each function's service name (the metrics' service dimension) is its handler's name", () => {
    const { workers } = addAwsStacks(Testing.app(), testEnvironment('dev'), { bundleRoot: createFakeBundleRoot() });
    const json = JSON.parse(Testing.synth(workers)) as {
      resource: { aws_lambda_function: Record<string, { environment: { variables: Record<string, string> } }> };
    };
    const services = Object.values(json.resource.aws_lambda_function)
      .map((f) => f.environment.variables.POWERTOOLS_SERVICE_NAME)
      .sort();
    expect(services).toEqual(
      [
        BUDGET_RESET_HANDLER,
        CLICK_BALANCE_HANDLER,
        COMPENSATION_HANDLER,
        DB_MIGRATE_HANDLER,
        FLINK_STATUS_HANDLER,
        OUTBOX_SWEEP_HANDLER,
        RANKING_CACHE_HANDLER,
        TRIGGER_STATUS_HANDLER,
        RECONCILE_HANDLER,
      ].sort(),
    );
  });

  test('the silence alarms read the health and Flink-status metrics under the names the handlers emit', () => {
    expect(SILENCE_METRICS.oldestRecordAge).toBe(HEALTH_METRICS.oldestRecordAge);
    expect(SILENCE_METRICS.outboxBacklog).toBe(HEALTH_METRICS.outboxBacklog);
    expect(SILENCE_METRICS.outboxOldestAge).toBe(HEALTH_METRICS.outboxOldestAge);
    expect(SILENCE_METRICS.outboxFailing).toBe(HEALTH_METRICS.outboxFailing);
    expect(SILENCE_METRICS.campaignsBudgetPaused).toBe(HEALTH_METRICS.campaignsBudgetPaused);
    expect(SILENCE_METRICS.flinkRunning).toBe(FLINK_STATUS_METRICS.running);
    expect(SILENCE_METRICS.flinkNotRunning).toBe(FLINK_STATUS_METRICS.notRunning);
    expect(RECONCILIATION_DRIFT_METRIC).toBe(RECONCILE_METRICS.drift);
    expect(RECONCILIATION_SECONDS_METRIC).toBe(RECONCILE_METRICS.seconds);
    expect(SILENCE_METRICS.triggerHealthy).toBe(TRIGGER_STATUS_METRICS.healthy);
    const summary = emittedMetricNames(CLICK_BALANCE_HANDLER);
    expect(summary).toEqual(expect.arrayContaining([SILENCE_METRICS.recordsReceived, SILENCE_METRICS.recordsSkipped, SILENCE_METRICS.clicksCharged]));
  });
});
