import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'cdktf';
import type { EnvironmentConfig } from '../config/schema';
import type { ExpectedFlinkStatement } from '../constructs/aws/flink-status-check';
import { FlinkStack } from './flink-stack';

/**
 * The continuous (DML, not stopped) Flink statements an environment deploys, by pipeline: what
 * the Flink status check expects to be RUNNING. Built from the same SQL files and lock as the
 * Flink stack (in a throwaway app that is never synthesized), so the two cannot drift.
 */
export function continuousFlinkStatements(config: EnvironmentConfig): ExpectedFlinkStatement[] {
  const stack = new FlinkStack(new App({ outdir: join(tmpdir(), 'adstream-flink-statement-names'), skipValidation: true }), {
    config,
    connection: {
      organizationId: 'names-only',
      environmentId: 'names-only',
      catalogName: 'names-only',
      databaseName: 'names-only',
      computePoolId: 'names-only',
      principalId: 'names-only',
      restEndpoint: 'https://names-only.invalid',
    },
  });
  return stack.pipelines.flatMap((pipeline) =>
    pipeline.statements.filter((s) => s.kind === 'dml' && s.stopped === false).map((s) => ({ pipeline: pipeline.node.id, statementName: s.statementName })),
  );
}
