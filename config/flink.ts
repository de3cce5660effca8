import { ConfigError } from './errors';
import { readInt, readObject } from './validate';

/**
 * The `flink` section of an environment. (Interface agreed with the Flink pipelines work:
 * extend it with pipeline versions, TTLs and top-N there; keep `parseFlinkConfig`'s signature.)
 */
export interface FlinkConfig {
  /** CFU ceiling of the compute pool (Confluent offers 5, 10, 20, 30, 40, 50). */
  readonly maxCfu: number;
}

/** CFU ceilings Confluent offers for a compute pool. */
export const MAX_CFU_VALUES = [5, 10, 20, 30, 40, 50] as const;

/** Validates the `flink` section, filling defaults. */
export function parseFlinkConfig(raw: unknown, path: string, _production: boolean): FlinkConfig {
  const o = readObject(raw ?? {}, path);
  const maxCfu = readInt(o.maxCfu, `${path}.maxCfu`, 1, 50, 20);
  if (!(MAX_CFU_VALUES as readonly number[]).includes(maxCfu)) {
    throw new ConfigError(`${path}.maxCfu`, maxCfu, `one of ${MAX_CFU_VALUES.join(', ')}`);
  }
  return { maxCfu };
}
