import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';

/**
 * Test-only substitution of cdktf's cross-stack reads. The workers and flink stacks read the
 * other stacks' outputs through `data.terraform_remote_state`; in the tests the backends are
 * local and nothing was ever applied, so before `terraform plan` this writes, for each remote
 * state a stack reads, a state file holding plausible values of exactly the outputs read. The
 * synthesized stacks are not edited: what is planned is what `main.ts` would deploy, only the
 * producer stacks' state is made up.
 */

type TfJson = {
  data?: { terraform_remote_state?: Record<string, { backend: string; config: { path?: string } }> };
  output?: Record<string, { value: unknown }>;
};

const PREFIX = 'cross-stack-reference-input-';

/** One rule: when a cross-stack output's expression matches, the value its fake state holds. */
export type FakeValueRule = readonly [pattern: RegExp, value: (match: RegExpMatchArray, index: number) => unknown];

/**
 * Fake values by the producer's expression. An expression no rule knows fails the test, so a
 * new cross-stack reference gets a deliberate fake instead of a silent empty string.
 */
export function awsFakeValueRules(region: string, accountId: string): FakeValueRule[] {
  const hex = (n: number) => n.toString(16).padStart(17, '0');
  return [
    [/^\$\{aws_vpc\.[^.]+\.id\}$/, () => 'vpc-0123456789abcdef0'],
    [/^\$\{aws_subnet\.[^.]+\.id\}$/, (_m, i) => `subnet-${hex(i)}`],
    [/^\$\{aws_security_group\.[^.]+\.id\}$/, (_m, i) => `sg-${hex(i)}`],
    [/^\$\{aws_db_instance\.[^.]+\.address\}$/, () => `ledger.abcdefghij.${region}.rds.amazonaws.com`],
    [/^\$\{aws_db_proxy\.[^.]+\.endpoint\}$/, () => `ledger.proxy-abcdefghij.${region}.rds.amazonaws.com`],
    [/^\$\{aws_db_instance\.[^.]+\.resource_id\}$/, () => 'db-ABCDEFGHIJKLMNOPQRSTUVWXY0'],
    [/^\$\{aws_db_proxy\.[^.]+\.arn\}$/, () => `arn:aws:rds:${region}:${accountId}:db-proxy:prx-0123456789abcdef0`],
    [/^\$\{aws_elasticache_replication_group\.[^.]+\.primary_endpoint_address\}$/, () => `master.cache.abcdef.apn2.cache.amazonaws.com`],
    [
      /^\$\{aws_db_instance\.[^.]+\.master_user_secret\[0\]\.secret_arn\}$/,
      () => `arn:aws:secretsmanager:${region}:${accountId}:secret:rds!db-0f1e2d3c-AbCdEf`,
    ],
    [
      /^\$\{aws_secretsmanager_secret\.([^.]+)\.arn\}$/,
      (m) => `arn:aws:secretsmanager:${region}:${accountId}:secret:${m[1].replace(/_[0-9A-F]{8}$/, '')}-AbCdEf`,
    ],
    [/^\$\{confluent_kafka_cluster\.[^.]+\.bootstrap_endpoint\}$/, () => `SASL_SSL://pkc-abc12.${region}.aws.confluent.cloud:9092`],
    [/^\$\{confluent_schema\.[^.]+\.schema_identifier\}$/, () => 100003],
  ];
}

function fakeValue(expression: string, rules: readonly FakeValueRule[], index: number, where: string): unknown {
  for (const [pattern, value] of rules) {
    const match = expression.match(pattern);
    if (match) return value(match, index);
  }
  throw new Error(`no fake value for cross-stack output ${where} = ${expression}; add a rule to awsFakeValueRules`);
}

/**
 * Writes the fake producer states every `terraform_remote_state` of `stack` reads (local
 * backends only). Returns the producer stack names, for assertions.
 */
export function writeFakeRemoteStates(outdir: string, stack: string, rules: readonly FakeValueRule[]): string[] {
  const stackDir = join(outdir, 'stacks', stack);
  const consumerText = readFileSync(join(stackDir, 'cdk.tf.json'), 'utf8');
  const consumer = JSON.parse(consumerText) as TfJson;
  const producers: string[] = [];
  for (const [name, remote] of Object.entries(consumer.data?.terraform_remote_state ?? {})) {
    if (!name.startsWith(PREFIX)) continue;
    if (remote.backend !== 'local' || !remote.config.path)
      throw new Error(`${stack}: remote state ${name} is not a local backend; tests synthesize with local state`);
    const producer = name.slice(PREFIX.length);
    producers.push(producer);
    const produced = JSON.parse(readFileSync(join(outdir, 'stacks', producer, 'cdk.tf.json'), 'utf8')) as TfJson;
    const outputs: Record<string, { value: unknown; type: string }> = {};
    Object.entries(produced.output ?? {})
      .filter(([output]) => output.startsWith('cross-stack-output-') && consumerText.includes(`${name}.outputs.${output}`))
      .forEach(([output, { value }], index) => {
        const fake = fakeValue(String(value), rules, index, `${producer}.${output}`);
        outputs[output] = { value: fake, type: typeof fake === 'number' ? 'number' : 'string' };
      });
    const path = isAbsolute(remote.config.path) ? remote.config.path : join(stackDir, remote.config.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(
      path,
      JSON.stringify({
        version: 4,
        terraform_version: '1.10.0',
        serial: 1,
        lineage: 'adstream-offline-plan-fake',
        outputs,
        resources: [],
        check_results: null,
      }),
    );
  }
  return producers;
}
