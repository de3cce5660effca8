import { PolicyRule } from '../rule';
import { isAllowedStatementProperty } from '../../flink/lint';
import { configuredAttributes, preventsDestroy, resourceOfType } from './resource';

/** ADS-FL1: a production statement cannot be deleted or replaced by an apply. */
export const productionFlinkStatementPreventDestroy: PolicyRule = {
  id: 'ADS-FL1',
  description: 'In production, every confluent_flink_statement has lifecycle.prevent_destroy.',
  level: 'error',
  check(node, context) {
    if (!context.production) return undefined;
    const statement = resourceOfType(node, 'confluent_flink_statement');
    if (!statement || preventsDestroy(statement)) return undefined;
    return 'a production Flink statement without lifecycle.prevent_destroy: a replace would drop its state and re-read its inputs from the earliest offset. Set preventDestroy (FlinkSqlStatement does in production) and change SQL through a new version.';
  },
};

/** ADS-FL2: statement properties are only Confluent's `sql.*` options. */
export const flinkStatementPropertiesAllowList: PolicyRule = {
  id: 'ADS-FL2',
  description: 'Flink statement properties come from the sql.* allow-list Confluent Cloud accepts.',
  level: 'error',
  check(node) {
    const statement = resourceOfType(node, 'confluent_flink_statement');
    if (!statement) return undefined;
    const properties = configuredAttributes(statement).properties;
    if (typeof properties !== 'object' || properties === null) return undefined;
    const rejected = Object.keys(properties).filter((key) => !isAllowedStatementProperty(key));
    if (rejected.length === 0) return undefined;
    return `statement properties ${rejected.join(', ')} are not accepted by Confluent Cloud (checkpointing, parallelism and table.exec.* are managed by the service); use sql.* options only.`;
  },
};

/** ADS-FL3: no credentials on statements; the provider holds the Flink API key. */
export const flinkStatementNoInlineCredentials: PolicyRule = {
  id: 'ADS-FL3',
  description: 'Flink statements carry no credentials block; the provider holds the Flink API key.',
  level: 'error',
  check(node) {
    const statement = resourceOfType(node, 'confluent_flink_statement');
    if (!statement) return undefined;
    const attributes = configuredAttributes(statement);
    if (attributes.credentials === undefined && attributes.properties_sensitive === undefined) return undefined;
    return 'a Flink statement with its own credentials (or sensitive properties) copies a secret into Terraform state for every statement; configure flink_api_key / flink_api_secret on the provider instead.';
  },
};

/** The Flink rules, registered by the lead's policy aspect. */
export const FLINK_POLICY_RULES: PolicyRule[] = [productionFlinkStatementPreventDestroy, flinkStatementPropertiesAllowList, flinkStatementNoInlineCredentials];
