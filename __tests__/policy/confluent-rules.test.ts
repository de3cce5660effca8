import { App, TerraformStack, Testing } from 'cdktf';
import { RoleBinding } from '../../.gen/providers/confluent/role-binding';
import { KafkaTopic } from '../../.gen/providers/confluent/kafka-topic';
import { FlinkComputePool } from '../../.gen/providers/confluent/flink-compute-pool';
import { noAdminRoleBindings, productionStreamingPreventDestroy } from '../../constructs/policy/rules/confluent';
import { ConfluentProvider } from '../../.gen/providers/confluent/provider';
import { applyPolicy } from '../../constructs/policy/aspect';

function newStack(): TerraformStack {
  const stack = new TerraformStack(Testing.app(), 'policy-test');
  new ConfluentProvider(stack, 'confluent', {});
  return stack;
}

function binding(stack: TerraformStack, roleName: string): RoleBinding {
  return new RoleBinding(stack, `binding-${roleName}`, {
    principal: 'User:sa-123',
    roleName,
    crnPattern: 'crn://confluent.cloud/organization=o/environment=env-1',
  });
}

function topic(stack: TerraformStack, preventDestroy?: boolean): KafkaTopic {
  return new KafkaTopic(stack, `topic-${String(preventDestroy)}`, {
    topicName: 'ad-events',
    kafkaCluster: { id: 'lkc-1' },
    ...(preventDestroy === undefined ? {} : { lifecycle: { preventDestroy } }),
  });
}

describe('ADS-CC1 no admin role bindings', () => {
  test.each(['DeveloperRead', 'DeveloperWrite', 'DeveloperManage', 'FlinkDeveloper', 'Assigner'])('%s complies', (role) => {
    expect(noAdminRoleBindings.check(binding(newStack(), role), { production: true })).toBeUndefined();
  });

  test.each(['CloudClusterAdmin', 'EnvironmentAdmin', 'OrganizationAdmin', 'FlinkAdmin', 'ResourceOwner'])('%s is rejected', (role) => {
    expect(noAdminRoleBindings.check(binding(newStack(), role), { production: false })).toContain(`grants "${role}"`);
  });

  test('other constructs are not its business', () => {
    expect(noAdminRoleBindings.check(topic(newStack()), { production: true })).toBeUndefined();
  });
});

describe('ADS-CC2 production topics and pool cannot be destroyed', () => {
  test('a production topic with prevent_destroy complies', () => {
    expect(productionStreamingPreventDestroy.check(topic(newStack(), true), { production: true })).toBeUndefined();
  });

  test('a production topic without prevent_destroy is rejected', () => {
    expect(productionStreamingPreventDestroy.check(topic(newStack()), { production: true })).toContain(
      'confluent_kafka_topic must set lifecycle { prevent_destroy = true }',
    );
  });

  test('a production pool with prevent_destroy=false is rejected', () => {
    const pool = new FlinkComputePool(newStack(), 'pool', {
      displayName: 'p',
      cloud: 'AWS',
      region: 'ap-northeast-2',
      environment: { id: 'env-1' },
      lifecycle: { preventDestroy: false },
    });
    expect(productionStreamingPreventDestroy.check(pool, { production: true })).toContain('confluent_flink_compute_pool');
  });

  test('outside production the rule does not apply', () => {
    expect(productionStreamingPreventDestroy.check(topic(newStack()), { production: false })).toBeUndefined();
  });
});

describe('PolicyAspect', () => {
  test('an error-level violation fails synth with the rule id and construct path', () => {
    const stack = newStack();
    applyPolicy(stack, [noAdminRoleBindings], { production: false });
    binding(stack, 'CloudClusterAdmin');
    expect(() => Testing.synth(stack, true)).toThrow(/\[ADS-CC1\] policy-test\/binding-CloudClusterAdmin: role binding grants "CloudClusterAdmin"/);
  });

  test('a compliant stack synthesizes and records nothing', () => {
    const stack = newStack();
    const aspect = applyPolicy(stack, [noAdminRoleBindings, productionStreamingPreventDestroy], { production: true });
    binding(stack, 'DeveloperRead');
    topic(stack, true);
    expect(() => Testing.synth(stack, true)).not.toThrow();
    expect(aspect.violations).toEqual([]);
  });

  test('app.synth refuses a non-compliant stack too', () => {
    const app = new App({ outdir: require('node:fs').mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'policy-')) });
    const stack = new TerraformStack(app, 'prod-like');
    new ConfluentProvider(stack, 'confluent', {});
    applyPolicy(stack, [productionStreamingPreventDestroy], { production: true });
    topic(stack);
    expect(() => app.synth()).toThrow(/ADS-CC2/);
  });
});
