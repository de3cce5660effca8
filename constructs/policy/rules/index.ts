import { PolicyRule } from '../rule';
import { AWS_POLICY_RULES } from './aws';
import { CONFLUENT_POLICY_RULES } from './confluent';
import { FLINK_POLICY_RULES } from './flink';

/** Every policy rule, applied to every stack by `EnvironmentStack`. */
export const ALL_POLICY_RULES: readonly PolicyRule[] = [...CONFLUENT_POLICY_RULES, ...FLINK_POLICY_RULES, ...AWS_POLICY_RULES];
