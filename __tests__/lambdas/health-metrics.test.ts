import { HEALTH_METRICS, measureOutboxBacklog, oldestRecordAgeMs, withBatchAge, withOutboxBacklog } from '../../lambdas/shared/health-metrics';
import { createObservability } from '../../lambdas/shared/observability';
import { adEventsBatch, clickEvent, kafkaEvent } from './support/kafka-fixtures';
import { createTestDatabase, TestDatabase } from './support/test-database';

type Emitted = Array<[string, number, string]>;
const recorder = () => {
  const emitted: Emitted = [];
  return { emitted, emit: (name: string, value: number, unit: 'Seconds' | 'Count') => void emitted.push([name, value, unit]) };
};

describe('batch age', () => {
  test('is the age of the oldest record across every partition of the batch', () => {
    const event = kafkaEvent('ad-events', [
      { partition: 0, values: [clickEvent(1, 1, { event_id: 'a' }), clickEvent(1, 1, { event_id: 'b' })] },
      { partition: 1, values: [clickEvent(1, 1, { event_id: 'c' })] },
    ]);
    // The fixtures stamp records from 1_763_700_000_000 on.
    expect(oldestRecordAgeMs(event, 1_763_700_090_000)).toBe(90_000);
  });

  test('is undefined for a batch without timestamps, and never negative', () => {
    expect(oldestRecordAgeMs({ records: {} }, Date.now())).toBeUndefined();
    expect(oldestRecordAgeMs(adEventsBatch([clickEvent(1, 1)]), 0)).toBe(0);
  });

  test('is reported before the handler runs, so a batch that keeps failing still reports its age', async () => {
    const { emitted, emit } = recorder();
    const failing = withBatchAge(
      async () => {
        expect(emitted).toHaveLength(1);
        throw new Error('database unavailable');
      },
      emit,
      () => 1_763_700_600_000,
    );
    await expect(failing(adEventsBatch([clickEvent(1, 1)]))).rejects.toThrow('database unavailable');
    expect(emitted).toEqual([[HEALTH_METRICS.oldestRecordAge, 600, 'Seconds']]);
  });

  test("passes the handler's result through", async () => {
    const { emit } = recorder();
    await expect(withBatchAge(async () => 'summary', emit)(adEventsBatch([clickEvent(1, 1)]))).resolves.toBe('summary');
  });
});

describe('outbox backlog (real Postgres)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());
  beforeEach(async () => db.pool.query('DELETE FROM outbox'));

  // A published row has every destination of its kind stamped, as the publishers leave it.
  const insert = (key: string, ageSeconds: number, attempts = 0, published = false, kind = 'BUDGET_WARNING', snsOnly = false) =>
    db.pool.query(
      `INSERT INTO outbox (kind, idempotency_key, payload, created_at, attempts, published_at, sns_published_at, kafka_published_at, spend_date)
       VALUES ($5, $1, '{}', now() - make_interval(secs => $2), $3, CASE WHEN $4 THEN now() END,
               CASE WHEN $4 OR $6 THEN now() END, CASE WHEN $4 AND $5 <> 'BUDGET_WARNING' THEN now() END, current_date)`,
      [key, ageSeconds, attempts, published, kind, snsOnly],
    );

  test('an empty outbox has no backlog', async () => {
    await expect(measureOutboxBacklog(db.pool)).resolves.toEqual({ pending: 0, failing: 0, oldestAgeSeconds: 0, campaignsBudgetPaused: 0 });
  });

  test('a pause sent to SNS but not yet to Kafka is still pending', async () => {
    await insert('pause', 300, 1, false, 'CAMPAIGN_PAUSED', true);
    await insert('resume', 60, 0, true, 'CAMPAIGN_RESUMED');
    await expect(measureOutboxBacklog(db.pool)).resolves.toMatchObject({ pending: 1, failing: 1 });
  });

  test('counts the campaigns paused by budget, not those paused by hand', async () => {
    await db.pool.query(`INSERT INTO advertisers (advertiser_id, balance) VALUES (1, 100) ON CONFLICT DO NOTHING`);
    await db.pool.query(`DELETE FROM campaigns`);
    await db.pool.query(
      `INSERT INTO campaigns (campaign_id, advertiser_id, status, paused_reason) VALUES (1, 1, 'PAUSED', 'BUDGET_EXHAUSTED'), (2, 1, 'PAUSED', 'MANUAL'), (3, 1, 'ACTIVE', NULL)`,
    );
    await expect(measureOutboxBacklog(db.pool)).resolves.toMatchObject({ campaignsBudgetPaused: 1 });
    await db.pool.query(`DELETE FROM campaigns`);
  });

  test('counts unpublished rows, those that failed, and the age of the oldest; published rows do not count', async () => {
    await insert('a', 600, 3);
    await insert('b', 30);
    await insert('c', 7200, 1, true);
    const backlog = await measureOutboxBacklog(db.pool);
    expect(backlog.pending).toBe(2);
    expect(backlog.failing).toBe(1);
    expect(backlog.oldestAgeSeconds).toBeGreaterThanOrEqual(600);
    expect(backlog.oldestAgeSeconds).toBeLessThan(660);
  });

  test('is reported after every sweep, also one that failed', async () => {
    await insert('a', 120, 2);
    const { emitted, emit } = recorder();
    const sweep = withOutboxBacklog(
      async () => {
        throw new Error('SNS down');
      },
      async () => db.pool,
      emit,
      createObservability('outbox-sweep'),
    );
    await expect(sweep({})).rejects.toThrow('SNS down');
    expect(emitted.map(([name, value]) => [name, name === HEALTH_METRICS.outboxOldestAge ? value >= 120 : value])).toEqual([
      [HEALTH_METRICS.outboxBacklog, 1],
      [HEALTH_METRICS.outboxFailing, 1],
      [HEALTH_METRICS.outboxOldestAge, true],
      [HEALTH_METRICS.campaignsBudgetPaused, 0],
    ]);
  });

  test('reports nothing when the database cannot be reached (the alarm treats that as breaching)', async () => {
    const { emitted, emit } = recorder();
    const sweep = withOutboxBacklog(
      async () => 'ok',
      async () => {
        throw new Error('connection refused');
      },
      emit,
      createObservability('outbox-sweep'),
    );
    await expect(sweep({})).resolves.toBe('ok');
    expect(emitted).toEqual([]);
  });
});
