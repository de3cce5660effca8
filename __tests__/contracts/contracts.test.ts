import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contractsMarkdown } from '../../contracts/markdown';
import { adEventContract, checkAgainst, compensationEventContract, EVENT_CONTRACTS, jsonSchemaOf, valueSubjectOf } from '../../contracts';

const validClick = {
  event_id: 'evt-1',
  event_type: 'CLICK',
  event_ts: 1_763_700_000_000,
  campaign_id: 10,
  advertiser_id: 7,
  product_id: 99,
  ad_id: 'ad-1',
  placement: 'home_top',
  category: 'shoes',
  device_id: 'dev-1',
  actual_price: '120.50',
};

describe('event contracts', () => {
  test('accepts a well-formed click and keeps money as a string', () => {
    const result = checkAgainst(adEventContract, validClick);
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.value.actual_price).toBe('120.50');
  });

  test.each([
    ['event_id', undefined, 'is required'],
    ['event_type', 'TAP', 'must be one of IMPRESSION | CLICK | CONVERSION'],
    ['campaign_id', '10', 'must be an integer'],
    ['campaign_id', 2 ** 60, 'must be an integer'],
    ['advertiser_id', -1, 'must not be negative'],
    ['actual_price', 120.5, 'must be a decimal string'],
    ['actual_price', '1.234', 'must be a decimal string with at most'],
    ['actual_price', '1e5', 'must be a decimal string with at most'],
    ['device_id', 'x'.repeat(129), 'must be at most 128 characters'],
  ])('rejects %s = %p with "%s"', (name, value, reason) => {
    const result = checkAgainst(adEventContract, { ...validClick, [name]: value });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.violations).toContainEqual({ field: name, reason: expect.stringContaining(reason) });
  });

  test('rejects a value that is not an object', () => {
    const result = checkAgainst(compensationEventContract, [1, 2]);
    expect(result).toEqual({ ok: false, violations: [{ field: '$', reason: 'must be a JSON object, got an array' }] });
  });

  test('JSON Schemas are closed, list required fields and map event time to a Connect timestamp', () => {
    const schema = jsonSchemaOf(adEventContract) as {
      required: string[];
      additionalProperties: boolean;
      properties: Record<string, Record<string, unknown>>;
    };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(expect.arrayContaining(['event_id', 'event_type', 'event_ts']));
    expect(schema.required).not.toContain('session_id');
    expect(schema.properties.event_ts).toMatchObject({ title: 'org.apache.kafka.connect.data.Timestamp', 'connect.type': 'int64' });
    expect(schema.properties.session_id).toHaveProperty('oneOf');
  });

  test('every contract has a distinct topic and value subject', () => {
    const subjects = EVENT_CONTRACTS.map(valueSubjectOf);
    expect(new Set(subjects).size).toBe(EVENT_CONTRACTS.length);
    expect(subjects).toContain('compensation-events-value');
  });
});

describe('README contract documentation', () => {
  test('the README holds exactly the generated contract tables', () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const section = readme.split('<!-- contracts:begin -->')[1]?.split('<!-- contracts:end -->')[0];
    expect(section?.trim()).toBe(contractsMarkdown().trim());
  });
});
