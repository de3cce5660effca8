import { FIRST_PARTITIONED_HEARTBEAT_RANKING_STATEMENT, FIRST_VERSIONED_RANKING_STATEMENT, RTB_RANKINGS_PARTITIONS } from '../contracts/rankings';
import { ConfigError } from './errors';
import { readArray, readBoolean, readInt, readObject, rejectUnknownKeys } from './validate';

/** Ids of the Flink pipelines, as used in `flink-sql/<nn>-<id>/` and in statement names. */
export const FLINK_PIPELINE_IDS = ['sources', 'performance-metrics', 'rtb-ranking', 'attribution', 'duplicate-clicks'] as const;

/** One Flink pipeline id. */
export type FlinkPipelineId = (typeof FLINK_PIPELINE_IDS)[number];

/**
 * How one pipeline is deployed. Statement SQL is immutable on Confluent Cloud, so a change is
 * a new version (`flink-sql/<nn>-<id>/v<version>/`, new statement names); the versions being
 * replaced stay deployed, stopped, until the new one has caught up (see flink-sql/README.md).
 */
export interface FlinkPipelineDeployment {
  /** The version that runs. */
  readonly version: number;
  /** Stops the running version's INSERT statements (resume by setting it back to false). */
  readonly stopped: boolean;
  /** Earlier versions kept deployed with their INSERT statements stopped; remove one to delete it. */
  readonly retiredVersions: readonly number[];
}

/** The `flink` section of an environment. */
export interface FlinkConfig {
  /** CFU ceiling of the compute pool (Confluent offers 5, 10, 20, 30, 40, 50). */
  readonly maxCfu: number;
  /** How many campaigns each (placement, category) ranking keeps; rendered into the ranking SQL. */
  readonly rankingTopN: number;
  /** `sql.state-ttl` of the statements whose state would otherwise grow forever. */
  readonly stateTtl: {
    /** Attribution: must cover the 24 h click window plus the watermark delay (≥ 25 h). */
    readonly attributionHours: number;
    /** Duplicate clicks: must cover the 5-minute rule plus the watermark delay (≥ 1 h). */
    readonly duplicateClicksHours: number;
  };
  /** Deployed version of each pipeline. */
  readonly pipelines: Readonly<Record<FlinkPipelineId, FlinkPipelineDeployment>>;
  /**
   * Whether synth accepts pipeline versions that are not yet in `flink-sql/statements.lock.json`
   * (for iterating in development). Never in production.
   */
  readonly allowUnreleasedVersions: boolean;
}

/** CFU ceilings Confluent offers for a compute pool. */
export const MAX_CFU_VALUES = [5, 10, 20, 30, 40, 50] as const;

const PIPELINE_KEYS: Readonly<Record<string, FlinkPipelineId>> = {
  sources: 'sources',
  performanceMetrics: 'performance-metrics',
  rtbRanking: 'rtb-ranking',
  attribution: 'attribution',
  duplicateClicks: 'duplicate-clicks',
};

/** The first released version of everything, running; the seed's pool size and TTLs. */
export const defaultFlinkConfig: FlinkConfig = {
  maxCfu: 20,
  rankingTopN: 50,
  stateTtl: { attributionHours: 25, duplicateClicksHours: 6 },
  pipelines: {
    sources: { version: 1, stopped: false, retiredVersions: [] },
    // The released versions that fix what the local engine showed in the earlier ones; the retired
    // versions stay deployed for the tables their DDL created (flink-sql/README.md, "Upgrading").
    'performance-metrics': { version: 2, stopped: false, retiredVersions: [1] },
    'rtb-ranking': { version: 5, stopped: false, retiredVersions: [1, 2, 3, 4] },
    attribution: { version: 2, stopped: false, retiredVersions: [1] },
    'duplicate-clicks': { version: 3, stopped: false, retiredVersions: [1, 2] },
  },
  allowUnreleasedVersions: false,
};

function parseDeployment(raw: unknown, path: string, fallback: FlinkPipelineDeployment): FlinkPipelineDeployment {
  if (raw === undefined) return fallback;
  const o = readObject(raw, path);
  rejectUnknownKeys(o, path, ['version', 'stopped', 'retiredVersions']);
  const version = readInt(o.version, `${path}.version`, 1, 999, fallback.version);
  const stopped = readBoolean(o.stopped, `${path}.stopped`, false);
  const retiredVersions =
    o.retiredVersions === undefined ? [] : readArray(o.retiredVersions, `${path}.retiredVersions`, (item, itemPath) => readInt(item, itemPath, 1, 999));
  retiredVersions.forEach((retired, index) => {
    if (retired >= version) {
      throw new ConfigError(`${path}.retiredVersions[${index}]`, retired, `a version lower than the running version ${version}`);
    }
    if (retiredVersions.indexOf(retired) !== index) {
      throw new ConfigError(`${path}.retiredVersions[${index}]`, retired, 'each retired version once');
    }
  });
  return { version, stopped, retiredVersions };
}

/**
 * Validates the `flink` section of an environment and fills defaults from
 * `defaultFlinkConfig`. Throws a ConfigError naming the field, the value and what is allowed.
 */
export function parseFlinkConfig(raw: unknown, path: string, production: boolean): FlinkConfig {
  const o = readObject(raw ?? {}, path);
  rejectUnknownKeys(o, path, ['maxCfu', 'rankingTopN', 'stateTtl', 'pipelines', 'allowUnreleasedVersions']);
  const maxCfu = readInt(o.maxCfu, `${path}.maxCfu`, 1, 50, defaultFlinkConfig.maxCfu);
  if (!(MAX_CFU_VALUES as readonly number[]).includes(maxCfu)) {
    throw new ConfigError(`${path}.maxCfu`, maxCfu, `one of ${MAX_CFU_VALUES.join(', ')}`);
  }
  const rankingTopN = readInt(o.rankingTopN, `${path}.rankingTopN`, 1, 1000, defaultFlinkConfig.rankingTopN);

  const ttl = readObject(o.stateTtl ?? {}, `${path}.stateTtl`);
  rejectUnknownKeys(ttl, `${path}.stateTtl`, ['attributionHours', 'duplicateClicksHours']);
  const attributionHours = readInt(ttl.attributionHours, `${path}.stateTtl.attributionHours`, 25, 24 * 30, defaultFlinkConfig.stateTtl.attributionHours);
  const duplicateClicksHours = readInt(
    ttl.duplicateClicksHours,
    `${path}.stateTtl.duplicateClicksHours`,
    1,
    24 * 7,
    defaultFlinkConfig.stateTtl.duplicateClicksHours,
  );

  const pipelinesRaw = readObject(o.pipelines ?? {}, `${path}.pipelines`);
  rejectUnknownKeys(pipelinesRaw, `${path}.pipelines`, Object.keys(PIPELINE_KEYS));
  const pipelines = {} as Record<FlinkPipelineId, FlinkPipelineDeployment>;
  for (const [key, id] of Object.entries(PIPELINE_KEYS)) {
    pipelines[id] = parseDeployment(pipelinesRaw[key], `${path}.pipelines.${key}`, defaultFlinkConfig.pipelines[id]);
  }

  const allowUnreleasedVersions = readBoolean(o.allowUnreleasedVersions, `${path}.allowUnreleasedVersions`, !production);
  if (production && allowUnreleasedVersions) {
    throw new ConfigError(
      `${path}.allowUnreleasedVersions`,
      allowUnreleasedVersions,
      'false in production: release the version first (npx tsx flink-sql/release.ts <pipeline> <version>) so its SQL is locked',
    );
  }
  return { maxCfu, rankingTopN, stateTtl: { attributionHours, duplicateClicksHours }, pipelines, allowUnreleasedVersions };
}

/**
 * Whether the deployed rtb-ranking statement writes `as_of` on every settled slot row, so that
 * the ranking-cache worker takes a slot row without one for an intermediate
 * (`RANKING_ROWS_VERSIONED`).
 */
export function writesVersionedRankingRows(flink: FlinkConfig): boolean {
  return flink.pipelines['rtb-ranking'].version >= FIRST_VERSIONED_RANKING_STATEMENT;
}

/**
 * The partitions of `rtb-rankings-v2` the ranking-cache worker takes the freshness key's minimum
 * over when the deployed rtb-ranking statement writes its heartbeat under 64 keys (v5 on), else
 * 0: one heartbeat key, the newest heartbeat of any partition counts
 * (`RANKING_HEARTBEAT_PARTITIONS`).
 */
export function rankingHeartbeatPartitions(flink: FlinkConfig): number {
  return flink.pipelines['rtb-ranking'].version >= FIRST_PARTITIONED_HEARTBEAT_RANKING_STATEMENT ? RTB_RANKINGS_PARTITIONS : 0;
}
