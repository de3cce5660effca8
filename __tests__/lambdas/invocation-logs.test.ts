import type { Context } from 'aws-lambda';
import { createBudgetResetHandler } from '../../lambdas/budget-reset/resume-campaigns';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { createOutboxSweepHandler } from '../../lambdas/outbox-sweep/sweep-outbox';
import { createObservability, withLambdaContext } from '../../lambdas/shared/observability';
import { addAmounts } from '../../lambdas/shared/money';
import { captureJsonLines } from './support/capture-output';
import { clickEvent, compensationEvent, kafkaEvent } from './support/kafka-fixtures';
import { isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

// The deployed entry points wrap each handler factory with withLambdaContext, as here; the
// handlers run against the file's own Postgres database and Redis keyspace.

const stores = isolatedWorkerStores();

function lambdaContext(requestId: string, functionName: string): Context {
  return {
    awsRequestId: requestId,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:ap-northeast-2:123456789012:function:${functionName}`,
    memoryLimitInMB: '512',
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: '2026/12/01/[$LATEST]abcdef',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Runs `work` with its log lines and EMF lines captured. */
async function captured<T>(work: () => Promise<T>): Promise<{ logs: Array<Record<string, unknown>>; emf: Array<Record<string, unknown>>; error?: unknown }> {
  const { lines, error } = await captureJsonLines(work);
  return { logs: lines.filter((line) => 'level' in line), emf: lines.filter((line) => '_aws' in line), error };
}

/**
 * A handler's real logger and metrics, as a Lambda container builds them at module load:
 * Lambda sets AWS_LAMBDA_INITIALIZATION_TYPE (Powertools reads it for cold_start) and EMF is
 * on (both are read when the logger and metrics are constructed).
 */
function liveObservability(serviceName: string): ReturnType<typeof createObservability> {
  const previous = process.env.POWERTOOLS_METRICS_DISABLED;
  delete process.env.POWERTOOLS_METRICS_DISABLED;
  process.env.AWS_LAMBDA_INITIALIZATION_TYPE = 'on-demand';
  try {
    return createObservability(serviceName);
  } finally {
    delete process.env.AWS_LAMBDA_INITIALIZATION_TYPE;
    if (previous !== undefined) process.env.POWERTOOLS_METRICS_DISABLED = previous;
  }
}

function metricNames(emf: Record<string, unknown>): string[] {
  const aws = emf._aws as { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string }> }> };
  return aws.CloudWatchMetrics.flatMap((group) => group.Metrics.map((metric) => metric.Name)).sort();
}

describe('invocation logs and metrics', () => {
  test('click-balance logs one summary line with the request id, cold start, batch coordinates and the exact amount charged', async () => {
    await seedAdvertiser(stores.pool, 1, '10000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '120.50', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 12, advertiserId: 1, cpc: '0.333333', dailyBudget: null });
    const batch = kafkaEvent('ad-events', [
      { partition: 0, firstOffset: 100, values: [clickEvent(11, 1), clickEvent(11, 1), clickEvent(12, 1)] },
      { partition: 3, firstOffset: 7, values: [clickEvent(12, 1), { not: 'a click' }] },
    ]);
    const deps = { ...stores.deps(), observability: liveObservability('click-balance') };
    const handler = withLambdaContext(deps.observability, createClickBalanceHandler(deps));

    const first = await captured(() => handler(batch, lambdaContext('req-first', 'adstream-dev-click-balance')));
    const replay = await captured(() => handler(batch, lambdaContext('req-replay', 'adstream-dev-click-balance')));

    expect(first.error).toBeUndefined();
    // One line per invocation: no per-record lines, even for the dead-lettered record.
    expect(first.logs).toHaveLength(1);
    const line = first.logs[0];
    expect(line).toMatchObject({
      level: 'INFO',
      message: 'invocation summary',
      service: 'click-balance',
      function_request_id: 'req-first',
      function_name: 'adstream-dev-click-balance',
      cold_start: true,
      kafka: [
        { topic: 'ad-events', partition: 0, firstOffset: 100, lastOffset: 102, records: 3 },
        { topic: 'ad-events', partition: 3, firstOffset: 7, lastOffset: 8, records: 2 },
      ],
      // 2 × 120.50 + 2 × 0.333333, added by Postgres NUMERIC (a float sum gives 241.66666599999998).
      summary: { handler: 'click-balance', records: 5, charged: 4, deadLettered: 1, chargedAmount: '241.666666' },
    });
    expect(line.summary).not.toHaveProperty('refundedAmount');
    expect(line.summary).not.toHaveProperty('emits');

    // The redelivery charges nothing and says so; the container is warm now.
    expect(replay.logs).toHaveLength(1);
    expect(replay.logs[0]).toMatchObject({ function_request_id: 'req-replay', cold_start: false, summary: { charged: 0, chargedAmount: '0' } });

    expect(first.emf).toHaveLength(1);
    expect(metricNames(first.emf[0])).toEqual([
      'CacheUnavailable',
      'ClicksCharged',
      'ClicksVoided',
      'InvocationMs',
      'OutboxPublished',
      'RecordsDeadLettered',
      'RecordsReceived',
      'RecordsSkipped',
    ]);
    expect(first.emf[0]).toMatchObject({ service: 'click-balance', ClicksCharged: 4, RecordsReceived: 5, RecordsDeadLettered: 1 });
    // Nothing of the event's connection details or the record values reaches the log.
    expect(JSON.stringify(first.logs)).not.toMatch(/bootstrap|confluent\.cloud|click-[0-9a-f]{8}-/);
  });

  test('compensation logs the exact amount refunded, which is what the clicks were charged, and emits no charge metric', async () => {
    await seedAdvertiser(stores.pool, 2, '1000');
    await seedCampaign(stores.pool, { campaignId: 21, advertiserId: 2, cpc: '99.999999', dailyBudget: null });
    const clicks = [clickEvent(21, 2), clickEvent(21, 2)];
    const deps = stores.deps();
    await createClickBalanceHandler(deps)(kafkaEvent('ad-events', [{ values: clicks }]));
    const observability = liveObservability('compensation');
    const handler = withLambdaContext(observability, createCompensationHandler({ ...deps, observability }));

    const run = await captured(() =>
      handler(
        kafkaEvent('compensation-events', [
          { partition: 1, firstOffset: 40, values: clicks.map((click) => compensationEvent(click, { refund_amount: '1.00' })) },
        ]),
        lambdaContext('req-refund', 'adstream-dev-compensation'),
      ),
    );

    expect(run.logs).toHaveLength(1);
    expect(run.logs[0]).toMatchObject({
      function_request_id: 'req-refund',
      kafka: [{ topic: 'compensation-events', partition: 1, firstOffset: 40, lastOffset: 41, records: 2 }],
      // What the DEDUCT rows held, not the event's quoted refund_amount.
      summary: { refunded: 2, refundedAmount: '199.999998' },
    });
    expect(run.logs[0].summary).not.toHaveProperty('chargedAmount');
    expect(metricNames(run.emf[0])).not.toContain('ClicksCharged');
    expect(metricNames(run.emf[0])).not.toContain('OutboxPublished');
    expect(run.emf[0]).toMatchObject({ ClicksRefunded: 2, DuplicateClicks: 2 });
  });

  test('scheduled functions log the request id without Kafka coordinates or money, and emit no click metrics', async () => {
    const deps = stores.deps();
    const resetObservability = liveObservability('budget-reset');
    const reset = withLambdaContext(resetObservability, createBudgetResetHandler({ ...deps, observability: resetObservability }));
    const sweepObservability = liveObservability('outbox-sweep');
    const sweep = withLambdaContext(sweepObservability, createOutboxSweepHandler({ ...deps, publishers: {}, observability: sweepObservability }));

    const resetRun = await captured(() => reset({}, lambdaContext('req-reset', 'adstream-dev-budget-reset')));
    const sweepRun = await captured(() => sweep({}, lambdaContext('req-sweep', 'adstream-dev-outbox-sweep')));

    expect(resetRun.error).toBeUndefined();
    for (const [run, requestId] of [
      [resetRun, 'req-reset'],
      [sweepRun, 'req-sweep'],
    ] as const) {
      const summary = run.logs.find((line) => line.message === 'invocation summary') as Record<string, unknown>;
      expect(summary).toMatchObject({ function_request_id: requestId, cold_start: true });
      expect(summary).not.toHaveProperty('kafka');
      expect(summary.summary).not.toHaveProperty('chargedAmount');
      expect(run.emf).toHaveLength(1);
      expect(metricNames(run.emf[0]).filter((name) => /Clicks|Records|Duplicate/.test(name))).toEqual([]);
    }
    expect(metricNames(resetRun.emf[0])).toEqual(['CacheUnavailable', 'InvocationMs', 'OutboxPublished']);
    expect(metricNames(sweepRun.emf[0])).toEqual(['InvocationMs', 'OutboxPublished']);
  });

  test('a failing batch logs its coordinates on the error line, and the next batch does not inherit them', async () => {
    const observability = liveObservability('click-balance');
    const failing = { ...stores.deps(), observability, pool: async () => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.1:5432')) };
    const handler = withLambdaContext(observability, createClickBalanceHandler(failing));
    await seedAdvertiser(stores.pool, 4, '10');
    await seedCampaign(stores.pool, { campaignId: 41, advertiserId: 4, cpc: '1', dailyBudget: null });

    const failed = await captured(() =>
      handler(kafkaEvent('ad-events', [{ partition: 5, firstOffset: 900, values: [clickEvent(41, 4)] }]), lambdaContext('req-fail', 'f')),
    );
    const scheduled = await captured(() =>
      withLambdaContext(observability, async () => observability.logger.info('after'))({}, lambdaContext('req-next', 'f')),
    );

    expect(String(failed.error)).toMatch(/ECONNREFUSED/);
    const error = failed.logs.find((line) => line.level === 'ERROR');
    expect(error).toMatchObject({ function_request_id: 'req-fail', kafka: [{ partition: 5, firstOffset: 900, lastOffset: 900 }] });
    expect(scheduled.logs[0]).toMatchObject({ message: 'after', function_request_id: 'req-next' });
    expect(scheduled.logs[0]).not.toHaveProperty('kafka');
  });
});

describe('addAmounts', () => {
  test('adds NUMERIC text exactly at the larger scale', () => {
    expect(addAmounts('0', '0')).toBe('0');
    expect(addAmounts('120.50', '0.333333')).toBe('120.833333');
    expect(addAmounts('0.1', '0.2')).toBe('0.3');
    expect(addAmounts('99999999999999999999.99', '0.01')).toBe('100000000000000000000.00');
    expect(addAmounts('0.000001', '0')).toBe('0.000001');
  });

  test('refuses anything but a non-negative decimal', () => {
    expect(() => addAmounts('-1', '2')).toThrow(RangeError);
    expect(() => addAmounts('1e3', '2')).toThrow(/non-negative decimals/);
  });
});
