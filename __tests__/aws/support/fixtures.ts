import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironment } from '../../../config';
import type { EnvironmentConfig } from '../../../config/schema';

/** Bundle directories the workers stack deploys (one per function). */
export const BUNDLE_NAMES = ['click-balance', 'compensation', 'ranking-cache', 'budget-reset', 'outbox-sweep', 'db-migrate', 'flink-status', 'trigger-status'] as const;

/** Fixed migration text of the fake db-migrate bundle, so digests and snapshots are stable. */
export const FAKE_MIGRATION = 'create table fake_marker (id bigint primary key);\n';

/**
 * Writes tiny stand-in bundles (fixed content) under a fresh temp directory, so the AWS tests
 * depend neither on `npm run bundle` nor on the handlers' current code: TerraformAsset hashes
 * content only, so every run synthesizes the same asset paths.
 */
export function createFakeBundleRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'adstream-bundles-'));
  for (const name of BUNDLE_NAMES) {
    mkdirSync(join(root, name), { recursive: true });
    writeFileSync(join(root, name, 'index.js'), `exports.handler = async () => ({ bundle: ${JSON.stringify(name)} });\n`);
  }
  mkdirSync(join(root, 'db-migrate', 'migrations'));
  writeFileSync(join(root, 'db-migrate', 'migrations', '0001_fake.sql'), FAKE_MIGRATION);
  return root;
}

/** An environment from config/environments with a local state backend (tests never touch S3). */
export function testEnvironment(name: 'dev' | 'prod', overrides: Partial<EnvironmentConfig> = {}): EnvironmentConfig {
  return { ...loadEnvironment(name), stateBackend: { kind: 'local', directory: 'terraform-state' }, ...overrides };
}

/** Plausible values for every input variable of the workers stack (for `terraform plan -var`). */
export function workersStackVariables(config: EnvironmentConfig): Record<string, string> {
  const arn = (name: string) => `arn:aws:secretsmanager:${config.aws.region}:${config.aws.accountId}:secret:${name}-AbCdEf`;
  return {
    vpc_id: 'vpc-0123456789abcdef0',
    private_subnet_ids: '["subnet-0123456789abcdef0","subnet-0123456789abcdef1"]',
    database_host: `adstream-${config.name}-ledger.proxy-abcdefghij.${config.aws.region}.rds.amazonaws.com`,
    database_port: '5432',
    database_name: 'adstream',
    database_secret_arn: arn('rds!db-0f1e2d3c'),
    database_security_group_id: 'sg-0123456789abcdef0',
    redis_host: `master.adstream-${config.name}-cache.abcdef.apn2.cache.amazonaws.com`,
    redis_port: '6379',
    redis_auth_secret_arn: arn(`adstream/${config.name}/redis/auth-token`),
    redis_security_group_id: 'sg-0123456789abcdef1',
    kafka_bootstrap_servers: `pkc-abc12.${config.aws.region}.aws.confluent.cloud:9092`,
    workers_consumer_secret_arn: arn(`adstream/${config.name}/kafka/workers-consumer`),
    workers_producer_secret_arn: arn(`adstream/${config.name}/kafka/workers-producer`),
    // Optional: dev plans without it (null default), prod with it, so both paths are planned.
    ...(config.production ? { campaign_events_schema_id: '100003' } : {}),
  };
}
