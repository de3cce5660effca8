import { PolicyRule } from '../rule';
import { CONFLUENT_POLICY_RULES } from './confluent';

/** Every policy rule, applied to every stack by `EnvironmentStack`. */
export const ALL_POLICY_RULES: readonly PolicyRule[] = [...CONFLUENT_POLICY_RULES];
