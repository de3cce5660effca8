/**
 * The replay command reads the offset ranges of a Kafka trigger's on-failure record as Lambda
 * writes it to SQS or SNS (AWS Lambda developer guide, "Capturing discarded batches for Amazon
 * MSK and self-managed Apache Kafka event sources": `requestContext`, `responseContext`,
 * `version`, `timestamp`, `KafkaBatchInfo.recordsInfo` keyed `"<topic>-<partition>"` with string
 * offsets), and refuses anything else with a message.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseOnFailureMessage, replayCommand } from '../../scripts/replay';

const run = promisify(execFile);

/** An on-failure record for a batch of `ad-events` partition 3 and `compensation-events` partition 0. */
function onFailureRecord(recordsInfo: Record<string, unknown>): Record<string, unknown> {
  return {
    requestContext: {
      requestId: '316aa6d0-8154-4f3e-9af7-85d5f4a6bc81',
      functionArn: 'arn:aws:lambda:ap-northeast-2:123456789012:function:adstream-prod-click-balance',
      condition: 'RetryAttemptsExhausted',
      approximateInvokeCount: 1,
    },
    responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
    version: '1.0',
    timestamp: '2026-11-14T00:38:06.021Z',
    KafkaBatchInfo: {
      batchSize: 500,
      bootstrapServers: 'pkc-xxxxx.ap-northeast-2.aws.confluent.cloud:9092',
      payloadSize: 2039086,
      recordsInfo,
    },
  };
}

const ranges = {
  'ad-events-3': {
    firstRecordOffset: '1200',
    lastRecordOffset: '1699',
    firstRecordTimestamp: '2026-11-14T00:38:04.835Z',
    lastRecordTimestamp: '2026-11-14T00:38:05.580Z',
  },
  'compensation-events-0': { firstRecordOffset: '7', lastRecordOffset: '7' },
};
const expected = [
  { topic: 'ad-events', partition: 3, fromOffset: 1200, toOffset: 1699 },
  { topic: 'compensation-events', partition: 0, fromOffset: 7, toOffset: 7 },
];

describe('on-failure queue messages', () => {
  test('the SQS body, the output of aws sqs receive-message and an SNS notification all give the same ranges (hyphenated topics split at the last hyphen)', () => {
    const body = JSON.stringify(onFailureRecord(ranges));
    expect(parseOnFailureMessage(body)).toEqual(expected);
    expect(parseOnFailureMessage(JSON.stringify({ Messages: [{ MessageId: 'a', ReceiptHandle: 'r', MD5OfBody: 'x', Body: body }] }))).toEqual(expected);
    expect(parseOnFailureMessage(JSON.stringify({ Type: 'Notification', MessageId: 'n', TopicArn: 'arn:aws:sns:…', Message: body }))).toEqual(expected);
  });

  test('a MaximumPayloadSizeExceeded record (responseContext null) is still replayable', () => {
    const record = { ...onFailureRecord({ 'ad-events-0': { firstRecordOffset: '5', lastRecordOffset: '9' } }), responseContext: null };
    expect(parseOnFailureMessage(JSON.stringify(record))).toEqual([{ topic: 'ad-events', partition: 0, fromOffset: 5, toOffset: 9 }]);
  });

  test.each([
    ['not JSON', '{"requestContext":', /is not JSON/],
    ['two SQS messages', JSON.stringify({ Messages: [{ Body: '{}' }, { Body: '{}' }] }), /holds 2 SQS messages; give one/],
    ['a Kinesis record', JSON.stringify({ requestContext: {}, KinesisBatchInfo: { shardId: 'x' } }), /requestContext and KafkaBatchInfo are required/],
    ['no recordsInfo', JSON.stringify(onFailureRecord({})), /names no records/],
    [
      'a key without a partition',
      JSON.stringify(onFailureRecord({ 'ad-events': { firstRecordOffset: '1', lastRecordOffset: '2' } })),
      /is not "<topic>-<partition>"/,
    ],
    [
      'an offset that is not a number',
      JSON.stringify(onFailureRecord({ 'ad-events-0': { firstRecordOffset: '1e3', lastRecordOffset: '2' } })),
      /firstRecordOffset must be a non-negative whole number/,
    ],
    [
      'an offset beyond 2^53',
      JSON.stringify(
        onFailureRecord({ 'ad-events-0': { firstRecordOffset: '0', lastRecordOffset: '49601189658422359378836298522902373528957594348623495186' } }),
      ),
      /lastRecordOffset must be/,
    ],
    [
      'a last offset before the first',
      JSON.stringify(onFailureRecord({ 'ad-events-0': { firstRecordOffset: '9', lastRecordOffset: '3' } })),
      /is empty: the last offset is before the first/,
    ],
  ])('%s is refused with a message', (_name, text, message) => {
    expect(() => parseOnFailureMessage(text)).toThrow(message);
    expect(() => parseOnFailureMessage(text)).toThrow(expect.objectContaining({ name: 'RecoveryRequestError' }));
  });

  test('the command refuses a message together with explicit coordinates, and names what is missing', async () => {
    const base = ['--env', 'dev', '--brokers', '127.0.0.1:1', '--plaintext'];
    await expect(replayCommand([...base, '--on-failure-message', '-', '--partition', '1'], {}, () => '{}')).rejects.toThrow(
      /--on-failure-message names the range; leave out --partition/,
    );
    await expect(replayCommand([...base, '--topic', 'ad-events'], {})).rejects.toThrow(
      /give --topic, --partition, --from-offset and --to-offset, or --on-failure-message/,
    );
    await expect(replayCommand(['--brokers', 'b:9092'], {})).rejects.toThrow(/--env is required/);
    await expect(
      replayCommand([...base.slice(0, 4), '--topic', 'ad-events', '--partition', '0', '--from-offset', '0', '--to-offset', '1'], {}),
    ).rejects.toThrow(/KAFKA_API_KEY and KAFKA_API_SECRET are not set/);
  });

  test('npm run replay prints a known error without a stack trace and exits 1', async () => {
    const repo = path.resolve(__dirname, '../..');
    const tsx = path.join(repo, 'node_modules/.bin/tsx');
    const failure = await run(tsx, ['scripts/replay.ts', '--env', 'dev', '--brokers', 'b:9092', '--on-failure-message', '/nonexistent/message.json'], {
      cwd: repo,
    }).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr.trim()).toMatch(/^cannot read the on-failure message \/nonexistent\/message.json: ENOENT/);
    expect((failure as { stderr: string }).stderr).not.toMatch(/\n\s+at /);
  });
});
