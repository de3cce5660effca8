import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironment } from '../../../config';
import type { EnvironmentConfig } from '../../../config/schema';
import type { StorageHandoff, StreamingHandoff } from '../../../constructs/aws/stack-inputs';
import { FUNCTION_DATABASE_ROLES } from '../../../constructs/aws/postgres-database';

/** Bundle directories the workers stack deploys (one per function). */
export const BUNDLE_NAMES = [
  'click-balance',
  'compensation',
  'ranking-cache',
  'budget-reset',
  'outbox-sweep',
  'db-migrate',
  'flink-status',
  'trigger-status',
  'reconcile',
] as const;

/** Fixed migration text of the fake db-migrate bundle, so digests and snapshots are stable. */
export const FAKE_MIGRATION = 'create table fake_marker (id bigint primary key);\n';

/** The stand-in bundle roots this test file made: removed once its tests have run. */
const fakeBundleRoots: string[] = [];
afterAll(() => {
  for (const root of fakeBundleRoots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/**
 * Writes tiny stand-in bundles (fixed content) under a fresh temp directory, so the AWS tests
 * depend neither on `npm run bundle` nor on the handlers' current code: TerraformAsset hashes
 * content only, so every run synthesizes the same asset paths. The directory is removed after
 * the test file.
 */
export function createFakeBundleRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'adstream-bundles-'));
  fakeBundleRoots.push(root);
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

/** Literal stand-ins for the storage and streaming stacks, for unit tests of the workers stack alone. */
export interface FakeHandoffs {
  /** Network, database, cache. */
  readonly storage: StorageHandoff;
  /** Kafka endpoint, key secrets, schema id. */
  readonly streaming: StreamingHandoff;
}

/** A Secrets Manager ARN in the environment's account and region. */
export function secretArn(config: EnvironmentConfig, name: string): string {
  return `arn:aws:secretsmanager:${config.aws.region}:${config.aws.accountId}:secret:${name}-AbCdEf`;
}

/**
 * Plausible literal values of what the workers stack takes from the other two stacks. In the
 * app (main.ts) these are cross-stack references; unit tests of the workers stack on its own
 * use literals so the synthesized JSON shows where each value lands.
 */
export function fakeHandoffs(config: EnvironmentConfig): FakeHandoffs {
  return {
    storage: {
      network: {
        vpcId: 'vpc-0123456789abcdef0',
        privateSubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
        endpointSecurityGroupId: 'sg-0123456789abcdef2',
      },
      database: {
        host: `adstream-${config.name}-ledger.proxy-abcdefghij.${config.aws.region}.rds.amazonaws.com`,
        port: 5432,
        databaseName: 'adstream',
        credentialsSecretArn: secretArn(config, 'rds!db-0f1e2d3c'),
        roleSecretArns: Object.fromEntries(
          Object.values(FUNCTION_DATABASE_ROLES).map((role) => [role, secretArn(config, `adstream/${config.name}/db/${role}`)]),
        ),
        securityGroupId: 'sg-0123456789abcdef0',
      },
      cache: {
        host: `master.adstream-${config.name}-cache.abcdef.apn2.cache.amazonaws.com`,
        port: 6379,
        authTokenSecretArn: secretArn(config, `adstream/${config.name}/redis/auth-token`),
        securityGroupId: 'sg-0123456789abcdef1',
      },
    },
    streaming: {
      bootstrapServers: `pkc-abc12.${config.aws.region}.aws.confluent.cloud:9092`,
      consumerSecretArn: secretArn(config, `adstream/${config.name}/kafka/workers-consumer`),
      producerSecretArn: secretArn(config, `adstream/${config.name}/kafka/workers-producer`),
      standbyConsumerSecretArn: secretArn(config, `adstream/${config.name}/kafka/workers-consumer-green`),
      standbyProducerSecretArn: secretArn(config, `adstream/${config.name}/kafka/workers-producer-green`),
      campaignEventsSchemaId: 100003,
    },
  };
}
