/**
 * Typed errors of the worker Lambdas. Two families, matching the failure policy:
 * - record errors (`KafkaRecordError`) are about one bad record: it is dead-lettered and the
 *   batch goes on;
 * - infrastructure errors (`ConfigError`, `DatabaseUnavailableError`, `SecretError`) are thrown
 *   so Lambda retries the whole batch, with nothing half-applied.
 */

/** Why a record went to the dead-letter table instead of being applied. */
export type DeadLetterReason =
  | 'MISSING_VALUE'
  | 'INVALID_BASE64'
  | 'OVERSIZED'
  | 'INVALID_UTF8'
  | 'INVALID_JSON'
  | 'CONTRACT_VIOLATION'
  /**
   * No handler records it now: compensations dead-lettered for their quote before `refund_amount`
   * became informational; `npm run redrive -- --cause ABSURD_AMOUNT` refunds them.
   */
  | 'ABSURD_AMOUNT'
  | 'ABSURD_TIMESTAMP'
  | 'UNKNOWN_CAMPAIGN'
  | 'ADVERTISER_MISMATCH'
  | 'NO_PRICE'
  /** The event id is already a click of another advertiser or campaign. */
  | 'EVENT_ID_CONFLICT'
  /** A compensation names another advertiser or campaign than the click it would refund. */
  | 'CLICK_MISMATCH'
  /** A compensation names a click as a duplicate of itself (its original_event_id is its duplicate_event_id). */
  | 'SELF_DUPLICATE'
  /** A re-driven record of a day whose charges, voids and duplicate log may be expired (`WorkerDeps.historySince`). */
  | 'HISTORY_EXPIRED';

/** Where a record sits in Kafka; the dead-letter table keys on it. */
export interface KafkaCoordinates {
  /** Topic the record was read from. */
  readonly topic: string;
  /** Partition within the topic. */
  readonly partition: number;
  /** Offset within the partition. */
  readonly offset: number;
  /**
   * The record's timestamp (epoch ms), when Lambda sent a usable one: its budget day is the
   * dead-letter day (`dead_letters.record_day`), the same for every redelivery of the record.
   */
  readonly timestamp?: number;
}

/** One record that cannot be applied, with the reason that goes to the dead-letter table. */
export class KafkaRecordError extends Error {
  override readonly name = 'KafkaRecordError';

  constructor(
    /** Machine-readable reason stored in `dead_letters.reason`. */
    readonly reason: DeadLetterReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The Lambda event as a whole is not a Kafka event (wrong trigger or a broken test fixture). */
export class KafkaEventShapeError extends Error {
  override readonly name = 'KafkaEventShapeError';
}

/** The environment is missing or has an invalid variable; raised at module load. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  constructor(
    /** The offending variable. */
    readonly variable: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${variable}: ${message}`, options);
  }
}

/** A secret could not be read or parsed; the message never contains the secret value. */
export class SecretError extends Error {
  override readonly name = 'SecretError';

  constructor(
    /** ARN of the secret. */
    readonly secretArn: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${secretArn}: ${message}`, options);
  }
}

/**
 * Postgres failed while applying a batch. The transaction was rolled back; throwing makes the
 * Kafka trigger redeliver the batch, which the idempotency keys make safe.
 */
export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError';

  constructor(
    /** What the handler was doing. */
    readonly operation: string,
    options: { cause: unknown },
  ) {
    super(`Postgres failed during ${operation}: ${describeCause(options.cause)}`, options);
  }
}

/**
 * A budget-reset request that cannot be honoured (an impossible or future day, a malformed time).
 * Nothing is applied; the message says what was wrong.
 */
export class BudgetResetRequestError extends Error {
  override readonly name = 'BudgetResetRequestError';
}

/** Publishing outbox rows to SNS or Kafka failed; the rows stay unpublished for the next drain. */
export class OutboxPublishError extends Error {
  override readonly name = 'OutboxPublishError';

  constructor(
    /** The destination that failed. */
    readonly destination: 'sns' | 'kafka',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${destination}: ${message}`, options);
  }
}

/** A top-up or adjustment that cannot be recorded (bad amount, unknown advertiser, reference reused). Nothing moved. */
export class LedgerEntryError extends Error {
  override readonly name = 'LedgerEntryError';
}

/** A replay or re-drive request that cannot be carried out (bad coordinates, unreadable message). Nothing moved. */
export class RecoveryRequestError extends Error {
  override readonly name = 'RecoveryRequestError';
}

/** A short description of an unknown thrown value, safe to log. */
export function describeCause(cause: unknown): string {
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    return cause.errors.map(describeCause).join('; ');
  }
  if (cause instanceof Error) return cause.message || cause.name;
  return String(cause);
}
