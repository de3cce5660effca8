/**
 * GIVEN the four stacks of each environment, wired exactly as main.ts wires them
 * WHEN the app is synthesized
 * THEN cdktf records the dependencies `cdktf deploy 'adstream-<env>-*'` orders by, and only the
 * streaming stack takes input variables (the deployer's Confluent Cloud key): the Flink and
 * workers stacks read everything else from the other stacks' state.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'cdktf';
import { stackName } from '../../stacks/environment-stack';
import { createFakeBundleRoot } from '../aws/support/fixtures';
import { addEnvironmentStacks } from '../aws/support/synth';
import { SynthesizedStack, testEnvironment } from '../support/environments';

const outdir = mkdtempSync(join(tmpdir(), 'adstream-app-wiring-'));
const bundleRoot = createFakeBundleRoot();
const environments = [testEnvironment('dev'), testEnvironment('prod')];
const app = new App({ outdir });
for (const config of environments) addEnvironmentStacks(app, config, { bundleRoot });
app.synth();
const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as { stacks: Record<string, { dependencies: string[] }> };
const stackJson = (name: string) => JSON.parse(readFileSync(join(outdir, 'stacks', name, 'cdk.tf.json'), 'utf8')) as SynthesizedStack;

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
  rmSync(bundleRoot, { recursive: true, force: true });
});

describe.each(environments.map((config) => [config.name, config] as const))('stacks of %s', (_name, config) => {
  const name = (lifecycle: 'streaming' | 'flink' | 'storage' | 'workers') => stackName(config, lifecycle);

  test('dependencies: flink after streaming, workers after storage and streaming, the rest independent', () => {
    expect(manifest.stacks[name('streaming')].dependencies).toEqual([]);
    expect(manifest.stacks[name('storage')].dependencies).toEqual([]);
    expect(manifest.stacks[name('flink')].dependencies).toEqual([name('streaming')]);
    expect([...manifest.stacks[name('workers')].dependencies].sort()).toEqual([name('storage'), name('streaming')]);
  });

  test('only the streaming stack has input variables, and only the Confluent Cloud key', () => {
    expect(Object.keys(stackJson(name('streaming')).variable ?? {}).sort()).toEqual(['confluent_cloud_api_key', 'confluent_cloud_api_secret']);
    for (const lifecycle of ['flink', 'storage', 'workers'] as const) expect(stackJson(name(lifecycle)).variable ?? {}).toEqual({});
  });

  test('the Flink provider gets the deployer key from the streaming stack, and that output is sensitive', () => {
    const provider = stackJson(name('flink')).provider!.confluent[0];
    expect(provider.flink_api_secret).toMatch(
      new RegExp(`^\\$\\{data\\.terraform_remote_state\\.cross-stack-reference-input-${name('streaming')}\\.outputs\\.cross-stack-output-confluent_api_key`),
    );
    const outputs = stackJson(name('streaming')).output!;
    const secretOutput = Object.entries(outputs).find(([key, o]) => key.startsWith('cross-stack-output-') && String(o.value).endsWith('.secret}'));
    expect(secretOutput?.[1].sensitive).toBe(true);
  });

  test('the outbox gets the campaign-events schema id from the streaming stack: never plain JSON', () => {
    const workers = stackJson(name('workers'));
    const outboxSweep = Object.values(workers.resource.aws_lambda_function).find((f) => f.function_name === `adstream-${config.name}-outbox-sweep`)!;
    const variables = (outboxSweep.environment as { variables: Record<string, string> }).variables;
    expect(variables.CAMPAIGN_EVENTS_SCHEMA_ID).toMatch(
      /^\$\{data\.terraform_remote_state\.cross-stack-reference-input-adstream-[a-z]+-streaming\.outputs\.cross-stack-output-confluent_schema[^}]*schema_identifier\}$/,
    );
  });
});
