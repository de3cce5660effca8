import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ConfigError, describeCause } from '../shared/errors';
import type { Observability } from '../shared/observability';

/** Service name of the function: its logs and the `service` dimension of its metrics. */
export const TRIGGER_STATUS_HANDLER = 'trigger-status';

/** Metric names, shared with the alarms and the dashboard (constructs/aws/silence-alarms.ts). */
export const TRIGGER_STATUS_METRICS = {
  /** Per trigger (dimension `trigger`, the consuming function's service name): 1 when Enabled without a PROBLEM, else 0. */
  healthy: 'TriggerHealthy',
} as const;

/** One Kafka trigger to check: the function it feeds and its event source mapping's UUID. */
export interface TriggerMapping {
  /** Service name of the consuming function (`click-balance`, …). */
  readonly name: string;
  /** Event source mapping UUID. */
  readonly uuid: string;
}

/** Parses `TRIGGER_MAPPINGS`: `name=uuid` pairs separated by commas. */
export function parseTriggerMappings(raw: string | undefined): TriggerMapping[] {
  const pairs = (raw ?? '')
    .split(',')
    .map((pair) => pair.trim())
    .filter((pair) => pair.length > 0);
  if (pairs.length === 0) throw new ConfigError('TRIGGER_MAPPINGS', 'is empty; it must list name=uuid for every Kafka trigger');
  return pairs.map((pair) => {
    const [name, uuid, ...rest] = pair.split('=');
    if (!name || !uuid || rest.length > 0) throw new ConfigError('TRIGGER_MAPPINGS', `has "${pair}", expected name=uuid`);
    return { name, uuid };
  });
}

/** What Lambda reports about a mapping (the fields of GetEventSourceMapping this check reads). */
export interface MappingState {
  /** Creating, Enabling, Enabled, Disabling, Disabled, Updating, Deleting. */
  readonly State?: string;
  /** `OK`, `No records processed`, or `PROBLEM: …` (e.g. authentication or connection failures). */
  readonly LastProcessingResult?: string;
  /** Why the state last changed (e.g. `USER_INITIATED`). */
  readonly StateTransitionReason?: string;
}

/** Reads one mapping (GetEventSourceMapping in the deployed function). */
export type MappingReader = (uuid: string) => Promise<MappingState>;

/** The verdict on one trigger. */
export interface TriggerStatus {
  /** Consuming function. */
  readonly name: string;
  /** Whether it is consuming: Enabled and no PROBLEM; undefined when it could not be read. */
  readonly healthy: boolean | undefined;
  /** State and last result, or why it could not be read. */
  readonly detail: string;
}

/** Whether a mapping is consuming: Enabled, and its last processing result is not a PROBLEM. */
export function isConsuming(mapping: MappingState): boolean {
  return mapping.State === 'Enabled' && !/^PROBLEM/i.test(mapping.LastProcessingResult ?? '');
}

/** Dependencies of the handler. */
export interface TriggerStatusDeps {
  /** Triggers to check. */
  readonly mappings: readonly TriggerMapping[];
  /** Reads a mapping. */
  readonly read: MappingReader;
  /** Logger and metrics. */
  readonly observability: Observability;
}

/**
 * The scheduled check: reads every Kafka trigger's event source mapping and reports 1 (Enabled,
 * no PROBLEM) or 0 per trigger. A dead trigger (revoked Confluent key, missing ACL, disabled
 * mapping) raises no function error and moves no metric of its own; this makes it visible. A
 * mapping that cannot be read gets no data point (its alarm treats silence as breaching).
 */
export function createTriggerStatusHandler(deps: TriggerStatusDeps): () => Promise<TriggerStatus[]> {
  const { logger, metrics } = deps.observability;
  return async () => {
    const statuses = await Promise.all(
      deps.mappings.map(async ({ name, uuid }): Promise<TriggerStatus> => {
        try {
          const mapping = await deps.read(uuid);
          return {
            name,
            healthy: isConsuming(mapping),
            detail: `${mapping.State ?? 'unknown state'}; ${mapping.LastProcessingResult ?? 'no processing result'}${mapping.StateTransitionReason ? `; ${mapping.StateTransitionReason}` : ''}`,
          };
        } catch (error) {
          return { name, healthy: undefined, detail: `could not read mapping ${uuid}: ${describeCause(error)}` };
        }
      }),
    );
    try {
      for (const status of statuses) {
        if (status.healthy === undefined) continue;
        const single = metrics.singleMetric();
        single.addDimension('trigger', status.name);
        single.addMetric(TRIGGER_STATUS_METRICS.healthy, MetricUnit.Count, status.healthy ? 1 : 0);
      }
    } catch (error) {
      logger.warn('could not emit metrics', { error: describeCause(error) });
    }
    const line = { triggers: statuses.map((s) => ({ trigger: s.name, healthy: s.healthy ?? 'unknown', detail: s.detail.slice(0, 500) })) };
    if (statuses.every((s) => s.healthy === true)) logger.info('every Kafka trigger is consuming', line);
    else logger.error('Kafka triggers not consuming or not readable', line);
    return statuses;
  };
}
