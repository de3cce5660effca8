/**
 * GIVEN the whole pipeline on this machine as `npm run local` runs it: the local broker (the
 * run's own topics), every Flink statement of dev in the local Flink engine on Kafka (the
 * configured versions — see README, "The whole pipeline locally"), the six workers
 * through their factories and the emulated Kafka triggers, on a database and Redis prefix of
 * the run's own
 * WHEN a seeded run of a few thousand events goes through it: clicks with duplicates (same
 * millisecond, across 5-minute boundaries), orders, campaign changes, budgets that run out and
 * bad records
 * THEN once drained it reconciles exactly with the generator's truth: every click charged once,
 * every duplicate refunded once, no original refunded, balances and day spend exact, the
 * exhausted campaigns paused, rankings for the active slots, orders attributed to their click.
 */
import { Client } from 'pg';
import { loadEnvironment } from '../../config';
import { runLocalPipeline } from '../../local/pipeline';
import { reconciliationTable } from '../../local/reconcile';
import { kafkaClientsOf, leftoverTcpConnections, openTcpConnections } from '../support/connections';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function localDatabases(): Promise<string[]> {
  const client = new Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    const rows = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'adstream_local_%'`);
    return rows.rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
}

describe('npm run local', () => {
  test('a seeded run of the whole pipeline reconciles the money exactly and leaves nothing behind', async () => {
    const before = await localDatabases();
    const connectionsBefore = openTcpConnections();
    const lines: string[] = [];
    const result = await runLocalPipeline({
      config: loadEnvironment('dev'),
      events: 3000,
      rate: 600,
      seed: 7,
      databaseUrl: DATABASE_URL,
      redisUrl: REDIS_URL,
      viewIntervalSeconds: 5,
      write: (line) => lines.push(line),
    });
    const table = reconciliationTable(result.reconciliation);
    if (!result.reconciliation.ok) process.stderr.write(`${lines.join('\n')}\n${table}\n`);
    expect(result.reconciliation.checks.filter((c) => !c.ok)).toEqual([]);
    expect(result.reconciliation.checks.map((c) => c.check)).toEqual(
      expect.arrayContaining([
        'every click charged once',
        'every duplicate refunded once',
        'no original click refunded',
        'advertiser balances exact',
        'exhausted campaigns paused, no other',
        'rankings: active slots rank exactly their active campaigns',
        'orders attributed to their last click',
      ]),
    );
    // The live view ran and the traffic had what the reconciliation is about.
    expect(lines.some((l) => /charges \d+ refunds \d+/.test(l))).toBe(true);
    expect(lines.find((l) => l.startsWith('traffic:'))).toMatch(
      /[1-9]\d* duplicates \([1-9]\d* same-millisecond, [1-9]\d* across a 5-minute boundary\).*[1-9]\d* campaigns to pause/,
    );
    // Its database is dropped (the Flink JVM, the workers and any broker it started are stopped before it returns).
    expect((await localDatabases()).filter((d) => !before.includes(d))).toEqual([]);
    // And no client of the run stays connected: on the test run's shared broker (which outlives
    // this file) a Kafka client left connected would keep this jest worker from exiting.
    // Each one is named by what the broker's request log says its client sent.
    const leftovers = await leftoverTcpConnections(connectionsBefore);
    expect(leftovers.map((c) => ({ ...c, kafkaClients: kafkaClientsOf(c, process.env.ADSTREAM_KAFKA_REQUEST_LOG) }))).toEqual([]);
  }, 600_000);
});
