/**
 * Deterministic generators of broken record values for the fuzz tests. Every value produced is
 * invalid by construction (garbage bytes, broken JSON, or a valid event with at least one
 * breaking mutation), so a correct handler must dead-letter every one and charge nothing.
 */
import type { AdEvent, CompensationEvent } from '../../../contracts';
import { seededRandom } from '../../../local/traffic';
import type { FixtureValue } from './kafka-fixtures';

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)];
const int = (random: Random, max: number): number => Math.floor(random() * max);

function randomBytes(random: Random, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = int(random, 256);
  return bytes;
}

const WRONG_TYPES: readonly unknown[] = [
  {},
  [],
  true,
  '', // empty: invalid for every string, enum and number field
  1.5,
  -1,
  2 ** 60,
  1e308,
  -9007199254740993,
  [1, 2],
  { nested: { deeper: 'x' } },
];

const BAD_AMOUNTS: readonly unknown[] = [
  '-0.01',
  '-120.00',
  '20000000.00', // absurd
  '99999999999999999999.99', // too many digits
  '1e5',
  '12.345', // too many fraction digits
  'abc',
  ' 12.00',
  120.5, // a JSON number: money must be a string
  '0x10',
  '',
];

const BAD_TIMES: readonly unknown[] = [-1, 0, 1_000, 32_503_680_000_000 /* year 3000 */, 1.5e12 + 0.5, '1763700000000', 2 ** 63];

/** A value of `length` characters, optionally with a NUL inside. */
function longString(random: Random, length: number, withNul = false): string {
  const body = 'x'.repeat(length);
  return withNul ? `${body.slice(0, 5)}\u0000${body.slice(6)}` : body.slice(0, length) + (random() < 0.5 ? '' : 'é');
}

/** Breaks a valid event object in one or more ways that no contract-respecting handler may accept. */
function breakEvent(
  random: Random,
  valid: Record<string, unknown>,
  required: readonly string[],
  amountFields: readonly string[],
  timeFields: readonly string[],
  stringFields: readonly string[],
): Record<string, unknown> {
  const broken: Record<string, unknown> = { ...valid };
  const mutations = 1 + int(random, 3);
  for (let m = 0; m < mutations; m++) {
    switch (int(random, 8)) {
      case 0:
        delete broken[pick(random, required)];
        break;
      case 1:
        broken[pick(random, required)] = pick(random, WRONG_TYPES);
        break;
      case 2:
        broken[pick(random, amountFields)] = pick(random, BAD_AMOUNTS);
        break;
      case 3:
        broken[pick(random, timeFields)] = pick(random, BAD_TIMES);
        break;
      case 4:
        broken[pick(random, stringFields)] = longString(random, 129 + int(random, 20_000));
        break;
      case 5:
        broken[pick(random, stringFields)] = longString(random, 20, true);
        break;
      case 6:
        broken[pick(random, required)] = null;
        break;
      default: {
        // A numeric string where a JSON integer is required.
        const numeric = Object.keys(valid).filter((k) => typeof valid[k] === 'number');
        broken[pick(random, numeric)] = '12';
        break;
      }
    }
  }
  return broken;
}

/** Garbage that is not a JSON object event at all. */
function garbage(random: Random, validJson: string): FixtureValue {
  switch (int(random, 10)) {
    case 0:
      return randomBytes(random, int(random, 300));
    case 1:
      return Buffer.from(validJson.slice(0, int(random, validJson.length))); // truncated JSON
    case 2:
      return { base64: pick(random, ['!!!!', 'abc', '====', 'YWJj\u0000', '\u00ff\u00fe', 'a'.repeat(5), '%%%']) };
    case 3:
      return Buffer.concat([Buffer.from(validJson.slice(0, 10)), Buffer.from([0xc3, 0x28]), Buffer.from(validJson.slice(10))]); // invalid UTF-8
    case 4:
      return null; // tombstone
    case 5:
      return Buffer.from(pick(random, ['[]', '42', '"CLICK"', 'null', 'true', '{}', '[{"event_type":"CLICK"}]']));
    case 6:
      return Buffer.from('['.repeat(5000) + ']'.repeat(5000));
    case 7:
      return Buffer.from(`{"pad":"${'y'.repeat(70_000)}"}`); // oversized
    case 8:
      return Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), randomBytes(random, int(random, 50))]); // wire header + garbage
    default:
      return Buffer.alloc(0);
  }
}

const AD_REQUIRED = ['event_id', 'event_type', 'event_ts', 'campaign_id', 'advertiser_id', 'product_id', 'ad_id', 'placement', 'category', 'device_id'];
// Only fields a click depends on: the informational ones (session_id, user_id, actual_price) are
// dropped when malformed and the click is charged (see informationalOnlyBrokenClicks).
const AD_STRINGS = ['event_id', 'ad_id', 'placement', 'category', 'device_id'];

/** `count` broken ad-event values derived from `validClick` (a CLICK that would be charged). */
export function brokenAdEventValues(seed: number, count: number, validClick: (i: number) => AdEvent): FixtureValue[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const valid = validClick(i) as unknown as Record<string, unknown>;
    if (random() < 0.35) return garbage(random, JSON.stringify(valid));
    return breakEvent(random, valid, AD_REQUIRED, ['campaign_id', 'advertiser_id', 'product_id'], ['event_ts'], AD_STRINGS);
  });
}

/**
 * `count` valid clicks whose informational fields only (session_id, user_id, actual_price,
 * revenue_amount) are malformed in every way the other generators use: each must be charged.
 */
export function informationalOnlyBrokenClicks(seed: number, count: number, validClick: (i: number) => AdEvent): FixtureValue[] {
  const random = seededRandom(seed);
  const informational = ['session_id', 'user_id', 'actual_price', 'revenue_amount'];
  return Array.from({ length: count }, (_, i) => {
    const click = { ...(validClick(i) as unknown as Record<string, unknown>) };
    const mutations = 1 + int(random, 3);
    for (let m = 0; m < mutations; m++) {
      const name = pick(random, informational);
      switch (int(random, 4)) {
        case 0:
          click[name] = pick(random, WRONG_TYPES);
          break;
        case 1:
          click[name] = pick(random, BAD_AMOUNTS);
          break;
        case 2:
          click[name] = longString(random, 129 + int(random, 2_000));
          break;
        default:
          click[name] = longString(random, 20, true);
      }
    }
    return click;
  });
}

const COMP_REQUIRED = [
  'compensation_id',
  'duplicate_event_id',
  'original_event_id',
  'advertiser_id',
  'campaign_id',
  'ad_id',
  'device_id',
  'duplicate_event_ts',
  'original_event_ts',
  'reason',
  'compensation_type',
];
const COMP_STRINGS = ['compensation_id', 'duplicate_event_id', 'original_event_id', 'ad_id', 'device_id'];

/** `count` broken compensation values derived from `valid` (one that would refund a click). */
export function brokenCompensationValues(seed: number, count: number, valid: (i: number) => CompensationEvent): FixtureValue[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const event = valid(i) as unknown as Record<string, unknown>;
    if (random() < 0.35) return garbage(random, JSON.stringify(event));
    // refund_amount is informational (an unusable quote is dropped and the duplicate refunded,
    // as click-balance charges a click whose actual_price is dropped): a bad amount goes where
    // a JSON integer is required.
    return breakEvent(random, event, COMP_REQUIRED, ['advertiser_id', 'campaign_id'], ['duplicate_event_ts', 'original_event_ts'], COMP_STRINGS);
  });
}
