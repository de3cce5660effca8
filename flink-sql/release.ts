/**
 * Releases one pipeline version: records the sha256, parameters and properties of each of its
 * statements in flink-sql/statements.lock.json. From then on synth fails if any of them changes.
 *
 *   npx tsx flink-sql/release.ts <pipeline> <version> [--env <env>]
 *
 * Parameters (e.g. the ranking's top-N) and TTLs are rendered from the environment's config
 * (default: dev). Entries already in the lock are never overwritten.
 */
import { App } from 'cdktf';
import { FLINK_PIPELINE_IDS, FlinkConfig, FlinkPipelineId } from '../config/flink';
import { loadEnvironment } from '../config';
import { FLINK_SQL_ROOT, pipelineDirectory, readStatementLock, StatementLockEntry, writeStatementLock, fingerprint } from '../constructs/flink/sql-files';
import { FlinkStack } from '../stacks/flink-stack';
import { localJob } from '../constructs/flink/local-engine';
import { FlinkEngine } from '../scripts/flink-engine';
import { synthesizedDeployment, upgradeRetiredVersions } from '../scripts/flink-statements';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Placeholder connection: releasing renders and validates statements, it deploys nothing. */
const OFFLINE_CONNECTION = {
  organizationId: 'offline',
  environmentId: 'offline',
  catalogName: 'offline',
  databaseName: 'offline',
  computePoolId: 'offline',
  principalId: 'offline',
  restEndpoint: 'https://offline.invalid',
};

/** The lock entries a pipeline version would get, rendered with `flink`'s parameters. */
export function releaseEntries(
  flink: FlinkConfig,
  pipeline: FlinkPipelineId,
  version: number,
  root: string = FLINK_SQL_ROOT,
): Record<string, StatementLockEntry> {
  const directory = join(root, pipelineDirectory(root, pipeline));
  const earlier = readdirSync(directory)
    .map((entry) => /^v(\d+)$/.exec(entry))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .filter((v) => v < version && existsSync(join(directory, `v${v}`)));
  const config: FlinkConfig = {
    ...flink,
    allowUnreleasedVersions: true,
    pipelines: { ...flink.pipelines, [pipeline]: { version, stopped: false, retiredVersions: earlier } },
  };
  const stack = new FlinkStack(new App({ outdir: mkdtempSync(join(tmpdir(), 'adstream-flink-release-')) }), {
    config: { name: 'release', production: false, flink: config, stateBackend: { kind: 'local', directory: 'terraform-state' } },
    connection: OFFLINE_CONNECTION,
    sqlRoot: root,
  });
  const target = stack.pipelines.find((p) => p.node.id === pipeline);
  const candidates = target?.lockCandidates.get(version) ?? [];
  const entries: Record<string, StatementLockEntry> = {};
  for (const candidate of candidates) {
    entries[candidate.file.relativePath] = {
      sha256: fingerprint(candidate.file.template),
      parameters: candidate.parameters,
      properties: candidate.properties,
    };
  }
  return entries;
}

/**
 * Plans every statement of the environment with `pipeline` at `version` on the local Flink
 * engine (Apache Flink's planner): a version Flink rejects is never released.
 */
async function planOnFlink(env: string, pipeline: FlinkPipelineId, version: number): Promise<string | undefined> {
  const config = loadEnvironment(env);
  // Retired beside it: the environment's own retired versions when it already runs this
  // version (a version may reuse DDL of several earlier ones), else the previous version.
  const configured = config.flink.pipelines[pipeline];
  const retiredVersions = configured.version === version ? configured.retiredVersions : upgradeRetiredVersions(version);
  const deployment = synthesizedDeployment(config, {
    flink: {
      allowUnreleasedVersions: true,
      pipelines: { ...config.flink.pipelines, [pipeline]: { version, stopped: false, retiredVersions } },
    },
  });
  const engine = await FlinkEngine.start();
  try {
    const answer = await engine.run(localJob(deployment.statements, deployment.cleanupPolicies));
    return answer.ok ? undefined : `${answer.error?.statement}: ${answer.error?.message}`;
  } finally {
    await engine.close();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const [pipeline, versionText] = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--env');
  const envIndex = argv.indexOf('--env');
  const env = envIndex >= 0 ? argv[envIndex + 1] : 'dev';
  const version = Number(versionText);
  if (!(FLINK_PIPELINE_IDS as readonly string[]).includes(pipeline) || !Number.isInteger(version) || version < 1) {
    console.error(`usage: npx tsx flink-sql/release.ts <${FLINK_PIPELINE_IDS.join('|')}> <version> [--env <env>]`);
    return 2;
  }
  const flink = loadEnvironment(env).flink;
  const rejected = await planOnFlink(env, pipeline as FlinkPipelineId, version);
  if (rejected) {
    console.error(`Apache Flink rejects ${pipeline} v${version} (nothing released):\n${rejected}`);
    return 1;
  }
  const entries = releaseEntries(flink, pipeline as FlinkPipelineId, version);
  const lock = readStatementLock(FLINK_SQL_ROOT);
  const statements = { ...lock.statements };
  for (const [path, entry] of Object.entries(entries)) {
    const existing = statements[path];
    if (existing && JSON.stringify(existing) !== JSON.stringify(entry)) {
      console.error(`flink-sql/${path} is already released with different content; release a new version instead.`);
      return 1;
    }
    statements[path] = entry;
    console.log(`${existing ? 'unchanged' : 'released '} flink-sql/${path}`);
  }
  writeStatementLock(FLINK_SQL_ROOT, { statements });
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(2);
    },
  );
}
