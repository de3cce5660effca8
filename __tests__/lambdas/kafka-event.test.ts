import { decodeBase64, decodeKafkaEvent, parseJsonValue, MAX_VALUE_BYTES } from '../../lambdas/shared/kafka-event';
import { KafkaEventShapeError, KafkaRecordError } from '../../lambdas/shared/errors';
import { parseContractRecord } from '../../lambdas/shared/records';
import { adEventContract } from '../../contracts';
import { clickEvent, jsonBytes, kafkaEvent, withWireHeader } from './support/kafka-fixtures';

describe('decodeKafkaEvent', () => {
  test('decodes self-managed and MSK events keyed topic-partition, in partition then offset order', () => {
    for (const source of ['SelfManagedKafka', 'aws:kafka'] as const) {
      const event = kafkaEvent(
        'ad-events',
        [
          { partition: 0, firstOffset: 10, values: [{ a: 1 }, { a: 2 }], keyOf: (_, i) => `k${i}`, headers: { trace: 'abc' } },
          { partition: 3, firstOffset: 7, values: [{ a: 3 }] },
        ],
        source,
      );
      const records = decodeKafkaEvent(event);
      expect(records.map((r) => [r.coordinates.partition, r.coordinates.offset])).toEqual([
        [0, 10],
        [0, 11],
        [3, 7],
      ]);
      const [first] = records;
      expect(first.ok).toBe(true);
      if (!first.ok) continue;
      expect(first.coordinates.topic).toBe('ad-events');
      expect(first.key?.toString()).toBe('k0');
      expect(first.headers.get('trace')?.toString()).toBe('abc');
      expect(parseJsonValue(first.value)).toEqual({ a: 1 });
      expect(first.schemaId).toBeUndefined();
    }
  });

  test('strips the Confluent wire header and reports the schema id', () => {
    const [record] = decodeKafkaEvent(kafkaEvent('ad-events', [{ values: [withWireHeader(jsonBytes({ b: 2 }), 65537)] }]));
    expect(record).toMatchObject({ ok: true, schemaId: 65537 });
    expect(record.ok && parseJsonValue(record.value)).toEqual({ b: 2 });
  });

  test('reads Java-style signed header bytes', () => {
    const event = kafkaEvent('ad-events', [{ values: [{}] }]);
    const records = event.records['ad-events-0'] as unknown as Array<{ headers: unknown }>;
    records[0].headers = [{ h: [-61, -87] }]; // "é" as signed bytes
    const [record] = decodeKafkaEvent(event);
    expect(record.ok && record.headers.get('h')?.toString('utf8')).toBe('é');
  });

  test('a bad record is returned as a typed failure with its coordinates; the rest still decode', () => {
    const records = decodeKafkaEvent(kafkaEvent('ad-events', [{ firstOffset: 5, values: [{ base64: '***' }, { ok: true }] }]));
    expect(records[0]).toMatchObject({ ok: false, coordinates: { topic: 'ad-events', partition: 0, offset: 5 }, rawValue: '***' });
    expect(!records[0].ok && records[0].error).toBeInstanceOf(KafkaRecordError);
    expect(!records[0].ok && records[0].error.reason).toBe('INVALID_BASE64');
    expect(records[1].ok).toBe(true);
  });

  test('accepts only canonical padded base64: every malformed padding, length or alphabet is INVALID_BASE64', () => {
    const accepted = ['', 'QQ==', 'QUI=', 'QUJD', 'QUJDRA==', '+/+/'];
    const refused = ['Q', 'QQ', 'QQ=', 'Q===', '====', 'QQ=A', 'Q=Q=', 'QUJD=', 'QUJDR', 'QU-_', 'QUJD\n', ' QUJD', 'QUJ D'];
    const reasons = (values: string[]) =>
      decodeKafkaEvent({ records: { 'ad-events-0': values.map((value, offset) => ({ topic: 'ad-events', partition: 0, offset, value })) } }).map((r) =>
        r.ok ? 'ok' : r.error.reason,
      );
    expect(reasons(accepted)).toEqual(accepted.map(() => 'ok'));
    expect(reasons(refused)).toEqual(refused.map(() => 'INVALID_BASE64'));
  });

  test('decodeBase64 (canonical round trip first) agrees with the character check alone on every text', () => {
    const byCharacterCheck = (text: string) => (text.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined);
    // Non-zero padding bits (QR==, QUJ=) are accepted by the check but are not a canonical encoding.
    const texts = [
      '',
      'QQ==',
      'QR==',
      'QUI=',
      'QUJ=',
      'QUJD',
      '////',
      '+/+/',
      'QU-_',
      'QQ=A',
      'QUJD====',
      'QUJD\n',
      'QUJ\u0000',
      'QUJ\ud800',
      '\ud83d\ude00AA',
      'QUJĀ',
      'Q\tQ=',
    ];
    let seed = 7;
    const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const alphabet = 'AQgw/+=-_ \n\u0000é\ud800\udc00';
    for (let i = 0; i < 20_000; i += 1) {
      texts.push(Array.from({ length: random(10) }, () => alphabet[random(alphabet.length)]).join(''));
    }
    for (let i = 0; i < 2_000; i += 1) {
      const canonical = Buffer.from(Array.from({ length: random(40) }, () => random(256))).toString('base64');
      const at = random(canonical.length + 1);
      texts.push(canonical, canonical.slice(0, at) + alphabet[random(alphabet.length)] + canonical.slice(at + 1));
    }
    const disagreements = texts.filter((text) => {
      const [fast, exact] = [decodeBase64(text), byCharacterCheck(text)];
      return fast === undefined || exact === undefined ? fast !== exact : !fast.equals(exact);
    });
    expect(disagreements).toEqual([]);
    expect(texts.filter((text) => byCharacterCheck(text) !== undefined).length).toBeGreaterThan(2_000);
  });

  test('absurd coordinates still give a storable, unique dead-letter key', () => {
    const records = decodeKafkaEvent({
      records: { 'ad-events-99999999999': [{ topic: 'ad-events', partition: 2 ** 40, value: '!!' }, { value: '!!' }] },
    });
    const [first, second] = records.map((r) => r.coordinates);
    expect(first).toMatchObject({ topic: 'ad-events', partition: -1 });
    expect(second).toMatchObject({ topic: 'ad-events', partition: -1 });
    expect(first.offset).toBeLessThan(0);
    expect(second.offset).toBeLessThan(0);
    expect(Number.isSafeInteger(first.offset)).toBe(true);
    expect(first.offset).not.toBe(second.offset);
    // Stable: the same event decodes to the same coordinates.
    const again = decodeKafkaEvent({
      records: { 'ad-events-99999999999': [{ topic: 'ad-events', partition: 2 ** 40, value: '!!' }, { value: '!!' }] },
    });
    expect(again.map((r) => r.coordinates)).toEqual([first, second]);
  });

  test('fails for an event that is not a Kafka event at all', () => {
    expect(() => decodeKafkaEvent({ Records: [] })).toThrow(KafkaEventShapeError);
    expect(() => decodeKafkaEvent(null)).toThrow(/not a Lambda Kafka event/);
    expect(() => decodeKafkaEvent({ records: { 'ad-events-0': 'x' } })).toThrow(/must be an array/);
  });
});

describe('parseJsonValue and contract checks', () => {
  const reasonOf = (fn: () => unknown): string => {
    try {
      fn();
    } catch (error) {
      if (error instanceof KafkaRecordError) return error.reason;
      throw error;
    }
    return 'accepted';
  };

  test('names the reason of each kind of bad value', () => {
    expect(reasonOf(() => parseJsonValue(null))).toBe('MISSING_VALUE');
    expect(reasonOf(() => parseJsonValue(Buffer.from([0x7b, 0xc3, 0x28, 0x7d])))).toBe('INVALID_UTF8');
    expect(reasonOf(() => parseJsonValue(Buffer.from('{"a":')))).toBe('INVALID_JSON');
    expect(reasonOf(() => parseJsonValue(Buffer.alloc(MAX_VALUE_BYTES + 1, 0x20)))).toBe('OVERSIZED');
    expect(reasonOf(() => parseContractRecord(adEventContract, jsonBytes({ ...clickEvent(1, 1), campaign_id: '1' })))).toBe('CONTRACT_VIOLATION');
    expect(reasonOf(() => parseContractRecord(adEventContract, jsonBytes({ ...clickEvent(1, 1), event_id: 'a\u0000b' })))).toBe('CONTRACT_VIOLATION');
    expect(reasonOf(() => parseContractRecord(adEventContract, jsonBytes(clickEvent(1, 1))))).toBe('accepted');
  });

  test('a decode error carries its cause', () => {
    try {
      parseJsonValue(Buffer.from('nope'));
    } catch (error) {
      expect((error as Error).cause).toBeInstanceOf(SyntaxError);
      return;
    }
    throw new Error('expected a KafkaRecordError');
  });
});
