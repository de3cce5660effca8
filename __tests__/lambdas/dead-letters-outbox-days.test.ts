/**
 * GIVEN dead_letters and outbox partitioned by day (db/migrations/1764980000000_partitioned-dead-letters-outbox.sql)
 * WHEN the real handlers record bad records and write announcements, records are redelivered,
 * and budget-reset expires old days
 * THEN a dead letter lies in the budget day of its Kafka record's timestamp (a fixed day without
 * one) and a redelivery never records it twice; an outbox row lies in the day its key names and
 * a replay never writes it twice; and an expired day still holding an unpublished row or a dead
 * letter not re-driven is kept and reported, then expired once that work is done.
 */
import { createBudgetResetHandler } from '../../lambdas/budget-reset/resume-campaigns';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import type { LambdaKafkaEvent } from '../../lambdas/shared/kafka-event';
import { drainOutbox } from '../../lambdas/shared/outbox';
import { adEventsBatch, clickEvent } from './support/kafka-fixtures';
import { budgetDayOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

const stores = isolatedWorkerStores();
const DAY_MS = 24 * 3600 * 1000;

/** Undecodable records of ad-events partition 7, each with the given Kafka timestamp (or none). */
function brokenRecords(entries: ReadonlyArray<{ offset: number; timestamp?: number }>): LambdaKafkaEvent {
  return {
    eventSource: 'SelfManagedKafka',
    records: {
      'ad-events-7': entries.map((e) => ({
        topic: 'ad-events',
        partition: 7,
        offset: e.offset,
        ...(e.timestamp === undefined ? {} : { timestamp: e.timestamp }),
        timestampType: 'CREATE_TIME',
        value: Buffer.from('{"event_type": "CLICK", not json').toString('base64'),
        headers: [],
      })),
    },
  };
}

async function partitionsOf(table: string): Promise<string[]> {
  const { rows } = await stores.pool.query<{ relname: string }>(
    'SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1',
    [table],
  );
  return rows.map((r) => r.relname);
}

const compact = (day: string) => day.replaceAll('-', '');

describe('dead letters and outbox by day', () => {
  test('a dead letter lies in the budget day of its record timestamp, 1970-01-01 without one, and a redelivery records it once', async () => {
    // 00:30 of today's budget day in Seoul: still yesterday in UTC, so the day is the zone's, not UTC's.
    const today = budgetDayOf(Date.now());
    const afterMidnight = Date.parse(`${today}T00:30:00+09:00`);
    expect(new Date(afterMidnight).toISOString().slice(0, 10)).not.toBe(today);
    const batch = brokenRecords([{ offset: 1, timestamp: afterMidnight }, { offset: 2 }, { offset: 3, timestamp: -1 }]);
    const charge = createClickBalanceHandler(stores.deps());

    expect(await charge(batch)).toMatchObject({ deadLettered: 3 });
    const placed = await stores.pool.query(
      `SELECT kafka_offset::int AS offset, record_day::text AS day, kafka_timestamp::text AS ts, tableoid::regclass::text AS part
         FROM dead_letters WHERE kafka_partition = 7 ORDER BY kafka_offset`,
    );
    expect(placed.rows).toEqual([
      { offset: 1, day: today, ts: String(afterMidnight), part: `dead_letters_p${compact(today)}` },
      { offset: 2, day: '1970-01-01', ts: null, part: 'dead_letters_default' },
      { offset: 3, day: '1970-01-01', ts: null, part: 'dead_letters_default' },
    ]);

    // Redelivered (Lambda retries the batch): the same days, the same keys, nothing new.
    await charge(batch);
    expect(await countRows(stores.pool, 'dead_letters', 'kafka_partition = 7')).toBe(3);

    // A row of the same record in the next day (recorded under another zone, or migrated with the
    // day it was recorded on) is met too: the record is not recorded a second time.
    const ts4 = afterMidnight + 3600_000;
    await stores.pool.query(
      `INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, record_day)
       VALUES ('click-balance', 'ad-events', 7, 4, 'INVALID_JSON', $1::date + 1)`,
      [budgetDayOf(ts4)],
    );
    await charge(brokenRecords([{ offset: 4, timestamp: ts4 }]));
    expect(await countRows(stores.pool, 'dead_letters', 'kafka_partition = 7 AND kafka_offset = 4')).toBe(1);
  });

  test('outbox rows lie in the day their key names, from the charge function and from budget-reset, and a replay writes none twice', async () => {
    await seedAdvertiser(stores.pool, 1, '10000');
    await seedCampaign(stores.pool, { campaignId: 11, advertiserId: 1, cpc: '50', dailyBudget: '100' });
    const today = budgetDayOf(Date.now());
    const clicks = adEventsBatch([clickEvent(11, 1), clickEvent(11, 1)]);
    const charge = createClickBalanceHandler(stores.deps());
    expect(await charge(clicks)).toMatchObject({ charged: 2 });
    expect(await charge(clicks)).toMatchObject({ charged: 0 });

    const tomorrow = budgetDayOf(Date.now() + DAY_MS);
    const reset = createBudgetResetHandler(stores.deps({ now: () => Date.now() + DAY_MS }));
    expect(await reset({})).toMatchObject({ resumed: 1 });
    expect(await reset({})).toMatchObject({ resumed: 0 });

    const rows = await stores.pool.query('SELECT idempotency_key AS key, spend_date::text AS day, tableoid::regclass::text AS part FROM outbox ORDER BY id');
    expect(rows.rows).toEqual([
      { key: `BUDGET_WARNING:11:${today}:100`, day: today, part: `outbox_p${compact(today)}` },
      { key: `CAMPAIGN_PAUSED:11:${today}:1`, day: today, part: `outbox_p${compact(today)}` },
      { key: `CAMPAIGN_RESUMED:11:${tomorrow}:2`, day: tomorrow, part: `outbox_p${compact(tomorrow)}` },
    ]);
    // The day is the key's: a row naming another day is refused, so the key stays unique across days.
    await expect(
      stores.pool.query(`INSERT INTO outbox (kind, idempotency_key, payload, spend_date) VALUES ('BUDGET_WARNING', $1, '{}', $2::date + 1)`, [
        `BUDGET_WARNING:11:${today}:100`,
        today,
      ]),
    ).rejects.toThrow(/outbox_spend_date_check/);
  });

  test('budget-reset keeps an expired day holding an unpublished outbox row or a dead letter not re-driven, reports it, and expires it once done', async () => {
    await stores.pool.query('DELETE FROM outbox; DELETE FROM dead_letters');
    // Four days of the migration's first week: an outbox row published (day -6) and one not (day
    // -5), a dead letter not re-driven (day -4) and one re-driven (day -3).
    const { rows: days } = await stores.pool.query<{ d3: string; d4: string; d5: string; d6: string }>(
      `SELECT (current_date - 3)::text AS d3, (current_date - 4)::text AS d4, (current_date - 5)::text AS d5, (current_date - 6)::text AS d6`,
    );
    const { d3, d4, d5, d6 } = days[0];
    await stores.pool.query(
      `INSERT INTO outbox (kind, idempotency_key, payload, spend_date, published_at, sns_published_at)
       VALUES ('BUDGET_WARNING', 'BUDGET_WARNING:21:' || $1 || ':100', '{"campaign_id": 21}', $1::date, now(), now()),
              ('BUDGET_WARNING', 'BUDGET_WARNING:22:' || $2 || ':100', '{"campaign_id": 22}', $2::date, NULL, NULL)`,
      [d6, d5],
    );
    await stores.pool.query(
      `INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, record_day, redriven_at, redrive_outcome)
       VALUES ('click-balance', 'ad-events', 8, 1, 'UNKNOWN_CAMPAIGN', $1::date, NULL, NULL),
              ('click-balance', 'ad-events', 8, 2, 'UNKNOWN_CAMPAIGN', $2::date, now(), 'APPLIED')`,
      [d4, d3],
    );

    const history = { retentionDays: 35, aheadDays: 2, expired: 'detach' as const };
    const later = () => Date.now() + 40 * DAY_MS;
    const deps = stores.deps({ now: later });
    const warn = jest.spyOn(deps.observability.logger, 'warn');
    const summary = await createBudgetResetHandler(deps, history)({});

    expect(summary.partitionsKeptPending).toBe(2);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('expired history days kept'), {
      partitions: [`dead_letters_p${compact(d4)}`, `outbox_p${compact(d5)}`],
    });
    expect(await partitionsOf('outbox')).toContain(`outbox_p${compact(d5)}`);
    expect(await partitionsOf('outbox')).not.toContain(`outbox_p${compact(d6)}`);
    expect(await partitionsOf('dead_letters')).toContain(`dead_letters_p${compact(d4)}`);
    expect(await partitionsOf('dead_letters')).not.toContain(`dead_letters_p${compact(d3)}`);
    expect(await countRows(stores.pool, `archived_outbox_p${compact(d6)}`)).toBe(1);
    expect(await countRows(stores.pool, `archived_dead_letters_p${compact(d3)}`)).toBe(1);
    // The kept rows are still where their readers look: the unpublished one is still pending.
    expect(await countRows(stores.pool, 'outbox', 'published_at IS NULL')).toBe(1);

    // Published and re-driven: the next run expires both days.
    const sent: string[] = [];
    const drained = await drainOutbox(stores.pool, {
      sns: async (messages) => {
        sent.push(...messages.map((m) => m.idempotencyKey));
        return { publishedIds: messages.map((m) => m.id) };
      },
    });
    expect(drained.published.sns).toBe(1);
    expect(sent).toEqual([`BUDGET_WARNING:22:${d5}:100`]);
    await stores.pool.query("UPDATE dead_letters SET redriven_at = now(), redrive_outcome = 'APPLIED' WHERE kafka_partition = 8");
    const next = await createBudgetResetHandler(stores.deps({ now: later }), history)({});
    expect(next).toMatchObject({ partitionsKeptPending: 0, partitionsExpired: 2 });
    expect(await countRows(stores.pool, `archived_outbox_p${compact(d5)}`)).toBe(1);
    expect(await countRows(stores.pool, `archived_dead_letters_p${compact(d4)}`)).toBe(1);
  });
});
