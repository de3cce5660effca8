import { Testing } from 'cdktf';
import { FLINK_CONNECTION_OUTPUTS, StreamingStack } from '../../stacks/streaming-stack';
import type { EnvironmentConfig } from '../../config';
import { resourcesOf, SynthesizedStack, testEnvironment } from '../support/environments';

function synth(name: 'dev' | 'prod'): { stack: StreamingStack; json: SynthesizedStack } {
  const stack = new StreamingStack(Testing.app(), { config: testEnvironment(name) });
  return { stack, json: JSON.parse(Testing.synth(stack, true)) as SynthesizedStack };
}

const { stack: prodStack, json: prod } = synth('prod');
const { stack: devStack, json: dev } = synth('dev');

function bindingsOf(json: SynthesizedStack, accountNodeId: string): Array<{ role: string; crn: string }> {
  const accountAddress = Object.entries(json.resource.confluent_service_account).find(([, r]) => String(r.display_name).endsWith(accountNodeId))?.[0];
  if (!accountAddress) throw new Error(`no service account ${accountNodeId}`);
  return resourcesOf(json, 'confluent_role_binding')
    .filter((b) => b.principal === `User:\${confluent_service_account.${accountAddress}.id}`)
    .map((b) => ({ role: String(b.role_name), crn: String(b.crn_pattern).replace(/^\$\{[^}]+\}/, '<crn>') }))
    .sort((a, b) => `${a.role}${a.crn}`.localeCompare(`${b.role}${b.crn}`));
}

describe('StreamingStack', () => {
  test('creates the five contract topics with partitions, retention and cleanup from config', () => {
    const topics = Object.fromEntries(resourcesOf(prod, 'confluent_kafka_topic').map((t) => [t.topic_name, t]));
    expect(Object.keys(topics).sort()).toEqual(['ad-events', 'campaign-events', 'compensation-events', 'conversion-events', 'product-catalog']);
    expect(topics['ad-events']).toMatchObject({ partitions_count: 12, config: { 'cleanup.policy': 'delete', 'retention.ms': '604800000' } });
    expect(topics['product-catalog']).toMatchObject({ partitions_count: 3, config: { 'cleanup.policy': 'compact', 'retention.ms': '-1' } });
    const devAdEvents = resourcesOf(dev, 'confluent_kafka_topic').find((t) => t.topic_name === 'ad-events');
    expect(devAdEvents).toMatchObject({ partitions_count: 3, config: { 'retention.ms': '259200000' } });
  });

  test('registers each contract as a JSON Schema under <topic>-value', () => {
    const schemas = resourcesOf(prod, 'confluent_schema');
    expect(schemas.map((s) => s.subject_name).sort()).toEqual([
      'ad-events-value',
      'campaign-events-value',
      'compensation-events-value',
      'conversion-events-value',
      'product-catalog-value',
    ]);
    const adEvents = schemas.find((s) => s.subject_name === 'ad-events-value')!;
    expect(adEvents.format).toBe('JSON');
    expect(JSON.parse(String(adEvents.schema))).toMatchObject({ title: 'AdEvent', required: expect.arrayContaining(['event_id']) });
  });

  test("the workers consumer may read exactly its three topics in exactly its three groups, and in the replay command's own groups", () => {
    expect(bindingsOf(prod, 'workers-consumer')).toEqual([
      // npm run replay reads with the consumer key in a fresh group of its own (never the triggers' groups).
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/group=adstream-replay-*' },
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/group=click-balance-processor' },
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/group=compensation-processor' },
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/group=ranking-cache-writer' },
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/topic=ad-events' },
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/topic=compensation-events' },
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/topic=rtb-rankings-v2' },
    ]);
  });

  test('the workers producer may only write campaign-events', () => {
    expect(bindingsOf(prod, 'workers-producer')).toEqual([
      { role: 'DeveloperWrite', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/topic=campaign-events' },
    ]);
  });

  test('the Flink runner runs statements, reads the sources, writes compensations and uses Flink transactional ids', () => {
    const bindings = bindingsOf(prod, 'flink-runner');
    expect(bindings).toContainEqual({ role: 'FlinkDeveloper', crn: '<crn>' });
    expect(bindings).toContainEqual({
      role: 'DeveloperWrite',
      crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/transactional-id=_confluent-flink_*',
    });
    expect(bindings).toContainEqual({ role: 'DeveloperWrite', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/topic=compensation-events' });
    expect(bindings).toContainEqual({ role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/topic=ad-events' });
    expect(bindings).not.toContainEqual(expect.objectContaining({ crn: expect.stringContaining('topic=*') }));
    expect(bindings.filter((b) => b.crn.includes('topic=ad-events'))).toEqual([
      { role: 'DeveloperRead', crn: '<crn>/kafka=${confluent_kafka_cluster.cluster_A4C38409.id}/topic=ad-events' },
    ]);
  });

  test('the deployer may assign statements to the runner and nothing else but FlinkDeveloper', () => {
    const assigner = resourcesOf(prod, 'confluent_role_binding').filter((b) => b.role_name === 'Assigner');
    expect(assigner).toHaveLength(1);
    expect(String(assigner[0].crn_pattern)).toMatch(/\/service-account=\$\{confluent_service_account\.flink-runner_account_[A-F0-9]+\.id\}$/);
    expect(assigner[0].principal).toMatch(/^User:\$\{confluent_service_account\.flink-deployer_account_[A-F0-9]+\.id\}$/);
    expect(bindingsOf(prod, 'flink-deployer').map((b) => b.role)).toEqual(['Assigner', 'FlinkDeveloper']);
  });

  test('no service account holds an admin role', () => {
    const roles = new Set(resourcesOf(prod, 'confluent_role_binding').map((b) => b.role_name));
    expect([...roles].sort()).toEqual(['Assigner', 'DeveloperManage', 'DeveloperRead', 'DeveloperWrite', 'FlinkDeveloper']);
  });

  test('every API key depends on all role bindings of its owner', () => {
    const keys = Object.entries(prod.resource.confluent_api_key);
    expect(keys).toHaveLength(5);
    for (const [, key] of keys) {
      const owner = String((key.owner as { id: string }).id).match(/confluent_service_account\.([^.]+)\.id/)![1];
      const ownerBindings = Object.entries(prod.resource.confluent_role_binding)
        .filter(([, b]) => b.principal === `User:\${confluent_service_account.${owner}.id}`)
        .map(([name]) => `confluent_role_binding.${name}`);
      expect(ownerBindings.length).toBeGreaterThan(0);
      expect(key.depends_on).toEqual(expect.arrayContaining(ownerBindings));
    }
  });

  test('the compute pool size comes from config', () => {
    expect(resourcesOf(prod, 'confluent_flink_compute_pool')[0]).toMatchObject({ max_cfu: 20, cloud: 'AWS', region: 'ap-northeast-2' });
    expect(resourcesOf(dev, 'confluent_flink_compute_pool')[0]).toMatchObject({ max_cfu: 10 });
  });

  test('production topics, schemas and the pool cannot be destroyed; dev ones can', () => {
    for (const type of ['confluent_kafka_topic', 'confluent_schema', 'confluent_flink_compute_pool', 'confluent_kafka_cluster', 'confluent_environment']) {
      for (const r of resourcesOf(prod, type)) expect(r.lifecycle).toEqual({ prevent_destroy: true });
      for (const r of resourcesOf(dev, type)) expect(r.lifecycle).toEqual({ prevent_destroy: false });
    }
  });

  test('credentials come from sensitive variables and the consumer key reaches Secrets Manager by reference only', () => {
    expect(prod.variable).toMatchObject({
      confluent_cloud_api_key: { sensitive: true, type: 'string' },
      confluent_cloud_api_secret: { sensitive: true, type: 'string' },
    });
    expect(prod.provider!.confluent[0]).toEqual({ cloud_api_key: '${var.confluent_cloud_api_key}', cloud_api_secret: '${var.confluent_cloud_api_secret}' });
    const versions = resourcesOf(prod, 'aws_secretsmanager_secret_version');
    expect(versions).toHaveLength(2);
    for (const v of versions) {
      expect(v.secret_string).toMatch(/^\$\{jsonencode\(\{"username" = confluent_api_key\.[^.]+\.id, "password" = confluent_api_key\.[^.]+\.secret\}\)\}$/);
    }
    expect(prod.output!.flink_api_secret).toMatchObject({ sensitive: true });
  });

  describe('worker API key rotation (two slots, a secret each)', () => {
    const keysOf = (json: SynthesizedStack) =>
      resourcesOf(json, 'confluent_api_key')
        .map((k) => String(k.display_name))
        .filter((name) => name.includes('-workers-'))
        .sort();
    const secretValues = (json: SynthesizedStack) =>
      Object.entries(json.resource.aws_secretsmanager_secret_version ?? {}).map(([, v]) => {
        const secret = /^\$\{aws_secretsmanager_secret\.([^.]+)\.id\}$/.exec(String(v.secret_id))![1];
        const key = /confluent_api_key\.([^.]+)\.id/.exec(String(v.secret_string))![1];
        return { secret: String(json.resource.aws_secretsmanager_secret[secret].name), key: String(json.resource.confluent_api_key[key].display_name) };
      });
    // The active slot's secrets, as the workers stack receives them (cross-stack outputs).
    const active = (json: SynthesizedStack) => ({
      consumer: String(json.output!.workers_consumer_secret_arn.value),
      producer: String(json.output!.workers_producer_secret_arn.value),
    });
    const rotation = (workerApiKeys: EnvironmentConfig['confluent']['workerApiKeys']) => {
      const base = testEnvironment('prod');
      const stack = new StreamingStack(Testing.app(), { config: { ...base, confluent: { ...base.confluent, workerApiKeys } } });
      return { json: JSON.parse(Testing.synth(stack, true)) as SynthesizedStack };
    };

    test('by default one key per account in the blue slot, under the original addresses; both slots have a secret', () => {
      expect(keysOf(prod)).toEqual(['adstream-prod-workers-consumer', 'adstream-prod-workers-producer']);
      expect(Object.keys(prod.resource.confluent_api_key).filter((a) => a.includes('workers'))).toEqual([
        expect.stringMatching(/^workers-consumer_kafka-api-key_/),
        expect.stringMatching(/^workers-producer_kafka-api-key_/),
      ]);
      expect(
        resourcesOf(prod, 'aws_secretsmanager_secret')
          .map((s) => s.name)
          .sort(),
      ).toEqual([
        'adstream/prod/kafka/workers-consumer',
        'adstream/prod/kafka/workers-consumer-green',
        'adstream/prod/kafka/workers-producer',
        'adstream/prod/kafka/workers-producer-green',
      ]);
      expect(secretValues(prod).sort((a, b) => a.secret.localeCompare(b.secret))).toEqual([
        { secret: 'adstream/prod/kafka/workers-consumer', key: 'adstream-prod-workers-consumer' },
        { secret: 'adstream/prod/kafka/workers-producer', key: 'adstream-prod-workers-producer' },
      ]);
      expect(active(prod).consumer).toMatch(/^\$\{aws_secretsmanager_secret\.consumer-secret_[A-F0-9]+\.arn\}$/);
      expect(active(prod).producer).toMatch(/^\$\{aws_secretsmanager_secret\.producer-secret_[A-F0-9]+\.arn\}$/);
    });

    test('step 1 adds the green keys and fills their secrets while the functions stay on blue', () => {
      const { json } = rotation({ slots: ['blue', 'green'], active: 'blue' });
      expect(keysOf(json)).toEqual([
        'adstream-prod-workers-consumer',
        'adstream-prod-workers-consumer-green',
        'adstream-prod-workers-producer',
        'adstream-prod-workers-producer-green',
      ]);
      expect(secretValues(json)).toHaveLength(4);
      expect(active(json)).toEqual(active(prod));
    });

    test('step 2 points the functions and triggers at the green secrets, which hold the green keys', () => {
      const { json } = rotation({ slots: ['blue', 'green'], active: 'green' });
      expect(active(json).consumer).toMatch(/^\$\{aws_secretsmanager_secret\.consumer-secret-green_secret_[A-F0-9]+\.arn\}$/);
      expect(active(json).producer).toMatch(/^\$\{aws_secretsmanager_secret\.producer-secret-green_secret_[A-F0-9]+\.arn\}$/);
      expect(secretValues(json)).toContainEqual({ secret: 'adstream/prod/kafka/workers-consumer-green', key: 'adstream-prod-workers-consumer-green' });
    });

    test('step 3 deletes the blue keys; their secrets stay, empty, for the next rotation', () => {
      const { json } = rotation({ slots: ['green'], active: 'green' });
      expect(keysOf(json)).toEqual(['adstream-prod-workers-consumer-green', 'adstream-prod-workers-producer-green']);
      expect(resourcesOf(json, 'aws_secretsmanager_secret')).toHaveLength(4);
      expect(
        secretValues(json)
          .map((v) => v.secret)
          .sort(),
      ).toEqual(['adstream/prod/kafka/workers-consumer-green', 'adstream/prod/kafka/workers-producer-green']);
      expect(active(json).consumer).toContain('consumer-secret-green_secret_');
      // The green keys depend on the consumer's role bindings like the blue ones did.
      const green = Object.values(json.resource.confluent_api_key).find((k) => k.display_name === 'adstream-prod-workers-consumer-green')!;
      expect((green.depends_on as string[]).length).toBeGreaterThan(0);
    });
  });

  test('Lambda triggers get a bare host:port bootstrap address', () => {
    expect(prod.output!.kafka_bootstrap_servers.value).toBe('${replace(confluent_kafka_cluster.cluster_A4C38409.bootstrap_endpoint, "SASL_SSL://", "")}');
  });

  test('the Schema Registry lookup waits for the Kafka cluster (Confluent provisions the registry with the first cluster)', () => {
    const [lookup] = Object.values(prod.data!.confluent_schema_registry_cluster);
    expect(lookup.depends_on).toEqual([expect.stringMatching(/^confluent_kafka_cluster\.cluster_[A-F0-9]+$/)]);
  });

  test('outputs everything flink:check needs, under the names it reads', () => {
    expect(Object.keys(prod.output!)).toEqual(expect.arrayContaining(Object.values(FLINK_CONNECTION_OUTPUTS)));
    expect(prod.output![FLINK_CONNECTION_OUTPUTS.apiSecret].sensitive).toBe(true);
    expect(prod.output![FLINK_CONNECTION_OUTPUTS.principalId].value).toMatch(/^\$\{confluent_service_account\.flink-runner_/);
  });

  test('a referenced environment and cluster are looked up, not created', () => {
    const config = testEnvironment('dev');
    const stack = new StreamingStack(Testing.app(), {
      config: {
        ...config,
        confluent: { ...config.confluent, environment: { mode: 'reference', id: 'env-abc123' }, kafkaCluster: { mode: 'reference', id: 'lkc-xyz789' } },
      },
    });
    const json = JSON.parse(Testing.synth(stack, true)) as SynthesizedStack;
    expect(json.resource.confluent_environment).toBeUndefined();
    expect(json.resource.confluent_kafka_cluster).toBeUndefined();
    expect(Object.values(json.data!.confluent_environment)[0]).toMatchObject({ id: 'env-abc123' });
    expect(Object.values(json.data!.confluent_schema_registry_cluster)[0].depends_on).toEqual([
      expect.stringMatching(/^data\.confluent_kafka_cluster\.cluster_[A-F0-9]+$/),
    ]);
    expect(Object.values(json.data!.confluent_kafka_cluster)[0]).toMatchObject({
      id: 'lkc-xyz789',
      environment: { id: expect.stringMatching(/^\$\{data\.confluent_environment\.environment_[A-F0-9]+\.id\}$/) },
    });
  });

  test('no policy violation in either environment', () => {
    expect(prodStack.policy.violations).toEqual([]);
    expect(devStack.policy.violations).toEqual([]);
  });

  test.each([['dev'], ['prod']] as const)('synthesized HCL of the %s streaming stack (review surface)', (name) => {
    const stack = new StreamingStack(Testing.app(), { config: testEnvironment(name) });
    expect(Testing.synthHcl(stack)).toMatchSnapshot();
  });
});
