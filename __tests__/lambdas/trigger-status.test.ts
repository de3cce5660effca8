import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetEventSourceMappingCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  createTriggerStatusHandler,
  isConsuming,
  parseTriggerMappings,
  TRIGGER_STATUS_METRICS,
  TriggerMapping,
} from '../../lambdas/trigger-status/check-triggers';
import { createObservability } from '../../lambdas/shared/observability';

/**
 * A local stand-in for Lambda's GetEventSourceMapping (GET /2015-03-31/event-source-mappings/{UUID}),
 * on a free port, so the real SDK client (request signing, response parsing) is exercised.
 */
function fakeLambdaApi(mappings: Record<string, Record<string, unknown>>) {
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? '');
    const match = /^\/2015-03-31\/event-source-mappings\/([^/?]+)/.exec(req.url ?? '');
    const mapping = match ? mappings[decodeURIComponent(match[1])] : undefined;
    if (req.method !== 'GET' || !req.headers.authorization?.startsWith('AWS4-HMAC-SHA256')) return void res.writeHead(400).end();
    if (!mapping) {
      res.writeHead(404, { 'Content-Type': 'application/json', 'x-amzn-ErrorType': 'ResourceNotFoundException' });
      return void res.end(JSON.stringify({ Type: 'User', Message: 'The resource you requested does not exist.' }));
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ UUID: match![1], ...mapping }));
  });
  return {
    paths,
    async start(): Promise<string> {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function captureEmf() {
  const lines: Array<Record<string, unknown>> = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    for (const line of String(chunk).split('\n')) if (line.includes('"_aws"')) lines.push(JSON.parse(line) as Record<string, unknown>);
    return true;
  });
  return { lines, restore: () => spy.mockRestore() };
}

describe('trigger-status against a local Lambda API', () => {
  const api = fakeLambdaApi({
    'uuid-ok': { State: 'Enabled', LastProcessingResult: 'OK' },
    'uuid-idle': { State: 'Enabled', LastProcessingResult: 'No records processed' },
    'uuid-auth': { State: 'Enabled', LastProcessingResult: 'PROBLEM: Authentication failed: invalid SASL/PLAIN credentials' },
    'uuid-off': { State: 'Disabled', LastProcessingResult: 'OK', StateTransitionReason: 'USER_INITIATED' },
  });
  let client: LambdaClient;
  beforeAll(async () => {
    client = new LambdaClient({
      region: 'ap-northeast-2',
      endpoint: await api.start(),
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    });
  });
  afterAll(async () => {
    client.destroy();
    await api.stop();
  });

  const mappings: TriggerMapping[] = [
    { name: 'click-balance', uuid: 'uuid-ok' },
    { name: 'compensation', uuid: 'uuid-auth' },
    { name: 'ranking-cache', uuid: 'uuid-off' },
    { name: 'gone', uuid: 'uuid-deleted' },
    { name: 'quiet', uuid: 'uuid-idle' },
  ];

  test('a revoked key (PROBLEM) and a disabled mapping are not consuming; a deleted one cannot be read; idle is fine', async () => {
    const emf = captureEmf();
    let statuses;
    try {
      statuses = await createTriggerStatusHandler({
        mappings,
        read: (uuid) => client.send(new GetEventSourceMappingCommand({ UUID: uuid })),
        observability: createObservability('trigger-status'),
      })();
    } finally {
      emf.restore();
    }
    expect(statuses.map((s) => [s.name, s.healthy])).toEqual([
      ['click-balance', true],
      ['compensation', false],
      ['ranking-cache', false],
      ['gone', undefined],
      ['quiet', true],
    ]);
    expect(statuses[1].detail).toContain('PROBLEM: Authentication failed');
    expect(statuses[2].detail).toContain('USER_INITIATED');
    expect(statuses[3].detail).toMatch(/could not read mapping uuid-deleted/);
    const points = emf.lines.map((l) => [l.trigger, l[TRIGGER_STATUS_METRICS.healthy], l.service]);
    expect(points).toEqual([
      ['click-balance', 1, 'trigger-status'],
      ['compensation', 0, 'trigger-status'],
      ['ranking-cache', 0, 'trigger-status'],
      ['quiet', 1, 'trigger-status'],
    ]);
    expect(api.paths[0]).toBe('/2015-03-31/event-source-mappings/uuid-ok');
  });
});

describe('trigger-status settings', () => {
  test('parses name=uuid pairs', () => {
    expect(parseTriggerMappings('click-balance=a-1, compensation=b-2')).toEqual([
      { name: 'click-balance', uuid: 'a-1' },
      { name: 'compensation', uuid: 'b-2' },
    ]);
  });
  test('fails when empty or malformed', () => {
    expect(() => parseTriggerMappings('')).toThrow(/TRIGGER_MAPPINGS/);
    expect(() => parseTriggerMappings('click-balance')).toThrow(/expected name=uuid/);
  });
  test('only Enabled without a PROBLEM counts as consuming', () => {
    expect(isConsuming({ State: 'Enabled', LastProcessingResult: 'OK' })).toBe(true);
    expect(isConsuming({ State: 'Updating', LastProcessingResult: 'OK' })).toBe(false);
    expect(isConsuming({ State: 'Enabled', LastProcessingResult: 'PROBLEM: Connection error.' })).toBe(false);
  });
});
