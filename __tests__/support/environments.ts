import { EnvironmentConfig, loadEnvironment } from '../../config';

/** A committed environment with its state backend switched to local, as tests synthesize it. */
export function testEnvironment(name: 'dev' | 'prod', overrides: Partial<EnvironmentConfig> = {}): EnvironmentConfig {
  return { ...loadEnvironment(name), stateBackend: { kind: 'local', directory: 'terraform-state' }, ...overrides };
}

/** Synthesized Terraform JSON, parsed. */
export interface SynthesizedStack {
  readonly resource: Record<string, Record<string, Record<string, unknown>>>;
  readonly data?: Record<string, Record<string, Record<string, unknown>>>;
  readonly output?: Record<string, Record<string, unknown>>;
  readonly variable?: Record<string, Record<string, unknown>>;
  readonly provider?: Record<string, Array<Record<string, unknown>>>;
  readonly terraform?: Record<string, unknown>;
}

/** All resources of one type, as an array of their attribute objects. */
export function resourcesOf(stack: SynthesizedStack, type: string): Array<Record<string, unknown>> {
  return Object.values(stack.resource[type] ?? {});
}

/** The Terraform address of a resource of `type` whose attributes satisfy `predicate`. */
export function addressOf(stack: SynthesizedStack, type: string, predicate: (r: Record<string, unknown>) => boolean): string {
  const entry = Object.entries(stack.resource[type] ?? {}).find(([, r]) => predicate(r));
  if (!entry) throw new Error(`no ${type} matches`);
  return `${type}.${entry[0]}`;
}
