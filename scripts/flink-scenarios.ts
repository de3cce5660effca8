// Scenario tests of the Flink pipelines on the local engine. A scenario is one JSON file under
// flink-sql/scenarios/ (format: flink-sql/README.md, "Scenario files"): the records of each
// input topic in arrival order and the rows each sink topic must hold. The statements are the
// synthesized ones of the scenario's environment; only the scenario pipeline's INSERTs run.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadEnvironment } from '../config';
import { FLINK_PIPELINE_IDS, FlinkPipelineId } from '../config/flink';
import { EVENT_CONTRACTS } from '../contracts';
import { parseCreateTable } from '../constructs/flink/catalog';
import { localJob } from '../constructs/flink/local-engine';
import { ChangelogRow, EngineRecord, FlinkEngine } from './flink-engine';
import { releasedVersions, synthesizedDeployment, upgradeRetiredVersions } from './flink-statements';
import { repoRoot } from './java';

/** Where the project's scenarios live. */
export const SCENARIO_ROOT = join(repoRoot, 'flink-sql', 'scenarios');

/** One input record of a scenario. */
export interface ScenarioInput {
  /** Input topic (a foundation topic or one of our tables). */
  readonly topic: string;
  /** Kafka partition, default 0. */
  readonly partition?: number;
  /** Raw record key. */
  readonly key?: string | null;
  /** JSON value as the contract carries it; null for a tombstone. */
  readonly value: Record<string, unknown> | null;
  /** Record timestamp (epoch ms or ISO-8601 UTC); default the value's event_ts / updated_ts. */
  readonly timestamp?: string | number;
}

/** What one sink must hold. */
export interface SinkExpectation {
  /** Rows of the table at the end (upsert: one per key; append: every row), in any order. */
  readonly final?: readonly Record<string, unknown>[];
  /** The exact changelog, in order. */
  readonly changelog?: readonly ChangelogRow[];
}

/** A scenario file. */
export interface Scenario {
  /** What the scenario shows. */
  readonly description: string;
  /** The pipeline whose INSERTs run. */
  readonly pipeline: FlinkPipelineId;
  /** Environment whose synthesized statements and topic settings are used (default dev). */
  readonly environment?: string;
  /** Pipeline version (default: the newest released one). */
  readonly version?: number;
  /** Fields merged under every value of a topic. */
  readonly defaults?: Readonly<Record<string, Record<string, unknown>>>;
  /** Records of every input topic, in arrival order. */
  readonly inputs: readonly ScenarioInput[];
  /** Expected rows per sink topic. */
  readonly expect: Readonly<Record<string, SinkExpectation>>;
  /** Also run the input into a fresh statement and require the same rows. */
  readonly replay?: boolean;
  /** A regular expression the run's error must match: the scenario expects the statement to fail. */
  readonly expectError?: string;
}

/** Outcome of one scenario run. */
export interface ScenarioResult {
  /** Changelog of every sink written. */
  readonly sinks: Readonly<Record<string, readonly ChangelogRow[]>>;
  /** Every mismatch, empty when the scenario passes. */
  readonly problems: readonly string[];
}

/** Every scenario file under `root`, sorted, as paths. */
export function scenarioFiles(root: string = SCENARIO_ROOT): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (entry.endsWith('.json')) out.push(path);
    }
  };
  walk(root);
  return out;
}

/** Reads and checks a scenario file. */
export function loadScenario(path: string): Scenario {
  const scenario = JSON.parse(readFileSync(path, 'utf8')) as Scenario;
  const where = relative(process.cwd(), path);
  if (typeof scenario.description !== 'string') throw new Error(`${where}: "description" is required.`);
  if (!FLINK_PIPELINE_IDS.includes(scenario.pipeline)) throw new Error(`${where}: "pipeline" must be one of ${FLINK_PIPELINE_IDS.join(', ')}.`);
  if (!Array.isArray(scenario.inputs)) throw new Error(`${where}: "inputs" must be an array of records.`);
  if (scenario.expectError === undefined && (typeof scenario.expect !== 'object' || scenario.expect === null))
    throw new Error(`${where}: "expect" must map sink topics to expectations.`);
  return scenario;
}

function epochMillis(value: unknown, what: string): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    if (!Number.isNaN(ms) && /Z$|[+-]\d\d:\d\d$/.test(value)) return ms;
  }
  throw new Error(`${what}: expected epoch milliseconds or an ISO-8601 UTC timestamp, got ${JSON.stringify(value)}.`);
}

/** Turns scenario inputs into engine records: defaults merged, timestamps as epoch ms (the wire format). */
export function engineInputs(scenario: Scenario): Record<string, EngineRecord[]> {
  const out: Record<string, EngineRecord[]> = {};
  scenario.inputs.forEach((input, index) => {
    const what = `inputs[${index}] (${input.topic})`;
    const contract = EVENT_CONTRACTS.find((c) => c.topic === input.topic);
    let value: Record<string, unknown> | null = null;
    if (input.value !== null) {
      value = { ...(scenario.defaults?.[input.topic] ?? {}), ...input.value };
      for (const [name, spec] of Object.entries(contract?.fields ?? {})) {
        if (spec.kind === 'timestamp-millis' && value[name] !== undefined && value[name] !== null) value[name] = epochMillis(value[name], `${what}.${name}`);
      }
    }
    const timestamp = input.timestamp ?? value?.event_ts ?? value?.updated_ts;
    (out[input.topic] ??= []).push({
      partition: input.partition ?? 0,
      key: input.key ?? null,
      value,
      timestamp: epochMillis(timestamp, `${what}.timestamp`),
    });
  });
  return out;
}

/** `"$sha256:text"` in an expectation stands for the hex SHA-256 of `text`. */
function expand(value: unknown): unknown {
  if (typeof value === 'string' && value.startsWith('$sha256:')) return createHash('sha256').update(value.slice('$sha256:'.length), 'utf8').digest('hex');
  if (Array.isArray(value)) return value.map(expand);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]));
  return value;
}

/**
 * `row` reduced to the fields `like` names, recursively; arrays compare as multisets (sorted),
 * because ARRAY_AGG keeps no order (the ranking's elements carry rank_no instead).
 */
function project(row: Record<string, unknown>, like: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(like).map((k) => [k, projectValue(row[k], like[k])]));
}

function projectValue(value: unknown, like: unknown): unknown {
  if (Array.isArray(value) && Array.isArray(like)) {
    const shape = like[0];
    return value
      .map((v) =>
        shape && typeof shape === 'object' && v && typeof v === 'object' ? project(v as Record<string, unknown>, shape as Record<string, unknown>) : v,
      )
      .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  if (value && like && typeof value === 'object' && typeof like === 'object' && !Array.isArray(value)) {
    return project(value as Record<string, unknown>, like as Record<string, unknown>);
  }
  return value;
}

function sortArrays(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortArrays).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, sortArrays(v)]));
  return value;
}

function canonical(rows: readonly Record<string, unknown>[]): string[] {
  return rows.map((r) => JSON.stringify(r)).sort();
}

/** The table a changelog leaves behind: by primary key for an upsert table, every insert otherwise. */
export function finalTable(changelog: readonly ChangelogRow[], primaryKey: readonly string[]): Record<string, unknown>[] {
  if (primaryKey.length === 0) return changelog.filter((c) => c.op === '+I').map((c) => c.row);
  const table = new Map<string, Record<string, unknown>>();
  for (const { op, row } of changelog) {
    const key = JSON.stringify(primaryKey.map((k) => row[k]));
    if (op === '+I' || op === '+U') table.set(key, row);
    else if (op === '-D' || op === '-U') table.delete(key);
  }
  return [...table.values()];
}

/** Runs a scenario on `engine` and compares every expected sink. */
export async function runScenario(engine: FlinkEngine, scenario: Scenario): Promise<ScenarioResult> {
  const config = loadEnvironment(scenario.environment ?? 'dev');
  // Default: the newest released version of the pipeline (what the next deploy runs).
  const version = scenario.version ?? Math.max(...(releasedVersions().get(scenario.pipeline) ?? [config.flink.pipelines[scenario.pipeline].version]));
  const deployment = synthesizedDeployment(
    config,
    version === config.flink.pipelines[scenario.pipeline].version
      ? {}
      : {
          flink: {
            allowUnreleasedVersions: true,
            pipelines: { ...config.flink.pipelines, [scenario.pipeline]: { version, stopped: false, retiredVersions: upgradeRetiredVersions(version) } },
          },
        },
  );
  // All DDL (tables, watermarks, changelog modes), then the running INSERTs of the scenario's pipeline.
  const statements = deployment.statements.filter((s) => s.kind === 'ddl' || (s.pipeline === scenario.pipeline && s.running));
  const answer = await engine.run(localJob(statements, deployment.cleanupPolicies), { execute: true, inputs: engineInputs(scenario) });
  if (scenario.expectError !== undefined) {
    const message = `${answer.error?.statement}: ${answer.error?.message}`;
    if (answer.ok) return { sinks: answer.sinks ?? {}, problems: [`expected the run to fail with /${scenario.expectError}/, but it succeeded.`] };
    return {
      sinks: {},
      problems: new RegExp(scenario.expectError).test(message) ? [] : [`expected an error matching /${scenario.expectError}/, got: ${message}`],
    };
  }
  if (!answer.ok) return { sinks: answer.sinks ?? {}, problems: [`${answer.error?.statement}: ${answer.error?.message}`] };
  const sinks = answer.sinks ?? {};
  const keys = new Map<string, readonly string[]>();
  for (const s of deployment.statements) {
    const created = parseCreateTable(s.sql);
    if (created) keys.set(created.table, created.primaryKey);
  }
  const problems: string[] = [];
  for (const [topic, expectation] of Object.entries(scenario.expect)) {
    const changelog = sinks[topic] ?? [];
    if (expectation.final) {
      const expected = sortArrays(expand(expectation.final)) as Record<string, unknown>[];
      const actual = finalTable(changelog, keys.get(topic) ?? []);
      const actualRows = canonical(actual.map((row) => project(row, expected[0] ?? row)));
      const expectedRows = canonical(expected);
      if (JSON.stringify(actualRows) !== JSON.stringify(expectedRows) || expected.some((e) => Object.keys(e).join() !== Object.keys(expected[0]).join())) {
        problems.push(`${topic}: final table differs.\n  expected: ${expectedRows.join('\n            ')}\n  actual:   ${actualRows.join('\n            ')}`);
      }
    }
    if (expectation.changelog) {
      const expected = (expand(expectation.changelog) as ChangelogRow[]).map((c) => ({ op: c.op, row: sortArrays(c.row) as Record<string, unknown> }));
      const actual = changelog.map((c, i) => ({ op: c.op, row: project(c.row, expected[i]?.row ?? c.row) }));
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        problems.push(
          `${topic}: changelog differs.\n  expected: ${expected.map((e) => JSON.stringify(e)).join('\n            ')}\n  actual:   ${actual.map((e) => JSON.stringify(e)).join('\n            ')}`,
        );
      }
    }
  }
  if (scenario.replay) {
    const again = await engine.run(localJob(statements, deployment.cleanupPolicies), { execute: true, inputs: engineInputs(scenario) });
    // Identical output: every row of every sink (append: all rows; upsert: the final table), ids
    // included. The order of rows between independent branches of a plan is not compared.
    const tables = (all: Readonly<Record<string, readonly ChangelogRow[]>> | undefined) =>
      Object.fromEntries(Object.entries(all ?? {}).map(([topic, rows]) => [topic, canonical(finalTable(rows, keys.get(topic) ?? []))]));
    if (!again.ok || JSON.stringify(tables(again.sinks)) !== JSON.stringify(tables(sinks))) {
      problems.push(
        `replay: the same input into a fresh statement gave a different output.\n  first:  ${JSON.stringify(tables(sinks))}\n  replay: ${JSON.stringify(again.ok ? tables(again.sinks) : again.error)}`,
      );
    }
  }
  return { sinks, problems };
}
