import { IConstruct } from 'constructs';
import { Annotations, Aspects, IAspect, TerraformStack } from 'cdktf';
import { PolicyContext, PolicyRule } from './rule';

/** One recorded violation. */
export interface PolicyViolationRecord {
  /** Rule that fired. */
  readonly ruleId: string;
  /** Construct path of the offending node. */
  readonly path: string;
  /** What is wrong and how to fix it. */
  readonly message: string;
  /** Whether it fails synth. */
  readonly level: PolicyRule['level'];
}

/**
 * Applies pure policy rules to every construct of a stack, in the cdk-nag shape. Error-level
 * findings fail synth through a stack validation (so `cdktf synth` and `Testing.synth(stack,
 * true)` both refuse the stack); warnings become annotations.
 */
export class PolicyAspect implements IAspect {
  private readonly found: PolicyViolationRecord[] = [];

  constructor(
    private readonly rules: readonly PolicyRule[],
    private readonly context: PolicyContext,
  ) {}

  /** Every violation found so far. */
  public get violations(): readonly PolicyViolationRecord[] {
    return this.found;
  }

  public visit(node: IConstruct): void {
    for (const rule of this.rules) {
      const message = rule.check(node, this.context);
      if (message === undefined) continue;
      const record = { ruleId: rule.id, path: node.node.path, message, level: rule.level };
      if (this.found.some((f) => f.ruleId === record.ruleId && f.path === record.path)) continue;
      this.found.push(record);
      if (rule.level === 'warning') Annotations.of(node).addWarning(`[${rule.id}] ${message}`);
    }
  }
}

/**
 * Attaches the policy to a stack: the aspect visits every construct at synth, and a stack
 * validation reports the error-level violations. Returns the aspect so tests can inspect it.
 */
export function applyPolicy(stack: TerraformStack, rules: readonly PolicyRule[], context: PolicyContext): PolicyAspect {
  const aspect = new PolicyAspect(rules, context);
  Aspects.of(stack).add(aspect);
  stack.node.addValidation({
    validate: () => aspect.violations.filter((v) => v.level === 'error').map((v) => `[${v.ruleId}] ${v.path}: ${v.message}`),
  });
  return aspect;
}
