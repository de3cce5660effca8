import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testing } from 'cdktf';
import { defaultFlinkConfig, FlinkConfig } from '../../config/flink';
import { FLINK_SQL_ROOT } from '../../constructs/flink/sql-files';
import { FlinkConnection, FlinkStack } from '../../stacks/flink-stack';

/** Literal connection values; the real ones are tokens from the streaming stack. */
export const CONNECTION: FlinkConnection = {
  organizationId: '11111111-2222-3333-4444-555555555555',
  environmentId: 'env-abc123',
  catalogName: 'adstream-dev',
  databaseName: 'adstream-dev',
  computePoolId: 'lfcp-abc123',
  principalId: 'sa-runner1',
  restEndpoint: 'https://flink.ap-northeast-2.aws.confluent.cloud',
};

/** A Flink stack for tests. */
export function flinkStack(options: { name?: string; production?: boolean; flink?: Partial<FlinkConfig>; sqlRoot?: string } = {}): FlinkStack {
  const app = Testing.app();
  return new FlinkStack(app, {
    config: {
      name: options.name ?? 'dev',
      production: options.production ?? false,
      stateBackend: { kind: 'local', directory: 'terraform-state' },
      flink: { ...defaultFlinkConfig, ...options.flink },
    },
    connection: CONNECTION,
    sqlRoot: options.sqlRoot,
  });
}

/**
 * A private copy of flink-sql/ that a test may edit. `onlyVersion1Of` removes every later
 * version of those pipeline directories (files and lock entries), for tests that write their
 * own v2.
 */
export function copyOfSqlRoot(options: { onlyVersion1Of?: readonly string[] } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'adstream-flink-sql-'));
  cpSync(FLINK_SQL_ROOT, root, { recursive: true });
  for (const directory of options.onlyVersion1Of ?? []) {
    for (const entry of readdirSync(join(root, directory))) {
      if (/^v\d+$/.test(entry) && entry !== 'v1') rmSync(join(root, directory, entry), { recursive: true, force: true });
    }
    const lockPath = join(root, 'statements.lock.json');
    const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as { statements: Record<string, unknown> };
    for (const key of Object.keys(lock.statements)) if (key.startsWith(`${directory}/`) && !key.startsWith(`${directory}/v1/`)) delete lock.statements[key];
    writeFileSync(lockPath, JSON.stringify(lock, null, 2));
  }
  return root;
}

/** Every .sql file under flink-sql/, as [relative path, text]. */
export function sqlFiles(root: string = FLINK_SQL_ROOT): [string, string][] {
  const out: [string, string][] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const full = join(dir, entry);
      if (statSync(full).isDirectory()) walk(full, `${prefix}${entry}/`);
      else if (entry.endsWith('.sql')) out.push([`${prefix}${entry}`, readFileSync(full, 'utf8')]);
    }
  };
  walk(root, '');
  return out;
}
