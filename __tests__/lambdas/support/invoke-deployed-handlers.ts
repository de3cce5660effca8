/**
 * Runs the deployed entry points (`lambdas/<name>/handler.ts`) exactly as Lambda loads them:
 * environment parsed at module load, module-scope clients. Run with tsx by
 * deployed-handlers.test.ts, with DATABASE_URL / REDIS_URL / REDIS_KEY_PREFIX set; prints one
 * JSON line per invocation and exits (the module-scope pool is meant to outlive invocations).
 */
import type { Context } from 'aws-lambda';
import { adEventsBatch, clickEvent, compensationBatch, compensationEvent } from './kafka-fixtures';

/** The Lambda context of invocation `requestId` of function `name` (the fields Powertools logs). */
function lambdaContext(name: string, requestId: string): Context {
  return {
    awsRequestId: requestId,
    functionName: `adstream-test-${name}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:ap-northeast-2:123456789012:function:adstream-test-${name}`,
    memoryLimitInMB: '256',
  } as Context;
}

async function main(): Promise<void> {
  const step = process.argv[2];
  if (step === 'migrate') {
    const { handler } = await import('../../../lambdas/db-migrate/handler');
    console.log(JSON.stringify(await handler({})));
    console.log(JSON.stringify(await handler({})));
    return;
  }
  const clicks = await import('../../../lambdas/click-balance/handler');
  const compensation = await import('../../../lambdas/compensation/handler');
  const reset = await import('../../../lambdas/budget-reset/handler');
  const sweep = await import('../../../lambdas/outbox-sweep/handler');
  const { Pool } = await import('pg');
  const pool = new Pool({ connectionString: process.env.DATABASE_URL });
  await pool.query("INSERT INTO advertisers (advertiser_id, balance) VALUES (1, '1000')");
  await pool.query("INSERT INTO campaigns (campaign_id, advertiser_id, cpc, daily_budget) VALUES (11, 1, '100', '200')");
  await pool.end();
  const click = clickEvent(11, 1);
  console.log(JSON.stringify(await clicks.handler(adEventsBatch([click, clickEvent(11, 1)], 2, 40), lambdaContext('click-balance', 'req-clicks'))));
  console.log(JSON.stringify(await compensation.handler(compensationBatch([compensationEvent(click)]), lambdaContext('compensation', 'req-refund'))));
  console.log(JSON.stringify(await reset.handler({ budget_day: '2026-01-01' }, lambdaContext('budget-reset', 'req-reset'))));
  console.log(JSON.stringify(await sweep.handler({}, lambdaContext('outbox-sweep', 'req-sweep'))));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  },
);
