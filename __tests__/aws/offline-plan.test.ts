/**
 * GIVEN every stack of every environment, wired as main.ts wires them (cdktf cross-stack
 * references) and synthesized with the offline provider opt-in
 * WHEN the producer stacks' state is faked (test-only substitution of the remote-state reads)
 * AND real Terraform runs `init` (hashicorp/aws 5.100.0 from the local mirror) and `plan` on
 * each AWS stack, with no `-var` at all
 * THEN each plan succeeds, and its JSON satisfies the policy rules.
 *
 * Never skipped: without a mirror (and no registry) the test fails, saying why.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'cdktf';
import type { EnvironmentConfig } from '../../config/schema';
import { PROTECTED_PORTS } from '../../constructs/policy/rules/aws';
import { stackName } from '../../stacks/environment-stack';
import { createFakeBundleRoot, testEnvironment } from './support/fixtures';
import { awsFakeValueRules, writeFakeRemoteStates } from './support/remote-state';
import { addEnvironmentStacks } from './support/synth';
import { findProviderMirror, offlineTerraformEnv, OfflinePlan, planOffline, PlannedResource } from './support/terraform';

jest.setTimeout(600_000);

const environments: EnvironmentConfig[] = [testEnvironment('dev'), testEnvironment('prod')];
const outdir = mkdtempSync(join(tmpdir(), 'adstream-offline-plan-'));
const plans = new Map<string, OfflinePlan>();
const timings: string[] = [];
/** Producer stacks each environment's workers stack reads through remote state. */
const readers = new Map<string, string[]>();

function resources(plan: OfflinePlan, type: string): PlannedResource[] {
  return (plan.json.planned_values.root_module.resources ?? []).filter((r) => r.type === type);
}

function synthesizedConfig(stack: string): { resource: Record<string, Record<string, Record<string, unknown>>> } {
  return JSON.parse(readFileSync(join(outdir, 'stacks', stack, 'cdk.tf.json'), 'utf8'));
}

beforeAll(async () => {
  const mirror = findProviderMirror();
  const app = new App({ outdir });
  const bundleRoot = createFakeBundleRoot();
  for (const config of environments) addEnvironmentStacks(app, config, { bundleRoot, offlinePlan: true });
  app.synth();
  for (const config of environments) {
    const rules = awsFakeValueRules(config.aws.region, config.aws.accountId);
    readers.set(config.name, writeFakeRemoteStates(outdir, stackName(config, 'workers'), rules).sort());
  }

  const env = offlineTerraformEnv(join(outdir, '.terraform-cli'), mirror);
  const started = performance.now();
  // Sequential: two cores, and each plan already runs the provider in its own process.
  for (const config of environments) {
    for (const lifecycle of ['storage', 'workers'] as const) {
      const name = stackName(config, lifecycle);
      const plan = await planOffline(join(outdir, 'stacks', name), env);
      plans.set(name, plan);
      timings.push(`${name}: init ${plan.seconds.init.toFixed(1)} s, plan ${plan.seconds.plan.toFixed(1)} s, show ${plan.seconds.show.toFixed(1)} s`);
    }
  }
  timings.push(`total ${((performance.now() - started) / 1000).toFixed(1)} s (mirror: ${mirror ?? 'registry'})`);
  // Printed on purpose: the time budget of this suite is part of its contract.
  console.log(`offline terraform plans\n  ${timings.join('\n  ')}`);
});

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
});

describe.each(environments.map((config) => [config.name, config] as const))('offline plan of %s', (_name, config) => {
  const storage = () => plans.get(stackName(config, 'storage'))!;
  const workers = () => plans.get(stackName(config, 'workers'))!;

  test('the workers stack reads the storage and streaming stacks through cross-stack references, with no input variable', () => {
    expect(readers.get(config.name)).toEqual([stackName(config, 'storage'), stackName(config, 'streaming')]);
    const workersJson = JSON.parse(readFileSync(join(outdir, 'stacks', stackName(config, 'workers'), 'cdk.tf.json'), 'utf8')) as { variable?: object };
    expect(workersJson.variable ?? {}).toEqual({});
  });

  test('both AWS stacks plan without errors and create resources', () => {
    for (const plan of [storage(), workers()]) {
      expect(plan.json.errored).toBe(false);
      expect(plan.json.resource_changes.length).toBeGreaterThan(10);
      expect(plan.json.resource_changes.every((change) => change.change.actions.join() === 'create' || change.change.actions.join() === 'read')).toBe(true);
    }
  });

  test('the database is encrypted, private, backed up and protected as the environment requires', () => {
    const [db] = resources(storage(), 'aws_db_instance');
    expect(db.values).toMatchObject({
      storage_encrypted: true,
      publicly_accessible: false,
      manage_master_user_password: true,
      backup_retention_period: config.database.backupRetentionDays,
      deletion_protection: config.production,
    });
  });

  test('Redis encrypts in transit and at rest and fails over when it has replicas', () => {
    const [cache] = resources(storage(), 'aws_elasticache_replication_group');
    expect(cache.values).toMatchObject({ transit_encryption_enabled: true, at_rest_encryption_enabled: 'true', transit_encryption_mode: 'required' });
    expect(cache.values.automatic_failover_enabled).toBe(config.cache.replicas > 0);
    expect(cache.values.multi_az_enabled).toBe(config.cache.replicas > 0);
    // The AUTH token comes from Secrets Manager at apply time: unknown in the plan, never a literal.
    const change = storage().json.resource_changes.find((c) => c.type === 'aws_elasticache_replication_group')!;
    expect(change.change.after_unknown?.auth_token).toBe(true);
  });

  test('queues and the alerts topic are encrypted', () => {
    const queues = resources(workers(), 'aws_sqs_queue');
    expect(queues).toHaveLength(3);
    for (const queue of queues) expect(queue.values.sqs_managed_sse_enabled).toBe(true);
    const topic = workers().json.resource_changes.find((c) => c.type === 'aws_sns_topic')!;
    expect(topic.change.after_unknown?.kms_master_key_id).toBe(true);
  });

  test('no planned security group rule opens 5432 or 6379 to the internet', () => {
    const ingress = [...resources(storage(), 'aws_vpc_security_group_ingress_rule'), ...resources(workers(), 'aws_vpc_security_group_ingress_rule')];
    expect(ingress.length).toBeGreaterThan(0);
    for (const rule of ingress) {
      const from = Number(rule.values.from_port);
      const to = Number(rule.values.to_port);
      const open = rule.values.cidr_ipv4 === '0.0.0.0/0' || rule.values.cidr_ipv6 === '::/0';
      const coversStore = PROTECTED_PORTS.some((port) => port >= from && port <= to) || rule.values.ip_protocol === '-1';
      expect({ address: rule.address, openToStores: open && coversStore }).toEqual({ address: rule.address, openToStores: false });
    }
    for (const group of [...resources(storage(), 'aws_security_group'), ...resources(workers(), 'aws_security_group')]) {
      expect(group.values.ingress ?? []).toEqual([]);
    }
  });

  test('every function has a timeout, reserved concurrency and a log group with retention', () => {
    const functions = resources(workers(), 'aws_lambda_function');
    // The six workers, the Flink status check, the trigger status check and the reconciliation.
    expect(functions).toHaveLength(9);
    const logGroups = new Map(resources(workers(), 'aws_cloudwatch_log_group').map((g) => [g.values.name, g.values.retention_in_days]));
    for (const fn of functions) {
      expect(fn.values.timeout).toBeGreaterThanOrEqual(1);
      expect(fn.values.reserved_concurrent_executions).toBeGreaterThanOrEqual(1);
      expect(logGroups.get(`/aws/lambda/${String(fn.values.function_name)}`)).toBe(config.workers.logRetentionDays);
      expect(fn.values.runtime).toBe('nodejs22.x');
    }
  });

  test('each Kafka trigger starts at TRIM_HORIZON in its own group with an on-failure queue', () => {
    const mappings = resources(workers(), 'aws_lambda_event_source_mapping');
    expect(mappings.map((m) => (m.values.self_managed_kafka_event_source_config as { consumer_group_id: string }[])[0].consumer_group_id).sort()).toEqual([
      'click-balance-processor',
      'compensation-processor',
      'ranking-cache-writer',
    ]);
    for (const mapping of mappings) {
      expect(mapping.values).toMatchObject({ starting_position: 'TRIM_HORIZON', batch_size: config.workers.batchSize });
      expect((mapping.values.self_managed_event_source as { endpoints: Record<string, string> }[])[0].endpoints.KAFKA_BOOTSTRAP_SERVERS).toMatch(
        /^[^/]+:9092$/,
      );
      expect(mapping.values.source_access_configuration).toEqual([
        { type: 'BASIC_AUTH', uri: expect.stringMatching(/^arn:aws:secretsmanager:[^:]+:\d{12}:secret:consumer-secret-/) },
      ]);
    }
  });

  test('stateful resources carry prevent_destroy exactly in production (the configuration Terraform planned)', () => {
    const protectedTypes = ['aws_db_instance', 'aws_elasticache_replication_group', 'aws_sqs_queue', 'aws_kms_key'];
    let checked = 0;
    for (const lifecycle of ['storage', 'workers'] as const) {
      const synthesized = synthesizedConfig(stackName(config, lifecycle));
      for (const type of protectedTypes) {
        for (const resource of Object.values(synthesized.resource[type] ?? {})) {
          checked += 1;
          expect((resource.lifecycle as { prevent_destroy?: boolean } | undefined)?.prevent_destroy ?? false).toBe(config.production);
        }
      }
    }
    // database, cache, three on-failure queues, and the KMS keys of the workers' and the storage alert topics
    expect(checked).toBe(1 + 1 + 3 + 2);
  });
});
