/**
 * GIVEN dead letters recorded by the real click-balance and compensation handlers on their own
 * Postgres database
 * WHEN `npm run redrive` runs before and after their cause is fixed, as a dry run, twice at once
 * THEN each row that now applies is re-driven once (its money moved once, the row marked in the
 * same transaction), rows that still fail stay in place with their current reason, and a dry
 * run prints the money that would move and writes nothing.
 */
import type { AdEvent } from '../../contracts';
import { createClickBalanceHandler } from '../../lambdas/click-balance/charge-clicks';
import { createCompensationHandler } from '../../lambdas/compensation/refund-duplicates';
import { redriveCommand } from '../../scripts/redrive';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './support/kafka-fixtures';
import { balanceOf, countRows, isolatedWorkerStores, seedAdvertiser, seedCampaign } from './support/test-database';

const stores = isolatedWorkerStores();

const runRedrive = (args: string[]) => redriveCommand(args, { DATABASE_URL: stores.db.url });

interface DeadLetterRow {
  id: string;
  handler: string;
  reason: string;
  first_reason: string | null;
  redriven_at: Date | null;
  redrive_outcome: string | null;
  redrive_attempts: number;
}

async function deadLetters(where = 'true', params: unknown[] = []): Promise<DeadLetterRow[]> {
  const result = await stores.pool.query<DeadLetterRow>(
    `SELECT id::text, handler, reason, first_reason, redriven_at, redrive_outcome, redrive_attempts FROM dead_letters WHERE ${where} ORDER BY id`,
    params,
  );
  return result.rows;
}

const charges = (clicks: readonly AdEvent[]) =>
  countRows(stores.pool, 'ad_balance_histories', "type = 'DEDUCT' AND event_id = ANY($1)", [clicks.map((c) => c.event_id)]);

describe('npm run redrive', () => {
  // Campaign 52 (advertiser 5) and 61 (advertiser 6) are not loaded yet when their clicks arrive.
  const unknownCampaign = [clickEvent(52, 5), clickEvent(52, 5), clickEvent(52, 5)];
  const wrongAdvertiser = clickEvent(61, 5);

  beforeAll(async () => {
    await seedAdvertiser(stores.pool, 5, '100');
    await seedAdvertiser(stores.pool, 6, '100');
    await seedCampaign(stores.pool, { campaignId: 51, advertiserId: 5, cpc: '1.25', dailyBudget: null });
    const charge = createClickBalanceHandler(stores.deps());
    const first = await charge(adEventsBatch([clickEvent(51, 5), ...unknownCampaign, wrongAdvertiser], 0, 100));
    expect(first).toMatchObject({ charged: 1, deadLettered: 4 });
    // A record no fix will ever make valid.
    await charge(adEventsBatch([Buffer.from('{"event_type": "CLICK", not json')], 0, 200));
    expect(await countRows(stores.pool, 'dead_letters')).toBe(5);
    expect(await balanceOf(stores.pool, 5)).toBe('98.75');
  });

  test('before the cause is fixed, every row stays in place, its reason kept and the attempt counted', async () => {
    const { result, output } = await runRedrive(['--cause', 'UNKNOWN_CAMPAIGN']);
    expect(result?.rows.map((r) => r.outcome)).toEqual(['STILL_FAILING', 'STILL_FAILING', 'STILL_FAILING', 'STILL_FAILING']);
    expect(output).toContain('STILL_FAILING UNKNOWN_CAMPAIGN: campaign 52 does not exist (left in place)');
    const rows = await deadLetters("reason = 'UNKNOWN_CAMPAIGN'");
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatchObject({ handler: 'click-balance', redriven_at: null, redrive_attempts: 1, first_reason: 'UNKNOWN_CAMPAIGN' });
    expect(await countRows(stores.pool, 'dead_letters')).toBe(5);
    expect(await balanceOf(stores.pool, 5)).toBe('98.75');
  });

  test('--dry-run, once the campaigns exist, prints the charges that would be applied and writes nothing', async () => {
    await seedCampaign(stores.pool, { campaignId: 52, advertiserId: 5, cpc: '0.75', dailyBudget: null });
    await seedCampaign(stores.pool, { campaignId: 61, advertiserId: 6, cpc: '9.00', dailyBudget: null });
    const before = await deadLetters();

    const { result, output } = await runRedrive(['--cause', 'UNKNOWN_CAMPAIGN', '--dry-run']);

    expect(result?.rows.map((r) => r.outcome)).toEqual(['CHARGED', 'CHARGED', 'CHARGED', 'STILL_FAILING']);
    expect(result?.money.campaigns).toEqual([{ advertiserId: '5', campaignId: '52', charges: 3, charged: '2.25', refunds: 0, refunded: '0' }]);
    expect(output).toContain('dry run (rolled back, nothing moved)');
    expect(output).toContain('advertiser 5 campaign 52: 3 charged = 2.25, 0 refunded = 0');
    expect(output).toContain('advertiser 5: balance -2.25');
    expect(await deadLetters()).toEqual(before);
    expect(await charges(unknownCampaign)).toBe(0);
    expect(await balanceOf(stores.pool, 5)).toBe('98.75');
  });

  test('two re-drives at once apply each row once, mark it re-driven, and leave the one that still fails with its new cause', async () => {
    // Hold the rows, so both re-drives have listed them before either can claim one.
    const holder = await stores.pool.connect();
    await holder.query('BEGIN');
    await holder.query("SELECT id FROM dead_letters WHERE reason = 'UNKNOWN_CAMPAIGN' FOR UPDATE");
    const both = Promise.all([runRedrive(['--cause', 'UNKNOWN_CAMPAIGN']), runRedrive(['--cause', 'UNKNOWN_CAMPAIGN', '--json'])]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await holder.query('COMMIT');
    holder.release();
    const [a, b] = await both;

    const outcomes = new Map<string, string[]>();
    for (const row of [...(a.result?.rows ?? []), ...(b.result?.rows ?? [])]) outcomes.set(row.id, [...(outcomes.get(row.id) ?? []), row.outcome]);
    const [wrongId] = (await deadLetters('kafka_offset = 104')).map((r) => r.id);
    for (const [id, seen] of outcomes) {
      if (id === wrongId) continue;
      // Each applicable row: charged by exactly one of the two; the other waited for it and found it re-driven.
      expect([...seen].sort()).toEqual(['ALREADY_REDRIVEN', 'CHARGED']);
    }
    expect(await charges(unknownCampaign)).toBe(3);
    expect(await balanceOf(stores.pool, 5)).toBe('96.50');
    const redriven = await deadLetters('kafka_offset BETWEEN 101 AND 103');
    for (const row of redriven) expect(row).toMatchObject({ handler: 'click-balance', redrive_outcome: 'CHARGED', reason: 'UNKNOWN_CAMPAIGN' });
    for (const row of redriven) expect(row.redriven_at).toBeInstanceOf(Date);

    // Campaign 61 belongs to advertiser 6: the click naming advertiser 5 still fails, for a new reason.
    expect(await deadLetters('kafka_offset = 104')).toEqual([
      expect.objectContaining({ id: wrongId, reason: 'ADVERTISER_MISMATCH', first_reason: 'UNKNOWN_CAMPAIGN', redriven_at: null, redrive_outcome: null }),
    ]);
    expect(await countRows(stores.pool, 'ad_balance_histories', 'event_id = $1', [wrongAdvertiser.event_id])).toBe(0);
    expect(await balanceOf(stores.pool, 6)).toBe('100');
  });

  test('a row re-driven once is never re-driven again: a third run finds nothing and moves nothing', async () => {
    const { result, output } = await runRedrive(['--cause', 'UNKNOWN_CAMPAIGN']);
    expect(result?.rows).toEqual([]);
    expect(output).toContain('no dead letter matches');
    expect(output).toContain('money moved: none');
    const byId = await runRedrive(['--id', (await deadLetters('kafka_offset = 101'))[0].id]);
    expect(byId.result?.rows).toEqual([]);
    expect(await balanceOf(stores.pool, 5)).toBe('96.50');
  });

  test('a record no fix can make valid stays in place with its reason, however often it is re-driven', async () => {
    const [broken] = await deadLetters('kafka_offset = 200');
    for (let i = 0; i < 2; i++) {
      const { result } = await runRedrive(['--id', broken.id]);
      expect(result?.rows).toEqual([
        expect.objectContaining({ id: broken.id, outcome: 'STILL_FAILING', failure: expect.objectContaining({ reason: broken.reason }) }),
      ]);
    }
    expect(await deadLetters('kafka_offset = 200')).toEqual([
      expect.objectContaining({ id: broken.id, reason: broken.reason, redriven_at: null, redrive_attempts: 2 }),
    ]);
    expect(await countRows(stores.pool, 'dead_letters')).toBe(5);
  });

  test('known mistakes print a message: no filter, a malformed cause or id', async () => {
    await expect(runRedrive([])).rejects.toMatchObject({ name: 'UsageError', message: expect.stringContaining('give --cause, --id or --handler') });
    await expect(runRedrive(['--cause', "x'; DROP TABLE dead_letters"])).rejects.toMatchObject({ name: 'UsageError' });
    await expect(runRedrive(['--id', '12a'])).rejects.toMatchObject({ name: 'UsageError' });
    await expect(runRedrive(['--handler', 'budget-reset'])).rejects.toMatchObject({ name: 'RecoveryRequestError' });
    expect((await runRedrive(['--help'])).output).toContain('usage: npm run redrive');
  });

  test('a duplicate and its compensation, both dead-lettered before their campaign existed, are charged then refunded in id order: net zero, once', async () => {
    await seedAdvertiser(stores.pool, 7, '50');
    const duplicate = clickEvent(71, 7);
    expect(await createClickBalanceHandler(stores.deps())(adEventsBatch([duplicate], 1, 300))).toMatchObject({ deadLettered: 1 });
    expect(await createCompensationHandler(stores.deps())(compensationBatch([compensationEvent(duplicate)], 1, 300))).toMatchObject({ deadLettered: 1 });
    await seedCampaign(stores.pool, { campaignId: 71, advertiserId: 7, cpc: '4.40', dailyBudget: null });

    const dry = await runRedrive(['--cause', 'UNKNOWN_CAMPAIGN', '--dry-run']);
    expect(dry.result?.rows.map((r) => [r.handler, r.outcome])).toEqual([
      ['click-balance', 'CHARGED'],
      ['compensation', 'REFUNDED'],
    ]);
    expect(dry.output).toContain('advertiser 7 campaign 71: 1 charged = 4.40, 1 refunded = 4.40');
    expect(dry.output).toContain('advertiser 7: balance +0.00');

    const { result } = await runRedrive(['--cause', 'UNKNOWN_CAMPAIGN', '--handler', 'click-balance']);
    expect(result?.rows.map((r) => r.outcome)).toEqual(['CHARGED']);
    expect(await balanceOf(stores.pool, 7)).toBe('45.60');
    const refund = await runRedrive(['--cause', 'UNKNOWN_CAMPAIGN']);
    expect(refund.result?.rows.map((r) => [r.handler, r.outcome])).toEqual([['compensation', 'REFUNDED']]);
    expect(await balanceOf(stores.pool, 7)).toBe('50.00');
    expect(await countRows(stores.pool, 'ad_balance_histories', 'event_id = $1', [duplicate.event_id])).toBe(2);
  });

  test('a duplicate dead-lettered ABSURD_AMOUNT for its quoted price (before the quote became informational) is refunded once by a re-drive', async () => {
    await seedAdvertiser(stores.pool, 9, '50');
    await seedCampaign(stores.pool, { campaignId: 91, advertiserId: 9, cpc: '3.30', dailyBudget: null });
    const duplicate = clickEvent(91, 9, { actual_price: '-3.30' });
    await createClickBalanceHandler(stores.deps())(adEventsBatch([duplicate], 1, 400));
    expect(await balanceOf(stores.pool, 9)).toBe('46.70');
    // The row the compensation handler recorded for it before this change.
    const compensation = Buffer.from(JSON.stringify(compensationEvent(duplicate, { refund_amount: '-3.30' })));
    await stores.pool.query(
      `INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, detail, raw_value, raw_value_bytes, record_day)
       VALUES ('compensation', 'compensation-events', 10, 400, 'ABSURD_AMOUNT', 'refund_amount must not be negative, got -3.30', $1, $2,
               (now() AT TIME ZONE 'Asia/Seoul')::date)`,
      [compensation, compensation.length],
    );

    const first = await runRedrive(['--cause', 'ABSURD_AMOUNT']);
    const again = await runRedrive(['--cause', 'ABSURD_AMOUNT']);

    expect(first.result?.rows.map((r) => [r.handler, r.outcome])).toEqual([['compensation', 'REFUNDED']]);
    expect(again.result?.rows).toEqual([]);
    expect(await balanceOf(stores.pool, 9)).toBe('50.00');
    expect(await countRows(stores.pool, 'ad_balance_histories', "type = 'REFUND' AND event_id = $1", [duplicate.event_id])).toBe(1);
  });

  test('a row kept without its Kafka timestamp (recorded before the table kept it, or a record that had none) is re-driven in its own day: still failing, it stays one row', async () => {
    // Campaign 81 does not exist: the click fails again, and its row must be recognised as the same record.
    const click = Buffer.from(JSON.stringify(clickEvent(81, 8)));
    const { rows } = await stores.pool.query<{ id: string }>(
      `INSERT INTO dead_letters (handler, topic, kafka_partition, kafka_offset, reason, raw_value, raw_value_bytes, record_day)
       VALUES ('click-balance', 'ad-events', 9, 1, 'UNKNOWN_CAMPAIGN', $1, $2, (now() AT TIME ZONE 'Asia/Seoul')::date - 3),
              ('click-balance', 'ad-events', 9, 2, 'UNKNOWN_CAMPAIGN', $1, $2, '1970-01-01')
       RETURNING id::text`,
      [click, click.length],
    );
    const before = await stores.pool.query("SELECT id::text, record_day::text FROM dead_letters WHERE kafka_partition = 9 AND topic = 'ad-events' ORDER BY id");

    const { result } = await runRedrive(rows.flatMap((r) => ['--id', r.id]));

    expect(result?.rows.map((r) => r.outcome)).toEqual(['STILL_FAILING', 'STILL_FAILING']);
    expect(
      (await stores.pool.query("SELECT id::text, record_day::text FROM dead_letters WHERE kafka_partition = 9 AND topic = 'ad-events' ORDER BY id")).rows,
    ).toEqual(before.rows);
    expect(await deadLetters('kafka_partition = 9')).toEqual([
      expect.objectContaining({ redriven_at: null, redrive_attempts: 1 }),
      expect.objectContaining({ redriven_at: null, redrive_attempts: 1 }),
    ]);
  });
});

describe('npm run redrive racing the live handlers on the same records', () => {
  test('a dead-lettered click re-driven while click-balance gets it again and compensation refunds it: charged once, refunded once, the row re-driven', async () => {
    await seedAdvertiser(stores.pool, 20, '100');
    const clicks = Array.from({ length: 6 }, () => clickEvent(201, 20));
    const charge = createClickBalanceHandler(stores.deps());
    expect(await charge(adEventsBatch(clicks, 20, 0))).toMatchObject({ charged: 0, deadLettered: 6 });
    await seedCampaign(stores.pool, { campaignId: 201, advertiserId: 20, cpc: '1.000001', dailyBudget: null });

    // At once: the re-drive of the six rows, the trigger delivering the batch again (a retry) and
    // the compensations of three of the clicks (duplicates of clicks charged elsewhere).
    const refund = createCompensationHandler(stores.deps());
    const [redriven, live, refunds] = await Promise.all([
      runRedrive(['--cause', 'UNKNOWN_CAMPAIGN', '--handler', 'click-balance']),
      charge(adEventsBatch(clicks, 20, 0)),
      refund(
        compensationBatch(
          clicks.slice(0, 3).map((c) => compensationEvent(c)),
          20,
          0,
        ),
      ),
    ]);

    const ledger = await stores.pool.query<{ type: string; n: number }>(
      'SELECT type, count(*)::int AS n FROM ad_balance_histories WHERE advertiser_id = 20 GROUP BY type ORDER BY type',
    );
    // Each click charged once; each refunded one refunded once (or voided before its charge, then never charged).
    const refunded = (ledger.rows.find((r) => r.type === 'REFUND')?.n ?? 0) + (await countRows(stores.pool, 'click_voids', 'advertiser_id = 20'));
    const redriveCharged = redriven.result?.rows.filter((r) => r.outcome === 'CHARGED').length ?? 0;
    expect(redriveCharged + live.charged).toBe(ledger.rows.find((r) => r.type === 'DEDUCT')?.n ?? 0);
    expect(refunded).toBe(3);
    expect(refunds).toMatchObject({ deadLettered: 0 });
    const deducts = ledger.rows.find((r) => r.type === 'DEDUCT')?.n ?? 0;
    expect(deducts + (await countRows(stores.pool, 'click_voids', 'advertiser_id = 20'))).toBe(6);
    expect(await balanceOf(stores.pool, 20)).toBe('96.999997');
    // Every dead letter re-driven, none left pending or recorded twice.
    expect(await deadLetters("kafka_partition = 20 AND topic = 'ad-events'")).toEqual(
      Array.from({ length: 6 }, () => expect.objectContaining({ handler: 'click-balance', redriven_at: expect.any(Date) })),
    );
  });
});

describe('npm run redrive after the history of its day expired', () => {
  test('a duplicate voided while dead-lettered NO_PRICE is not charged by a re-drive after the days of its void expired: records of expired days stay dead letters (HISTORY_EXPIRED)', async () => {
    await seedAdvertiser(stores.pool, 12, '100');
    await seedCampaign(stores.pool, { campaignId: 121, advertiserId: 12, cpc: null, dailyBudget: null });
    const ts = Date.now() - 60_000;
    const original = clickEvent(121, 12, { event_ts: ts, device_id: 'dev-12', event_id: 'expired-y' });
    const duplicate = clickEvent(121, 12, { event_ts: ts + 10_000, device_id: 'dev-12', event_id: 'expired-x' });
    expect(await createClickBalanceHandler(stores.deps())(adEventsBatch([original, duplicate], 11, 0))).toMatchObject({ deadLettered: 2 });
    const compensation = compensationEvent(duplicate, { original_event_id: original.event_id, original_event_ts: ts });
    expect(await createCompensationHandler(stores.deps())(compensationBatch([compensation], 11, 0))).toMatchObject({ voided: 1 });
    // And a compensation of that day dead-lettered before its campaign existed.
    const lateCampaign = clickEvent(122, 12, { event_ts: ts + 20_000 });
    expect(await createCompensationHandler(stores.deps())(compensationBatch([compensationEvent(lateCampaign)], 11, 1))).toMatchObject({
      deadLettered: 1,
    });

    // 40 days on, budget-reset's maintenance expires the days of the clicks (35 days of
    // retention); the dead letters' day is kept, its rows not re-driven yet.
    await stores.pool.query("SELECT * FROM adstream_maintain_history((now() AT TIME ZONE 'Asia/Seoul')::date + 40, 3, 35, 'drop')");
    await stores.pool.query("UPDATE campaigns SET cpc = '2.50' WHERE campaign_id = 121");
    await seedCampaign(stores.pool, { campaignId: 122, advertiserId: 12, cpc: '2.50', dailyBudget: null });
    const { result } = await runRedrive(['--cause', 'NO_PRICE']);
    const refund = await runRedrive(['--cause', 'UNKNOWN_CAMPAIGN', '--handler', 'compensation']);

    // Neither is applied: whether the duplicate was voided, or (for a copy) a click already
    // charged, is no longer known. Both rows stay, with the reason.
    expect(result?.rows.map((r) => [r.outcome, r.failure?.reason])).toEqual([
      ['STILL_FAILING', 'HISTORY_EXPIRED'],
      ['STILL_FAILING', 'HISTORY_EXPIRED'],
    ]);
    expect(refund.result?.rows.map((r) => [r.outcome, r.failure?.reason])).toEqual([['STILL_FAILING', 'HISTORY_EXPIRED']]);
    expect(await balanceOf(stores.pool, 12)).toBe('100');
    expect(await countRows(stores.pool, 'ad_balance_histories', 'advertiser_id = 12')).toBe(0);
    expect(await countRows(stores.pool, 'click_voids', 'advertiser_id = 12')).toBe(0);
    expect(await deadLetters("handler = 'click-balance' AND kafka_partition = 11")).toEqual([
      expect.objectContaining({ reason: 'HISTORY_EXPIRED', first_reason: 'NO_PRICE', redriven_at: null }),
      expect.objectContaining({ reason: 'HISTORY_EXPIRED', first_reason: 'NO_PRICE', redriven_at: null }),
    ]);
  });
});
