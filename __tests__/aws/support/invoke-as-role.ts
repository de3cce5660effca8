/**
 * Runs one deployed entry point (`lambdas/<name>/handler.ts`) with DATABASE_URL naming that
 * function's own database role, on a fixture batch that exercises its writes (including a
 * record it cannot apply, so dead-letter inserts are covered). Prints the invocation result as
 * one JSON line. Run with tsx by database-roles.test.ts.
 */
import { budgetDayOf } from '../../../lambdas/shared/budget-day';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent, kafkaEvent } from '../../lambdas/support/kafka-fixtures';

/** ISO time of the start (midnight) of the budget day that `now` falls in. */
function startOfBudgetDay(now: number, timeZone: string): string {
  const day = budgetDayOf(now, timeZone);
  // Zone offsets are whole minutes: walk back a minute at a time while still in that day.
  let t = now - (now % 60_000);
  while (budgetDayOf(t - 60_000, timeZone) === day) t -= 60_000;
  return new Date(t).toISOString();
}

async function main(): Promise<void> {
  const name = process.argv[2];
  // Fixed ids, so the compensation step refunds the click the click-balance step charged.
  const click = clickEvent(11, 1, { event_id: 'click-role-test-1', device_id: 'device-role-test', event_ts: Number(process.env.CLICK_TS) });
  const garbage = Buffer.from('not json at all');
  let result: unknown;
  if (name === 'click-balance') {
    const { handler } = await import('../../../lambdas/click-balance/handler');
    result = await handler(adEventsBatch([click, clickEvent(11, 1), clickEvent(11, 1), garbage]));
  } else if (name === 'compensation') {
    const { handler } = await import('../../../lambdas/compensation/handler');
    result = await handler(compensationBatch([compensationEvent(click), garbage]));
  } else if (name === 'budget-reset') {
    const { handler } = await import('../../../lambdas/budget-reset/handler');
    // The midnight run of the current budget day (a future day is refused; a later hour of a
    // database that never opened a day would take the day as opened and change nothing).
    result = await handler({ scheduled_time: startOfBudgetDay(Date.now(), process.env.BUDGET_TIME_ZONE ?? 'Asia/Seoul') });
  } else if (name === 'outbox-sweep') {
    const { handler } = await import('../../../lambdas/outbox-sweep/handler');
    result = await handler({});
  } else if (name === 'ranking-cache') {
    const { handler } = await import('../../../lambdas/ranking-cache/handler');
    result = await handler(kafkaEvent('rtb-rankings', [{ values: [garbage], keyOf: () => '{"placement":"home_top","category":"shoes"}' }]));
  } else if (name === 'reconcile') {
    const { handler } = await import('../../../lambdas/reconcile/handler');
    result = await handler({});
  } else {
    throw new Error(`unknown handler ${name}`);
  }
  console.log(JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  },
);
