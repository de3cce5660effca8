import { defineContract, RecordOfContract } from './contract';
import { field } from './fields';

/** Values of `ad_events.event_type`. */
export const AD_EVENT_TYPES = ['IMPRESSION', 'CLICK', 'CONVERSION'] as const;

/** Values of `campaign_events.event_type`. */
export const CAMPAIGN_EVENT_TYPES = ['CAMPAIGN_CREATED', 'CAMPAIGN_UPDATED', 'CAMPAIGN_PAUSED', 'CAMPAIGN_RESUMED', 'CAMPAIGN_DELETED'] as const;

/** Values of `campaign_events.status`; only `ACTIVE` campaigns are ranked. */
export const CAMPAIGN_STATUSES = ['ACTIVE', 'PAUSED', 'DELETED'] as const;

/** Impressions, clicks and conversions from the ad server: the charge path reads the CLICKs. */
export const adEventContract = defineContract({
  name: 'AdEvent',
  topic: 'ad-events',
  description: 'One impression, click or attributed conversion served by the ad server.',
  fields: {
    event_id: field.string('Unique id of this event; the idempotency key of its charge.', true, 64),
    event_type: field.enum('What happened.', true, AD_EVENT_TYPES),
    event_ts: field.timestampMillis('When it happened on the ad server (epoch ms, UTC); the event time.', true),
    campaign_id: field.int64('Campaign the ad belongs to.', true),
    advertiser_id: field.int64('Advertiser who pays for the campaign.', true),
    product_id: field.int64('Advertised product.', true),
    ad_id: field.string('Creative that was shown or clicked.', true, 64),
    placement: field.string('Slot the ad was served in (e.g. home_top).', true, 64),
    category: field.string('Product category of the slot.', true, 64),
    device_id: field.string('Device identifier of the viewer.', true, 128),
    session_id: field.string('Browsing session of the viewer.', false, 128),
    user_id: field.string('Logged-in user, if any.', false, 128),
    actual_price: field.decimal('Price the ad server quoted for a CLICK; informational, the charge uses the campaign CPC.', false),
    revenue_amount: field.decimal('Order value of a CONVERSION.', false),
  },
});

/** Campaign lifecycle and bid changes; the worker also writes PAUSED / RESUMED here. */
export const campaignEventContract = defineContract({
  name: 'CampaignEvent',
  topic: 'campaign-events',
  description: 'A change of a campaign: its definition (bid, slot, product) or its status.',
  fields: {
    event_id: field.string('Unique id of this event; consumers deduplicate on it.', true, 64),
    event_type: field.enum('Kind of change.', true, CAMPAIGN_EVENT_TYPES),
    event_ts: field.timestampMillis('When the change took effect (epoch ms, UTC).', true),
    campaign_id: field.int64('Campaign that changed; the Kafka key.', true),
    advertiser_id: field.int64('Owner of the campaign.', true),
    status: field.enum('Status after the change.', true, CAMPAIGN_STATUSES),
    product_id: field.int64('Advertised product; absent on status-only events.', false),
    placement: field.string('Slot the campaign bids on; absent on status-only events.', false, 64),
    category: field.string('Category the campaign bids in; absent on status-only events.', false, 64),
    bid_price: field.decimal('Bid per click; absent on status-only events.', false),
    reason: field.string('Why the status changed (e.g. BUDGET_EXHAUSTED).', false, 64),
  },
});

/** Orders placed on the shop, the input of last-click attribution. */
export const conversionEventContract = defineContract({
  name: 'ConversionEvent',
  topic: 'conversion-events',
  description: 'An order of one product, to be attributed to the last click before it.',
  fields: {
    event_id: field.string('Unique id of this event.', true, 64),
    order_id: field.string('Order id; attribution emits exactly one row per order.', true, 64),
    event_ts: field.timestampMillis('When the order was placed (epoch ms, UTC); the event time.', true),
    product_id: field.int64('Ordered product.', true),
    device_id: field.string('Device the order came from.', false, 128),
    session_id: field.string('Session the order came from.', false, 128),
    user_id: field.string('Logged-in user, if any.', false, 128),
    revenue_amount: field.decimal('Order value.', true),
  },
});

/** Refund orders for duplicate clicks, written by the duplicate-click Flink statement. */
export const compensationEventContract = defineContract({
  name: 'CompensationEvent',
  topic: 'compensation-events',
  description: 'A duplicate click to refund; the worker refunds what it actually charged for it.',
  fields: {
    compensation_id: field.string('Deterministic id derived from the duplicate click; the refund idempotency key.', true, 64),
    duplicate_event_id: field.string('event_id of the click to refund.', true, 64),
    original_event_id: field.string('event_id of the earlier click it duplicates.', true, 64),
    advertiser_id: field.int64('Advertiser to refund.', true),
    campaign_id: field.int64('Campaign whose day spend is restored.', true),
    ad_id: field.string('Creative clicked twice.', true, 64),
    device_id: field.string('Device that clicked twice.', true, 128),
    duplicate_event_ts: field.timestampMillis('When the duplicate click happened (epoch ms, UTC).', true),
    original_event_ts: field.timestampMillis('When the original click happened (epoch ms, UTC).', true),
    refund_amount: field.decimal('Quoted price of the duplicate click; informational only.', false),
    reason: field.enum('Why it is refunded.', true, ['DUPLICATE_CLICK_DETECTED'] as const),
    compensation_type: field.enum('What to do.', true, ['BALANCE_REFUND'] as const),
  },
});

/** The product catalogue feed: current price per product (compacted topic). */
export const productCatalogContract = defineContract({
  name: 'ProductCatalogEntry',
  topic: 'product-catalog',
  description: 'The current price and category of a product; the latest record per product wins.',
  fields: {
    product_id: field.int64('Product; the Kafka key.', true),
    price: field.decimal('Current selling price, used by the ranking score.', true),
    category: field.string('Catalogue category.', false, 64),
    updated_ts: field.timestampMillis('When the catalogue changed (epoch ms, UTC).', true),
  },
});

/** Every contract registered in Schema Registry, in documentation order. */
export const EVENT_CONTRACTS = [adEventContract, campaignEventContract, conversionEventContract, compensationEventContract, productCatalogContract] as const;

/** An ad event after validation. */
export type AdEvent = RecordOfContract<typeof adEventContract>;
/** A campaign event after validation. */
export type CampaignEvent = RecordOfContract<typeof campaignEventContract>;
/** A conversion (order) event after validation. */
export type ConversionEvent = RecordOfContract<typeof conversionEventContract>;
/** A compensation (refund) event after validation. */
export type CompensationEvent = RecordOfContract<typeof compensationEventContract>;
/** A product catalogue entry after validation. */
export type ProductCatalogEntry = RecordOfContract<typeof productCatalogContract>;
