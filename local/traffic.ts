// The seeded traffic of a local pipeline run and its ground truth. Everything is generated up
// front from the seed (same seed, same records, same truth), then produced at the requested
// rate. Money is kept in exact minor units (bigint cents); the truth is derived from the records
// by the pipeline's own rules (a click is a duplicate when the previous click of its device,
// campaign and ad is less than 5 minutes older; an order goes to the latest earlier click on its
// product from its device or session within 24 h), not from the generator's intentions, so a
// chance collision in the random traffic is judged the way the pipeline judges it.
import type { AdEvent, CampaignEvent, ConversionEvent, ProductCatalogEntry } from '../contracts';

/** Options of {@link generateTraffic}. */
export interface TrafficOptions {
  /** Number of ad and conversion events (bad records and trailing events not included). */
  readonly events: number;
  /** Seed of the generator. */
  readonly seed: number;
  /** Wall clock at generation (epoch ms). */
  readonly now: number;
  /** IANA zone of the budget day. */
  readonly budgetTimeZone: string;
  /** Event time between two consecutive events, ms. @default 200 */
  readonly spacingMs?: number;
  /** Some bad clicks quote a price that is not a number (`'twelve'`) instead of a negative one. @default false */
  readonly malformedPrices?: boolean;
}

/** One record to produce. */
export interface TrafficRecord {
  /** Contract topic (unprefixed). */
  readonly topic: 'ad-events' | 'conversion-events' | 'campaign-events' | 'product-catalog';
  /** Record key. */
  readonly key: string | null;
  /** JSON value, or raw bytes for a bad record. */
  readonly value: Record<string, unknown> | Buffer;
  /** Explicit partition (trailing records), else by key. */
  readonly partition?: number;
}

/** A seeded campaign. */
export interface TrafficCampaign {
  readonly campaignId: number;
  readonly advertiserId: number;
  /** Cost per click, cents. */
  readonly cpcCents: bigint;
  /** Daily budget, cents; null = no budget. */
  readonly dailyBudgetCents: bigint | null;
  readonly productId: number;
  readonly placement: string;
  readonly category: string;
  /** Bid after the campaign changes (the database row carries it). */
  readonly bidCents: bigint;
  /** DELETED campaigns get no traffic and no ranking. */
  readonly status: 'ACTIVE' | 'DELETED';
}

/** What the pipeline must end up with. */
export interface TrafficTruth {
  /** Valid clicks: event id → campaign. */
  readonly clicks: ReadonlyMap<string, number>;
  /** Groups of clicks in the same millisecond on the same key: all but one are duplicates. */
  readonly sameMillisecondGroups: readonly (readonly string[])[];
  /** Duplicates that are not in a same-millisecond group (exact ids). */
  readonly duplicates: ReadonlySet<string>;
  /** Clicks that must never be refunded (originals outside same-millisecond groups). */
  readonly originals: ReadonlySet<string>;
  /** Number of duplicate clicks (refunds expected). */
  readonly duplicateCount: number;
  /** Expected balance per advertiser, cents. */
  readonly balances: ReadonlyMap<number, bigint>;
  /** Initial balance per advertiser, cents. */
  readonly initialBalances: ReadonlyMap<number, bigint>;
  /** Expected net day spend per campaign, cents (one budget day). */
  readonly daySpend: ReadonlyMap<number, bigint>;
  /** Budget day of every event (YYYY-MM-DD). */
  readonly budgetDay: string;
  /** Campaigns that must end PAUSED (budget exhausted). */
  readonly paused: ReadonlySet<number>;
  /** Expected ranked campaigns per `placement|category`, for slots with an active campaign. */
  readonly rankings: ReadonlyMap<string, ReadonlySet<number>>;
  /** Orders → the click ids that may be attributed (several only on an exact tie); absent = none. */
  readonly attributions: ReadonlyMap<string, ReadonlySet<string>>;
  /** Bad records produced to ad-events (each must be dead-lettered once). */
  readonly badRecords: number;
  /** Clicks produced across a 5-minute window boundary from their original. */
  readonly acrossWindowDuplicates: number;
  /** Same-millisecond duplicates. */
  readonly sameMillisecondDuplicates: number;
}

/** A generated run. */
export interface Traffic {
  readonly campaigns: readonly TrafficCampaign[];
  readonly advertisers: readonly { readonly advertiserId: number; readonly balanceCents: bigint }[];
  /** Campaign definitions and catalogue, produced before the traffic. */
  readonly setup: readonly TrafficRecord[];
  /** Ad and conversion events in event-time order, bad records among them. */
  readonly events: readonly TrafficRecord[];
  /** Event time of the first and last event. */
  readonly startTs: number;
  readonly endTs: number;
  readonly truth: TrafficTruth;
}

/** mulberry32: a small, seedable PRNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cents as a decimal string (`1234n` → `"12.34"`). */
export function centsText(cents: bigint): string {
  const negative = cents < 0n;
  const abs = negative ? -cents : cents;
  const text = `${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
  return negative ? `-${text}` : text;
}

/** A decimal string as exact micro-units (6 places); throws on anything else. */
export function decimalMicros(text: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!match) throw new Error(`not an exact decimal: ${text}`);
  const micros = BigInt(match[2]) * 1_000_000n + BigInt((match[3] ?? '').padEnd(6, '0') || '0');
  return match[1] === '-' ? -micros : micros;
}

/** Calendar day of `ts` in `timeZone`. */
export function dayOf(ts: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(ts);
}

/** [start, end) epoch ms of the calendar day containing `ts` in `timeZone`. */
export function dayBounds(ts: number, timeZone: string): [number, number] {
  const day = dayOf(ts, timeZone);
  let start = ts - (ts % 60_000);
  while (dayOf(start - 60_000, timeZone) === day) start -= 60_000;
  let end = ts - (ts % 60_000) + 60_000;
  while (dayOf(end, timeZone) === day) end += 60_000;
  return [start, end];
}

/** Raised when the requested run does not fit (e.g. its event time would cross the budget day). */
export class TrafficError extends Error {
  override readonly name = 'TrafficError';
}

const PLACEMENTS = ['home_top', 'search_top', 'sidebar'];
const CATEGORIES = ['shoes', 'bags', 'hats'];
const FIVE_MINUTES = 5 * 60_000;

interface Click {
  readonly id: string;
  readonly ts: number;
  readonly campaign: TrafficCampaign;
  readonly device: string;
  readonly session: string;
  readonly ad: string;
}

/** Generates a run's records and truth from a seed. */
export function generateTraffic(options: TrafficOptions): Traffic {
  const random = seededRandom(options.seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const spacing = options.spacingMs ?? 200;
  const span = options.events * spacing;
  const [dayStart, dayEnd] = dayBounds(options.now, options.budgetTimeZone);
  // Event time ends a minute before now (or starts just after the budget day began), and the
  // whole run, with the trailing records, stays inside one budget day.
  // Aligned to a 5-minute boundary, so a seed gives the same traffic (relative to its 5-minute
  // windows) whenever it runs.
  const startTs = Math.ceil(Math.max(dayStart + 60_000, options.now - span - 6 * 60_000) / FIVE_MINUTES) * FIVE_MINUTES;
  const endTs = startTs + span;
  if (endTs + 15 * 60_000 >= dayEnd || endTs > options.now + 12 * 3_600_000) {
    throw new TrafficError(
      `${options.events} events span ${Math.round(span / 60_000)} min of event time, which would cross midnight in ${options.budgetTimeZone}; use fewer events or --spacing-ms`,
    );
  }
  const budgetDay = dayOf(startTs, options.budgetTimeZone);
  const tag = `s${options.seed}-${(options.now % 2_176_782_336).toString(36)}`;

  // Advertisers and campaigns.
  const advertiserCount = Math.max(3, Math.min(40, Math.round(options.events / 1500)));
  const advertisers = Array.from({ length: advertiserCount }, (_, i) => ({ advertiserId: 1001 + i, balanceCents: BigInt(100_000 + int(900_000)) * 100n }));
  const campaignsDraft: Array<Omit<TrafficCampaign, 'dailyBudgetCents'>> = [];
  for (const advertiser of advertisers) {
    for (let k = 0; k < 3; k += 1) {
      const id = advertiser.advertiserId * 10 + k;
      campaignsDraft.push({
        campaignId: id,
        advertiserId: advertiser.advertiserId,
        cpcCents: BigInt(5 + int(1500)),
        productId: 50_000 + id,
        placement: pick(PLACEMENTS),
        category: pick(CATEGORIES),
        bidCents: BigInt(100 + int(5000)),
        status: 'ACTIVE',
      });
    }
  }
  // One deleted campaign: it gets no traffic and must not be ranked.
  const deleted = campaignsDraft[campaignsDraft.length - 1];
  campaignsDraft[campaignsDraft.length - 1] = { ...deleted, status: 'DELETED' };
  const active = campaignsDraft.filter((c) => c.status === 'ACTIVE');

  // Ad events, in event time.
  const devices = Array.from({ length: Math.max(200, Math.round(options.events / 3)) }, (_, i) => `dev-${tag}-${i}`);
  const sessionOf = (device: string, ts: number) => `${device}-s${Math.floor(ts / 3_600_000)}`;
  const pending: Array<{ ts: number; make: () => TrafficRecord }> = [];
  const clicks: Click[] = [];
  let serial = 0;
  const nextId = (kind: string) => `${kind}-${tag}-${(serial++).toString(36)}`;
  let acrossWindow = 0;
  let sameMs = 0;
  const adEvent = (
    type: AdEvent['event_type'],
    c: Omit<TrafficCampaign, 'dailyBudgetCents'>,
    ts: number,
    device: string,
    ad: string,
    id: string,
    extra: Partial<AdEvent> = {},
  ): TrafficRecord => ({
    topic: 'ad-events',
    key: String(c.campaignId),
    value: {
      event_id: id,
      event_type: type,
      event_ts: ts,
      campaign_id: c.campaignId,
      advertiser_id: c.advertiserId,
      product_id: c.productId,
      ad_id: ad,
      placement: c.placement,
      category: c.category,
      device_id: device,
      session_id: sessionOf(device, ts),
      ...extra,
    },
  });
  const click = (c: Omit<TrafficCampaign, 'dailyBudgetCents'>, ts: number, device: string, ad: string) => {
    const id = nextId('clk');
    clicks.push({ id, ts, campaign: c as TrafficCampaign, device, session: sessionOf(device, ts), ad });
    pending.push({ ts, make: () => adEvent('CLICK', c, ts, device, ad, id, { actual_price: centsText(c.cpcCents) }) });
  };
  const conversions: Array<{ orderId: string; ts: number; productId: number; device: string; session: string }> = [];
  for (let i = 0; i < options.events; i += 1) {
    const ts = startTs + i * spacing + int(spacing);
    const c = pick(active);
    const device = pick(devices);
    const ad = `ad-${c.campaignId}-${int(2)}`;
    const roll = random();
    if (roll < 0.5) {
      pending.push({ ts, make: () => adEvent('IMPRESSION', c, ts, device, ad, nextId('imp')) });
    } else if (roll < 0.95) {
      click(c, ts, device, ad);
      const dup = random();
      if (dup < 0.1) {
        // A double click within 5 minutes: some in the same millisecond, some across a 5-minute window boundary.
        const kind = random();
        let at: number;
        const boundary = Math.ceil((ts + 1) / FIVE_MINUTES) * FIVE_MINUTES;
        if (kind < 0.25) {
          at = ts;
          sameMs += 1;
        } else if (kind < 0.55 && boundary - ts < FIVE_MINUTES - 5_000) {
          at = boundary + 1 + int(2_000);
          acrossWindow += 1;
        } else {
          at = ts + 500 + int(FIVE_MINUTES - 10_000);
        }
        if (at <= endTs) click(c, at, device, ad);
      } else if (dup < 0.12) {
        // Same device, campaign and ad again after more than 5 minutes: not a duplicate.
        const at = ts + FIVE_MINUTES + 5_000 + int(60_000);
        if (at <= endTs) click(c, at, device, ad);
      }
      if (random() < 0.15) {
        const at = ts + 2_000 + int(90_000);
        if (at <= endTs) conversions.push({ orderId: nextId('ord'), ts: at, productId: c.productId, device, session: sessionOf(device, ts) });
      }
    } else {
      // An order nobody clicked for.
      conversions.push({ orderId: nextId('ord'), ts, productId: pick(active).productId, device: `dev-${tag}-nobody-${i}`, session: `nobody-${i}` });
    }
  }
  for (const o of conversions) {
    pending.push({
      ts: o.ts,
      make: () => ({
        topic: 'conversion-events',
        key: o.orderId,
        value: {
          event_id: nextId('cnv'),
          order_id: o.orderId,
          event_ts: o.ts,
          product_id: o.productId,
          device_id: o.device,
          session_id: o.session,
          revenue_amount: centsText(BigInt(1000 + int(200_000))),
        },
      }),
    });
  }
  // A few bad records on ad-events, each dead-lettered by click-balance; Flink skips the unreadable two kinds.
  const badRecords = Math.max(3, Math.round(options.events / 1000)) * 3;
  for (let b = 0; b < badRecords; b += 1) {
    const ts = startTs + int(span);
    const c = pick(active);
    const kind = b % 3;
    pending.push({
      ts,
      make: () => {
        if (kind === 0) return { topic: 'ad-events', key: String(c.campaignId), value: Buffer.from(`{"event_id": "bad-${b}", "event_type": "CLI`) };
        // An event type the contract does not know: the worker dead-letters it (a malformed
        // informational field such as a negative or non-numeric quoted price no longer does: the
        // click is charged with the field dropped). Flink reads it and ignores it as not a CLICK.
        // --malformed-prices also gives it a price that is not a number ('twelve'), which fails a
        // statement that CASTs it instead of TRY_CAST.
        if (kind === 1)
          return adEvent('CLIK' as 'CLICK', c, ts, `dev-${tag}-bad-${b}`, 'ad-bad', nextId('bad'), options.malformedPrices ? { actual_price: 'twelve' } : {});
        const record = adEvent('CLICK', c, ts, `dev-${tag}-bad-${b}`, 'ad-bad', nextId('bad'));
        const { campaign_id: _omit, ...value } = record.value as Record<string, unknown>;
        return { ...record, value };
      },
    });
  }
  pending.sort((a, b) => a.ts - b.ts);
  const events = pending.map((p) => p.make());

  // Truth: duplicates by the rule, per (device, campaign, ad), in event time.
  const byKey = new Map<string, Click[]>();
  for (const c of clicks) {
    const key = `${c.device}|${c.campaign.campaignId}|${c.ad}`;
    const list = byKey.get(key) ?? [];
    list.push(c);
    byKey.set(key, list);
  }
  const duplicates = new Set<string>();
  const originals = new Set<string>();
  const groups: string[][] = [];
  let duplicateCount = 0;
  const dupPerCampaign = new Map<number, number>();
  for (const list of byKey.values()) {
    list.sort((a, b) => a.ts - b.ts);
    let previousTs: number | undefined;
    for (let i = 0; i < list.length;) {
      let j = i;
      while (j < list.length && list[j].ts === list[i].ts) j += 1;
      const peers = list.slice(i, j);
      const campaignId = list[i].campaign.campaignId;
      const withinPrevious = previousTs !== undefined && list[i].ts < previousTs + FIVE_MINUTES;
      if (peers.length > 1) {
        groups.push(peers.map((p) => p.id));
        if (withinPrevious) for (const p of peers) duplicates.add(p.id);
        const count = withinPrevious ? peers.length : peers.length - 1;
        duplicateCount += count;
        dupPerCampaign.set(campaignId, (dupPerCampaign.get(campaignId) ?? 0) + count);
      } else if (withinPrevious) {
        duplicates.add(peers[0].id);
        duplicateCount += 1;
        dupPerCampaign.set(campaignId, (dupPerCampaign.get(campaignId) ?? 0) + 1);
      } else {
        originals.add(peers[0].id);
      }
      previousTs = list[i].ts;
      i = j;
    }
  }
  // A same-millisecond group after a recent click: every member is a duplicate (no ambiguity).
  const ambiguousGroups = groups.filter((g) => !g.every((id) => duplicates.has(id)));

  // Budgets: a third of the campaigns exhaust theirs (budget well below their net spend), the
  // rest can never reach theirs (budget above their gross spend), so the pauses are exact
  // whatever order charges and refunds take.
  const clicksPerCampaign = new Map<number, number>();
  for (const c of clicks) clicksPerCampaign.set(c.campaign.campaignId, (clicksPerCampaign.get(c.campaign.campaignId) ?? 0) + 1);
  const paused = new Set<number>();
  const campaigns: TrafficCampaign[] = campaignsDraft.map((c, index) => {
    const gross = BigInt(clicksPerCampaign.get(c.campaignId) ?? 0) * c.cpcCents;
    const net = BigInt((clicksPerCampaign.get(c.campaignId) ?? 0) - (dupPerCampaign.get(c.campaignId) ?? 0)) * c.cpcCents;
    let dailyBudgetCents: bigint | null;
    if (c.status === 'ACTIVE' && index % 3 === 0 && net >= 200n) {
      dailyBudgetCents = (net * 6n) / 10n;
      paused.add(c.campaignId);
    } else if (index % 3 === 1) {
      dailyBudgetCents = null;
    } else {
      dailyBudgetCents = gross * 2n + 100_000n;
    }
    return { ...c, dailyBudgetCents };
  });

  const balances = new Map<number, bigint>();
  const daySpend = new Map<number, bigint>();
  for (const a of advertisers) balances.set(a.advertiserId, a.balanceCents);
  for (const c of campaigns) {
    const net = BigInt((clicksPerCampaign.get(c.campaignId) ?? 0) - (dupPerCampaign.get(c.campaignId) ?? 0)) * c.cpcCents;
    if ((clicksPerCampaign.get(c.campaignId) ?? 0) > 0) daySpend.set(c.campaignId, net);
    balances.set(c.advertiserId, (balances.get(c.advertiserId) ?? 0n) - net);
  }

  // Rankings: every slot with an active, unpaused campaign ranks exactly those campaigns.
  const rankings = new Map<string, Set<number>>();
  for (const c of campaigns) {
    if (c.status !== 'ACTIVE' || paused.has(c.campaignId)) continue;
    const key = `${c.placement}|${c.category}`;
    const set = rankings.get(key) ?? new Set<number>();
    set.add(c.campaignId);
    rankings.set(key, set);
  }

  // Attributions: the latest earlier click (< order, ≥ order - 24 h) on the product by device or session.
  const clicksByProduct = new Map<number, Click[]>();
  for (const c of clicks) {
    const list = clicksByProduct.get(c.campaign.productId) ?? [];
    list.push(c);
    clicksByProduct.set(c.campaign.productId, list);
  }
  const attributions = new Map<string, Set<string>>();
  for (const o of conversions) {
    const candidates = (clicksByProduct.get(o.productId) ?? []).filter(
      (c) => c.ts < o.ts && c.ts >= o.ts - 24 * 3_600_000 && (c.device === o.device || c.session === o.session),
    );
    if (candidates.length === 0) continue;
    const latest = Math.max(...candidates.map((c) => c.ts));
    attributions.set(o.orderId, new Set(candidates.filter((c) => c.ts === latest).map((c) => c.id)));
  }

  // Setup: catalogue and campaign definitions (wall-clock times before the run), then bid changes.
  const setup: TrafficRecord[] = [];
  const setupTs = options.now - 10 * 60_000;
  for (const c of campaigns) {
    const entry: ProductCatalogEntry = { product_id: c.productId, price: centsText(BigInt(1000 + int(100_000))), category: c.category, updated_ts: setupTs };
    setup.push({ topic: 'product-catalog', key: String(c.productId), value: entry as unknown as Record<string, unknown> });
  }
  for (const c of campaigns) {
    const created: CampaignEvent = {
      event_id: nextId('cmp'),
      event_type: 'CAMPAIGN_CREATED',
      event_ts: setupTs,
      campaign_id: c.campaignId,
      advertiser_id: c.advertiserId,
      status: 'ACTIVE',
      product_id: c.productId,
      placement: c.placement,
      category: c.category,
      bid_price: centsText(c.bidCents + 100n),
    };
    setup.push({ topic: 'campaign-events', key: String(c.campaignId), value: created as unknown as Record<string, unknown> });
  }
  campaigns.forEach((c, i) => {
    const update: CampaignEvent = {
      event_id: nextId('cmp'),
      event_type: c.status === 'DELETED' ? 'CAMPAIGN_DELETED' : 'CAMPAIGN_UPDATED',
      event_ts: setupTs + 60_000 + i,
      campaign_id: c.campaignId,
      advertiser_id: c.advertiserId,
      status: c.status,
      product_id: c.productId,
      placement: c.placement,
      category: c.category,
      bid_price: centsText(c.bidCents),
    };
    setup.push({ topic: 'campaign-events', key: String(c.campaignId), value: update as unknown as Record<string, unknown> });
  });
  for (const c of campaigns.filter((_, i) => i % 4 === 0)) {
    const entry: ProductCatalogEntry = {
      product_id: c.productId,
      price: centsText(BigInt(1000 + int(100_000))),
      category: c.category,
      updated_ts: setupTs + 120_000,
    };
    setup.push({ topic: 'product-catalog', key: String(c.productId), value: entry as unknown as Record<string, unknown> });
  }

  const clickMap = new Map<string, number>();
  for (const c of clicks) clickMap.set(c.id, c.campaign.campaignId);
  const truth: TrafficTruth = {
    clicks: clickMap,
    sameMillisecondGroups: ambiguousGroups,
    duplicates,
    originals,
    duplicateCount,
    balances,
    initialBalances: new Map(advertisers.map((a) => [a.advertiserId, a.balanceCents])),
    daySpend,
    budgetDay,
    paused,
    rankings,
    attributions,
    badRecords,
    acrossWindowDuplicates: acrossWindow,
    sameMillisecondDuplicates: sameMs,
  };
  void (null as unknown as ConversionEvent);
  return { campaigns, advertisers, setup, events, startTs, endTs, truth };
}

/**
 * Records after the traffic that advance event time on every partition of the event-time
 * topics, so every window, interval join and OVER window of the run closes (Confluent's
 * watermarks are per partition, and a quiet partition holds them back). Impressions and orders
 * of a sentinel device: charged nothing, attributed to nothing.
 */
export function trailingEventRecords(traffic: Traffic, partitions: { adEvents: number; conversionEvents: number }, tag: string): TrafficRecord[] {
  const ts = traffic.endTs + 10 * 60_000;
  const c = traffic.campaigns[0];
  const out: TrafficRecord[] = [];
  for (let p = 0; p < partitions.adEvents; p += 1) {
    out.push({
      topic: 'ad-events',
      key: null,
      partition: p,
      value: {
        event_id: `trail-${tag}-imp-${p}`,
        event_type: 'IMPRESSION',
        event_ts: ts + p,
        campaign_id: c.campaignId,
        advertiser_id: c.advertiserId,
        product_id: c.productId,
        ad_id: 'trail',
        placement: c.placement,
        category: c.category,
        device_id: `trail-${tag}`,
      },
    });
  }
  for (let p = 0; p < partitions.conversionEvents; p += 1) {
    out.push({
      topic: 'conversion-events',
      key: null,
      partition: p,
      value: {
        event_id: `trail-${tag}-cnv-${p}`,
        order_id: `trail-${tag}-${p}`,
        event_ts: ts + p,
        product_id: 1,
        device_id: `trail-${tag}`,
        revenue_amount: '0.00',
      },
    });
  }
  return out;
}

/**
 * Records that advance event time on every partition of `campaign-events` and `product-catalog`
 * after the workers' own campaign events (pauses), for statements that read them in event time:
 * a deleted sentinel campaign and a sentinel product, never ranked.
 */
export function trailingCatalogRecords(partitions: { campaignEvents: number; productCatalog: number }, now: number, tag: string): TrafficRecord[] {
  const out: TrafficRecord[] = [];
  for (let p = 0; p < partitions.campaignEvents; p += 1) {
    out.push({
      topic: 'campaign-events',
      key: String(9_000_000 + p),
      partition: p,
      value: {
        event_id: `trail-${tag}-cmp-${p}`,
        event_type: 'CAMPAIGN_DELETED',
        event_ts: now + 5 * 60_000,
        campaign_id: 9_000_000 + p,
        advertiser_id: 1,
        status: 'DELETED',
      },
    });
  }
  for (let p = 0; p < partitions.productCatalog; p += 1) {
    out.push({
      topic: 'product-catalog',
      key: String(9_000_000 + p),
      partition: p,
      value: { product_id: 9_000_000 + p, price: '0.00', updated_ts: now + 5 * 60_000 },
    });
  }
  return out;
}
