import { IConstruct } from 'constructs';

/** How serious a finding is: errors fail synth, warnings are annotated only. */
export type PolicyLevel = 'error' | 'warning';

/** What a rule is told about the construct it inspects. */
export interface PolicyContext {
  /** Whether the stack being checked belongs to a production environment. */
  readonly production: boolean;
}

/** One finding against one construct. */
export interface PolicyFinding {
  /** Rule id, e.g. `ADS-CC1`. */
  readonly ruleId: string;
  /** What is wrong and how to fix it. */
  readonly message: string;
}

/**
 * A small, pure check in the cdk-nag shape: it looks at one construct (usually a generated
 * resource binding) and returns a finding, or `undefined` when the construct complies or the
 * rule does not apply to it.
 */
export interface PolicyRule {
  /** Stable id used in messages and suppressions. */
  readonly id: string;
  /** One line on what the rule enforces. */
  readonly description: string;
  /** Whether a violation fails synth. */
  readonly level: PolicyLevel;
  /** Inspects a construct; returns the violation message, or undefined if compliant/not applicable. */
  check(node: IConstruct, context: PolicyContext): string | undefined;
}
