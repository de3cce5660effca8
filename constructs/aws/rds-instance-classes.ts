/**
 * What the alarms need to know about an RDS instance class: its memory, and from it the
 * default `max_connections` of RDS for PostgreSQL, LEAST({DBInstanceClassMemory/9531392}, 5000).
 * RDS reserves part of the memory for the OS, so the real limit is somewhat below the one
 * computed from the nominal memory; the connections alarm fires at a percentage of it.
 */

const GIB = 1024 ** 3;

/** Memory in GiB by size, per family shape (burstable, general purpose, memory optimised). */
const BURSTABLE: Readonly<Record<string, number>> = { micro: 1, small: 2, medium: 4, large: 8, xlarge: 16, '2xlarge': 32 };
const GENERAL: Readonly<Record<string, number>> = {
  large: 8,
  xlarge: 16,
  '2xlarge': 32,
  '4xlarge': 64,
  '8xlarge': 128,
  '12xlarge': 192,
  '16xlarge': 256,
  '24xlarge': 384,
};
const MEMORY: Readonly<Record<string, number>> = {
  large: 16,
  xlarge: 32,
  '2xlarge': 64,
  '4xlarge': 128,
  '8xlarge': 256,
  '12xlarge': 384,
  '16xlarge': 512,
  '24xlarge': 768,
};

const FAMILIES: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  t3: BURSTABLE,
  t4g: BURSTABLE,
  m5: GENERAL,
  m6g: GENERAL,
  m6gd: GENERAL,
  m6i: GENERAL,
  m7g: GENERAL,
  m7i: GENERAL,
  r5: MEMORY,
  r6g: MEMORY,
  r6gd: MEMORY,
  r6i: MEMORY,
  r7g: MEMORY,
  r7i: MEMORY,
};

/** Nominal memory of an instance class in GiB, or undefined for a class the table does not know. */
export function instanceClassMemoryGib(instanceClass: string): number | undefined {
  const [, family, size] = /^db\.([a-z0-9]+)\.([a-z0-9]+)$/.exec(instanceClass) ?? [];
  return family && size ? FAMILIES[family]?.[size] : undefined;
}

/** RDS for PostgreSQL's default `max_connections` for an instance with `memoryGib` of memory. */
export function defaultMaxConnections(memoryGib: number): number {
  return Math.min(Math.floor((memoryGib * GIB) / 9_531_392), 5000);
}
