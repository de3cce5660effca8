import { PolicyRule } from '../rule';
import { configuredAttributes, preventsDestroy, resourceOfType } from './resource';

/** Roles that grant administration; no service account of this project may hold one. */
export const ADMIN_ROLES = [
  'OrganizationAdmin',
  'EnvironmentAdmin',
  'CloudClusterAdmin',
  'AccountAdmin',
  'FlinkAdmin',
  'ResourceOwner',
  'DataSteward',
  'KsqlAdmin',
] as const;

/** ADS-CC1: service accounts get scoped Developer* roles, never an admin role. */
export const noAdminRoleBindings: PolicyRule = {
  id: 'ADS-CC1',
  description: 'Service accounts hold no admin role binding.',
  level: 'error',
  check(node) {
    const binding = resourceOfType(node, 'confluent_role_binding');
    if (!binding) return undefined;
    const role = configuredAttributes(binding).role_name;
    if (typeof role === 'string' && ((ADMIN_ROLES as readonly string[]).includes(role) || /Admin$/.test(role))) {
      return `role binding grants "${role}"; grant a scoped DeveloperRead/DeveloperWrite/DeveloperManage or FlinkDeveloper binding on exactly the resources the account uses instead.`;
    }
    return undefined;
  },
};

/** ADS-CC2: topics, schemas and the Flink pool cannot be destroyed by a production apply. */
export const productionStreamingPreventDestroy: PolicyRule = {
  id: 'ADS-CC2',
  description: 'In production, topics, their schemas and the Flink compute pool have lifecycle.prevent_destroy.',
  level: 'error',
  check(node, context) {
    if (!context.production) return undefined;
    const resource = resourceOfType(node, 'confluent_kafka_topic', 'confluent_schema', 'confluent_flink_compute_pool');
    if (!resource || preventsDestroy(resource)) return undefined;
    return `${resource.terraformResourceType} must set lifecycle { prevent_destroy = true } in production: destroying it loses events (topics) or running pipelines (pool).`;
  },
};

/** The Confluent rules, in id order. */
export const CONFLUENT_POLICY_RULES: readonly PolicyRule[] = [noAdminRoleBindings, productionStreamingPreventDestroy];
