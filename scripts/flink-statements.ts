// The statements every environment deploys, read from the synthesized Flink stack (the same
// constructs `npm run synth` uses), for the local engine. Besides each environment's configured
// versions, every released version in flink-sql/statements.lock.json is covered: a version
// n > 1 is deployed as the README's upgrade path does it, with the earlier versions retired beside it.
import { Testing } from 'cdktf';
import { loadEnvironments } from '../config';
import { FLINK_PIPELINE_IDS, FlinkConfig, FlinkPipelineId } from '../config/flink';
import type { EnvironmentConfig } from '../config/schema';
import type { TopicCleanupPolicy } from '../constructs/flink/catalog';
import type { SynthesizedStatement } from '../constructs/flink/local-engine';
import { FLINK_SQL_ROOT, readStatementLock } from '../constructs/flink/sql-files';
import { FlinkStack } from '../stacks/flink-stack';

/** The statements of one synthesized Flink stack, with what the local engine needs to know. */
export interface SynthesizedDeployment {
  /** Environment name. */
  readonly environment: string;
  /** Which versions this deployment runs, e.g. `duplicate-clicks v2 (v1 retired)`. */
  readonly label: string;
  /** Every statement in deployment order, with its pipeline and whether it is the running version. */
  readonly statements: readonly (SynthesizedStatement & { readonly pipeline: FlinkPipelineId; readonly running: boolean })[];
  /** Cleanup policy of every topic, from the environment config. */
  readonly cleanupPolicies: Readonly<Record<string, TopicCleanupPolicy>>;
}

/** Released versions of each pipeline, from the lock. */
export function releasedVersions(sqlRoot: string = FLINK_SQL_ROOT): Map<FlinkPipelineId, number[]> {
  const lock = readStatementLock(sqlRoot);
  const out = new Map<FlinkPipelineId, number[]>();
  const directories: Record<string, FlinkPipelineId> = {};
  for (const id of FLINK_PIPELINE_IDS) directories[id] = id;
  for (const path of Object.keys(lock.statements)) {
    const match = /^\d{2}-([a-z0-9-]+)\/v(\d+)\//.exec(path);
    if (!match) continue;
    const pipeline = match[1] as FlinkPipelineId;
    const versions = out.get(pipeline) ?? [];
    if (!versions.includes(Number(match[2]))) versions.push(Number(match[2]));
    out.set(
      pipeline,
      versions.sort((a, b) => a - b),
    );
  }
  return out;
}

/** Synthesizes the Flink stack of `config` (optionally with other pipeline versions) and returns its statements. */
export function synthesizedDeployment(
  config: EnvironmentConfig,
  options: { flink?: Partial<FlinkConfig>; sqlRoot?: string; label?: string } = {},
): SynthesizedDeployment {
  const flink = { ...config.flink, ...options.flink };
  const catalogName = config.confluent.environment.mode === 'create' ? config.confluent.environment.displayName : `adstream-${config.name}`;
  const databaseName = config.confluent.kafkaCluster.mode === 'create' ? config.confluent.kafkaCluster.displayName : `adstream-${config.name}`;
  const stack = new FlinkStack(Testing.app(), {
    config: { name: config.name, production: config.production, stateBackend: config.stateBackend, flink },
    connection: {
      organizationId: 'local',
      environmentId: 'local',
      catalogName,
      databaseName,
      computePoolId: 'local',
      principalId: 'local',
      restEndpoint: 'http://localhost',
    },
    sqlRoot: options.sqlRoot,
  });
  const statements = stack.pipelines.flatMap((pipeline, index) => {
    const id = FLINK_PIPELINE_IDS[index];
    return pipeline.statements.map((s) => ({
      name: s.statementName,
      sql: s.sql,
      properties: s.properties,
      kind: s.kind,
      source: s.source,
      pipeline: id,
      running: pipeline.runningStatements.includes(s),
    }));
  });
  const cleanupPolicies: Record<string, TopicCleanupPolicy> = {};
  for (const [topic, settings] of Object.entries(config.confluent.topics)) cleanupPolicies[topic] = settings.cleanupPolicy;
  return { environment: config.name, label: options.label ?? 'configured versions', statements, cleanupPolicies };
}

/**
 * The versions retired beside `version` on the upgrade path: every earlier one, deployed stopped
 * (a version may write a table an earlier version's DDL created, or rely on an earlier ALTER
 * TABLE, as rtb-ranking v4 does on v3, v2 and v1).
 */
export function upgradeRetiredVersions(version: number): number[] {
  return Array.from({ length: version - 1 }, (_, i) => i + 1);
}

/** Every environment's configured deployment plus one per released version it does not run. */
export function everyDeployment(sqlRoot: string = FLINK_SQL_ROOT): SynthesizedDeployment[] {
  const released = releasedVersions(sqlRoot);
  const out: SynthesizedDeployment[] = [];
  for (const config of loadEnvironments()) {
    out.push(synthesizedDeployment(config, { sqlRoot }));
    for (const [pipeline, versions] of released) {
      for (const version of versions) {
        if (config.flink.pipelines[pipeline].version === version) continue;
        const deployment = { version, stopped: false, retiredVersions: upgradeRetiredVersions(version) };
        out.push(
          synthesizedDeployment(config, {
            sqlRoot,
            flink: { pipelines: { ...config.flink.pipelines, [pipeline]: deployment } },
            label: `${pipeline} v${version}${version > 1 ? ` (v${upgradeRetiredVersions(version).join(', v')} retired)` : ''}`,
          }),
        );
      }
    }
  }
  return out;
}
