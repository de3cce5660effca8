// The reconciliation of a local pipeline run against the generator's truth: what Postgres, Redis
// and the Flink sink topics hold once the pipeline has drained, check by check, exact.
import Redis from 'ioredis';
import type { Pool } from 'pg';
import { rankingCacheKey } from '../contracts';
import type { KafkaConnection } from './kafka-broker';
import { kafkaClient } from './kafka-broker';
import { centsText, decimalMicros, Traffic } from './traffic';

/** One line of the reconciliation table. */
export interface ReconciliationCheck {
  /** What is checked. */
  readonly check: string;
  /** What the truth says. */
  readonly expected: string;
  /** What the pipeline holds. */
  readonly actual: string;
  /** Whether they agree. */
  readonly ok: boolean;
  /** First differences, when they do not. */
  readonly detail?: string;
}

/** The whole reconciliation. */
export interface Reconciliation {
  /** Every check, in order. */
  readonly checks: readonly ReconciliationCheck[];
  /** Whether every check passed. */
  readonly ok: boolean;
}

/** What {@link reconcile} reads. */
export interface ReconcileInput {
  readonly pool: Pool;
  readonly connection: KafkaConnection;
  /** Topic prefix of the run. */
  readonly prefix: string;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly traffic: Traffic;
  /** Records the Flink engine skipped as unreadable, per topic. */
  readonly skipped: Readonly<Record<string, number>>;
  /** Budget resets that ran during the run (a reset changes the expected pauses). */
  readonly resets: number;
  /** Flink jobs reading ad-events (each skips the unreadable records itself). */
  readonly adEventReaders: number;
}

function sample(items: Iterable<string>, n = 5): string {
  const list = [...items].slice(0, n);
  return list.join(', ');
}

/** Latest value per key of a topic, read from the beginning (tombstones delete). */
export async function latestByKey(
  connection: KafkaConnection,
  topic: string,
  groupId = `adstream-local-reconcile-${Date.now()}`,
): Promise<Map<string, Record<string, unknown>>> {
  const admin = kafkaClient(connection, 'adstream-local-reconcile').admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const total = ends.reduce((n, o) => n + Number(o.high), 0);
  const out = new Map<string, Record<string, unknown>>();
  if (total === 0) return out;
  const consumer = kafkaClient(connection, 'adstream-local-reconcile').consumer({ groupId });
  await consumer.connect();
  let seen = 0;
  await consumer.subscribe({ topic, fromBeginning: true });
  const done = new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        seen += 1;
        const key = message.key ? strip(message.key).toString('utf8') : '';
        if (message.value === null) out.delete(key);
        else out.set(key, JSON.parse(strip(message.value).toString('utf8')) as Record<string, unknown>);
        if (seen >= total) resolve();
      },
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, 60_000)));
  await Promise.race([done, timeout]);
  clearTimeout(timer);
  await consumer.disconnect();
  return out;
}

function strip(bytes: Buffer): Buffer {
  return bytes.length >= 5 && bytes[0] === 0 ? bytes.subarray(5) : bytes;
}

/** Compares the pipeline's stores with the truth. */
export async function reconcile(input: ReconcileInput): Promise<Reconciliation> {
  const { pool, traffic } = input;
  const { truth } = traffic;
  const checks: ReconciliationCheck[] = [];
  const add = (check: string, expected: string, actual: string, ok: boolean, detail?: string) =>
    checks.push({ check, expected, actual, ok, detail: ok ? undefined : detail });

  // Charges: every valid click charged exactly once (or voided by a refund that came first).
  const deducts = await pool.query<{ event_id: string; n: string }>(
    `SELECT event_id, count(*) AS n FROM ad_balance_histories WHERE type = 'DEDUCT' GROUP BY event_id`,
  );
  const voids = await pool.query<{ event_id: string }>('SELECT event_id FROM click_voids');
  const charged = new Map(deducts.rows.map((r) => [r.event_id, Number(r.n)]));
  const voided = new Set(voids.rows.map((r) => r.event_id));
  const notCharged = [...truth.clicks.keys()].filter((id) => !charged.has(id) && !voided.has(id));
  const twice = [...charged.entries()].filter(([id, n]) => n > 1 || voided.has(id)).map(([id]) => id);
  const unknown = [...charged.keys()].filter((id) => !truth.clicks.has(id));
  add(
    'every click charged once',
    `${truth.clicks.size} clicks`,
    `${charged.size} charged + ${voided.size} voided`,
    notCharged.length === 0 && twice.length === 0 && unknown.length === 0 && charged.size + voided.size === truth.clicks.size,
    `not charged: ${notCharged.length} (${sample(notCharged)}); charged twice: ${twice.length} (${sample(twice)}); not clicks: ${unknown.length} (${sample(unknown)})`,
  );

  // Refunds: every duplicate refunded (or voided) once, no original refunded.
  const refunds = await pool.query<{ event_id: string; n: string }>(
    `SELECT event_id, count(*) AS n FROM ad_balance_histories WHERE type = 'REFUND' GROUP BY event_id`,
  );
  const refunded = new Map(refunds.rows.map((r) => [r.event_id, Number(r.n)]));
  const settled = new Set([...refunded.keys(), ...voided]);
  const missing = [...truth.duplicates].filter((id) => !settled.has(id));
  const refundedTwice = [...refunded.entries()].filter(([id, n]) => n > 1 || voided.has(id)).map(([id]) => id);
  const originalsRefunded = [...truth.originals].filter((id) => settled.has(id));
  const groupProblems = truth.sameMillisecondGroups.filter((g) => g.filter((id) => settled.has(id)).length !== g.length - 1);
  add(
    'every duplicate refunded once',
    `${truth.duplicateCount} duplicates`,
    `${refunded.size} refunded + ${voided.size} voided`,
    missing.length === 0 && refundedTwice.length === 0 && groupProblems.length === 0 && settled.size === truth.duplicateCount,
    `missing: ${missing.length} (${sample(missing)}); twice: ${refundedTwice.length}; same-millisecond groups not settled once: ${groupProblems.length} (${sample(groupProblems.map((g) => g.join('/')))})`,
  );
  add('no original click refunded', '0', String(originalsRefunded.length), originalsRefunded.length === 0, `refunded originals: ${sample(originalsRefunded)}`);
  const compensationLog = await pool.query<{ outcome: string; n: string }>(
    'SELECT outcome, count(*) AS n FROM duplicate_clicks GROUP BY outcome ORDER BY outcome',
  );
  add(
    'compensation events logged once per duplicate',
    String(truth.duplicateCount),
    compensationLog.rows.map((r) => `${r.outcome} ${r.n}`).join(', ') || '0',
    compensationLog.rows.filter((r) => r.outcome !== 'ALREADY_SETTLED').reduce((n, r) => n + Number(r.n), 0) === truth.duplicateCount,
  );

  // Balances and day spend, exact.
  const balances = await pool.query<{ advertiser_id: string; balance: string }>('SELECT advertiser_id, balance::text FROM advertisers ORDER BY advertiser_id');
  const balanceOff = balances.rows.filter((r) => decimalMicros(r.balance) !== (truth.balances.get(Number(r.advertiser_id)) ?? 0n) * 10_000n);
  add(
    'advertiser balances exact',
    `${truth.balances.size} advertisers`,
    `${balances.rows.length - balanceOff.length} exact`,
    balanceOff.length === 0 && balances.rows.length === truth.balances.size,
    balanceOff
      .slice(0, 5)
      .map((r) => `${r.advertiser_id}: ${r.balance} ≠ ${centsText(truth.balances.get(Number(r.advertiser_id)) ?? 0n)}`)
      .join('; '),
  );
  const charges = [...truth.initialBalances.entries()].reduce((n, [id, initial]) => n + initial - (truth.balances.get(id) ?? 0n), 0n);
  const ledger = await pool.query<{ net: string | null }>(
    `SELECT (COALESCE(sum(amount) FILTER (WHERE type = 'DEDUCT'), 0) - COALESCE(sum(amount) FILTER (WHERE type = 'REFUND'), 0))::text AS net FROM ad_balance_histories`,
  );
  add('net charged (ledger)', centsText(charges), ledger.rows[0].net ?? '0', decimalMicros(ledger.rows[0].net ?? '0') === charges * 10_000n);
  const spend = await pool.query<{ campaign_id: string; spend_date: string; spend: string }>(
    `SELECT campaign_id, to_char(spend_date, 'YYYY-MM-DD') AS spend_date, spend::text FROM campaign_daily_spend`,
  );
  const spendOff: string[] = [];
  const seenSpend = new Set<number>();
  for (const r of spend.rows) {
    const id = Number(r.campaign_id);
    seenSpend.add(id);
    const expected = truth.daySpend.get(id) ?? 0n;
    if (r.spend_date !== truth.budgetDay || decimalMicros(r.spend) !== expected * 10_000n)
      spendOff.push(`${id} ${r.spend_date}: ${r.spend} ≠ ${centsText(expected)}`);
  }
  for (const id of truth.daySpend.keys()) if (!seenSpend.has(id)) spendOff.push(`${id}: no spend row`);
  add(
    `day spend exact (${truth.budgetDay})`,
    `${truth.daySpend.size} campaigns`,
    `${truth.daySpend.size - spendOff.length} exact`,
    spendOff.length === 0,
    spendOff.slice(0, 5).join('; '),
  );

  // Pauses.
  const pausedRows = await pool.query<{ campaign_id: string; paused_reason: string | null }>(
    `SELECT campaign_id, paused_reason FROM campaigns WHERE status = 'PAUSED'`,
  );
  const paused = new Set(pausedRows.rows.map((r) => Number(r.campaign_id)));
  const notPaused = [...truth.paused].filter((id) => !paused.has(id));
  const wronglyPaused = [...paused].filter((id) => !truth.paused.has(id));
  add(
    'exhausted campaigns paused, no other',
    `${truth.paused.size} paused`,
    `${paused.size} paused`,
    notPaused.length === 0 && wronglyPaused.length === 0,
    `not paused: ${sample(notPaused.map(String))}; wrongly paused: ${sample(wronglyPaused.map(String))}${input.resets > 0 ? ' (a budget reset ran during the run)' : ''}`,
  );
  const pauseEvents = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE kind = 'CAMPAIGN_PAUSED' AND kafka_published_at IS NOT NULL`);
  add('CAMPAIGN_PAUSED published once per pause', String(truth.paused.size), pauseEvents.rows[0].n, Number(pauseEvents.rows[0].n) === truth.paused.size);

  // Dead letters.
  const dead = await pool.query<{ reason: string; n: string }>(
    `SELECT reason, count(*) AS n FROM dead_letters WHERE handler = 'click-balance' GROUP BY reason ORDER BY reason`,
  );
  const deadTotal = dead.rows.reduce((n, r) => n + Number(r.n), 0);
  add(
    'bad records dead-lettered once',
    String(truth.badRecords),
    `${deadTotal} (${dead.rows.map((r) => `${r.reason} ${r.n}`).join(', ')})`,
    deadTotal === truth.badRecords,
  );
  const otherDead = await pool.query<{ handler: string; reason: string; detail: string | null }>(
    `SELECT handler, reason, detail FROM dead_letters WHERE handler <> 'click-balance' LIMIT 5`,
  );
  add(
    'no dead letters from Flink output',
    '0',
    String(otherDead.rows.length),
    otherDead.rows.length === 0,
    otherDead.rows.map((r) => `${r.handler} ${r.reason}: ${r.detail ?? ''}`).join('; '),
  );

  // Rankings in Redis: every slot with an active campaign ranks exactly its active campaigns.
  const redis = new Redis(input.redisUrl, { keyPrefix: input.keyPrefix, maxRetriesPerRequest: 1 });
  const rankingOff: string[] = [];
  try {
    for (const [slot, campaigns] of truth.rankings) {
      const [placement, category] = slot.split('|');
      const text = await redis.get(rankingCacheKey({ placement, category }));
      if (text === null) {
        rankingOff.push(`${slot}: no key`);
        continue;
      }
      const row = JSON.parse(text) as { ranking?: Array<{ campaign_id: number }> };
      const ids = new Set((row.ranking ?? []).map((r) => Number(r.campaign_id)));
      const same = ids.size === campaigns.size && [...campaigns].every((id) => ids.has(id));
      if (!same) rankingOff.push(`${slot}: [${[...ids].sort().join(',')}] ≠ [${[...campaigns].sort().join(',')}]`);
    }
    const keys = await redis.keys(`${input.keyPrefix}rtb:ranking:*`);
    for (const key of keys) {
      const [placement, category] = key.slice(`${input.keyPrefix}rtb:ranking:`.length).split(':');
      if (!truth.rankings.has(`${placement}|${category}`)) rankingOff.push(`${placement}|${category}: ranked, but no active campaign`);
    }
  } finally {
    redis.disconnect();
  }
  add(
    'rankings: active slots rank exactly their active campaigns',
    `${truth.rankings.size} slots`,
    `${truth.rankings.size - rankingOff.filter((r) => !r.includes('no active')).length} right`,
    rankingOff.length === 0,
    rankingOff.slice(0, 5).join('; '),
  );

  // Attributions (Flink's conversion-attributions, latest row per order).
  const attributions = await latestByKey(input.connection, `${input.prefix}conversion-attributions`, `${input.prefix}adstream-local-reconcile`);
  const attributionOff: string[] = [];
  for (const [order, clicks] of truth.attributions) {
    const row = attributions.get(JSON.stringify({ order_id: order }));
    if (!row) attributionOff.push(`${order}: none`);
    else if (!clicks.has(String(row.click_event_id))) attributionOff.push(`${order}: ${String(row.click_event_id)} ∉ {${[...clicks].join(',')}}`);
  }
  const extra = [...attributions.keys()].filter((k) => {
    const order = (JSON.parse(k) as { order_id: string }).order_id;
    return !truth.attributions.has(order) && !order.startsWith('trail-');
  });
  add(
    'orders attributed to their last click',
    `${truth.attributions.size} orders`,
    `${truth.attributions.size - attributionOff.length} right, ${extra.length} unexpected`,
    attributionOff.length === 0 && extra.length === 0,
    [...attributionOff.slice(0, 5), ...extra.slice(0, 3).map((k) => `unexpected ${k}`)].join('; '),
  );
  const skipped = Object.entries(input.skipped).reduce((n, [, v]) => n + v, 0);
  // The unreadable two thirds of the bad records, skipped by each job reading ad-events on its own.
  const expectedSkipped = (truth.badRecords / 3) * 2 * input.adEventReaders;
  add(
    'Flink skipped only the unreadable records',
    `${expectedSkipped} (${input.adEventReaders} jobs)`,
    String(skipped),
    skipped === expectedSkipped,
    JSON.stringify(input.skipped),
  );

  return { checks, ok: checks.every((c) => c.ok) };
}

/** The reconciliation as a text table. */
export function reconciliationTable(r: Reconciliation): string {
  const rows = r.checks.map((c) => [c.ok ? 'ok' : 'FAIL', c.check, c.expected, c.actual]);
  const header = ['', 'check', 'expected', 'actual'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
  for (const c of r.checks) if (!c.ok && c.detail) out.push(`  ${c.check}: ${c.detail}`);
  out.push(r.ok ? 'RECONCILED: every check passed.' : 'NOT RECONCILED: see the failed checks above.');
  return out.join('\n');
}
