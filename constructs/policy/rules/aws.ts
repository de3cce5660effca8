import { IConstruct } from 'constructs';
import { DefaultTokenResolver, StringConcat, TerraformResource, TerraformStack, Tokenization } from 'cdktf';
import { PolicyRule } from '../rule';
import { configuredAttributes, preventsDestroy, resourceOfType } from './resource';

/** Ports of the stores that must never be open to the internet. */
export const PROTECTED_PORTS = [5432, 6379] as const;
const OPEN_CIDRS = ['0.0.0.0/0', '::/0'];

function isTrue(value: unknown): boolean {
  return value === true || value === 'true';
}

function isSet(value: unknown): boolean {
  return typeof value === 'string' ? value.length > 0 : value !== undefined && value !== null;
}

/** Whether a (from, to, protocol) range admits one of the protected ports. */
function coversProtectedPort(from: unknown, to: unknown, protocol: unknown): number | undefined {
  if (protocol === '-1' || protocol === 'all' || protocol === -1) return PROTECTED_PORTS[0];
  const low = typeof from === 'number' ? from : Number(from);
  const high = typeof to === 'number' ? to : Number(to);
  if (Number.isNaN(low) || Number.isNaN(high)) return undefined;
  return PROTECTED_PORTS.find((port) => port >= low && port <= high);
}

function openCidrs(...lists: unknown[]): string[] {
  return lists.flatMap((list) => (Array.isArray(list) ? list : [list])).filter((cidr): cidr is string => typeof cidr === 'string' && OPEN_CIDRS.includes(cidr));
}

/** ADS-AWS1: the ledger database's storage is encrypted. */
export const rdsStorageEncrypted: PolicyRule = {
  id: 'ADS-AWS1',
  description: 'RDS instances have storage_encrypted = true.',
  level: 'error',
  check(node) {
    const db = resourceOfType(node, 'aws_db_instance');
    if (!db || isTrue(configuredAttributes(db).storage_encrypted)) return undefined;
    return "aws_db_instance must set storage_encrypted = true: the ledger holds advertisers' money and cannot be encrypted after creation.";
  },
};

/** ADS-AWS2: Redis encrypts in transit (also required for AUTH) and at rest. */
export const redisEncrypted: PolicyRule = {
  id: 'ADS-AWS2',
  description: 'ElastiCache replication groups have transit and at-rest encryption on.',
  level: 'error',
  check(node) {
    const group = resourceOfType(node, 'aws_elasticache_replication_group');
    if (!group) return undefined;
    const attributes = configuredAttributes(group);
    const missing = ['transit_encryption_enabled', 'at_rest_encryption_enabled'].filter((name) => !isTrue(attributes[name]));
    if (missing.length === 0) return undefined;
    return `aws_elasticache_replication_group must set ${missing.join(' and ')} = true (AUTH tokens need TLS; both are fixed at creation).`;
  },
};

/** ADS-AWS3: queues are encrypted (SSE-SQS or KMS). */
export const sqsEncrypted: PolicyRule = {
  id: 'ADS-AWS3',
  description: 'SQS queues use SSE-SQS or a KMS key.',
  level: 'error',
  check(node) {
    const queue = resourceOfType(node, 'aws_sqs_queue');
    if (!queue) return undefined;
    const attributes = configuredAttributes(queue);
    if (isTrue(attributes.sqs_managed_sse_enabled) || isSet(attributes.kms_master_key_id)) return undefined;
    return 'aws_sqs_queue must set sqs_managed_sse_enabled = true or kms_master_key_id: discarded batches carry Kafka coordinates of money events.';
  },
};

/** ADS-AWS4: topics are KMS-encrypted. */
export const snsEncrypted: PolicyRule = {
  id: 'ADS-AWS4',
  description: 'SNS topics set kms_master_key_id.',
  level: 'error',
  check(node) {
    const topic = resourceOfType(node, 'aws_sns_topic');
    if (!topic || isSet(configuredAttributes(topic).kms_master_key_id)) return undefined;
    return 'aws_sns_topic must set kms_master_key_id (a customer key whose policy lets CloudWatch publish).';
  },
};

/** ADS-AWS5: nothing opens Postgres or Redis to the internet. */
export const noOpenStoreIngress: PolicyRule = {
  id: 'ADS-AWS5',
  description: 'No 0.0.0.0/0 or ::/0 ingress to 5432 or 6379 (security groups and their rules).',
  level: 'error',
  check(node) {
    const resource = resourceOfType(node, 'aws_security_group', 'aws_security_group_rule', 'aws_vpc_security_group_ingress_rule');
    if (!resource) return undefined;
    const attributes = configuredAttributes(resource);
    const findings: string[] = [];
    const inspect = (from: unknown, to: unknown, protocol: unknown, cidrs: string[]) => {
      const port = coversProtectedPort(from, to, protocol);
      if (port !== undefined && cidrs.length > 0) findings.push(`${cidrs.join(', ')} → ${port}`);
    };
    switch (resource.terraformResourceType) {
      case 'aws_security_group': {
        const ingress = Array.isArray(attributes.ingress) ? (attributes.ingress as Record<string, unknown>[]) : [];
        for (const rule of ingress) inspect(rule.from_port, rule.to_port, rule.protocol, openCidrs(rule.cidr_blocks, rule.ipv6_cidr_blocks));
        break;
      }
      case 'aws_security_group_rule':
        if (attributes.type === 'ingress')
          inspect(attributes.from_port, attributes.to_port, attributes.protocol, openCidrs(attributes.cidr_blocks, attributes.ipv6_cidr_blocks));
        break;
      default:
        inspect(attributes.from_port, attributes.to_port, attributes.ip_protocol, openCidrs(attributes.cidr_ipv4, attributes.cidr_ipv6));
    }
    if (findings.length === 0) return undefined;
    return `${resource.terraformResourceType} admits ${findings.join('; ')} from anywhere; admit the functions' security groups instead (WorkerFunction.connectTo).`;
  },
};

function logGroupsOf(node: IConstruct): TerraformResource[] {
  return TerraformStack.of(node)
    .node.findAll()
    .filter(
      (c): c is TerraformResource => TerraformResource.isTerraformResource(c) && (c as TerraformResource).terraformResourceType === 'aws_cloudwatch_log_group',
    );
}

/** ADS-AWS6: every function has a timeout, reserved concurrency and a log group with retention. */
export const functionLimits: PolicyRule = {
  id: 'ADS-AWS6',
  description: 'Lambda functions set timeout and reserved concurrency, and log to a log group with retention.',
  level: 'error',
  check(node) {
    const fn = resourceOfType(node, 'aws_lambda_function');
    if (!fn) return undefined;
    const attributes = configuredAttributes(fn);
    const problems: string[] = [];
    if (typeof attributes.timeout !== 'number' || attributes.timeout < 1) problems.push('set timeout (seconds; the 3 s default fails real batches)');
    const reserved = attributes.reserved_concurrent_executions;
    if (typeof reserved !== 'number' || reserved < 1) problems.push('set reserved_concurrent_executions ≥ 1 (≥ partitions for Kafka consumers)');
    const name = attributes.function_name;
    const logging = (Array.isArray(attributes.logging_config) ? attributes.logging_config[0] : attributes.logging_config) as
      Record<string, unknown> | undefined;
    // logging_config.log_group is usually a reference (`${aws_cloudwatch_log_group.<id>.name}`).
    const resolvedLogGroup = Tokenization.resolve(logging?.log_group ?? '', {
      scope: TerraformStack.of(node),
      preparing: false,
      resolver: new DefaultTokenResolver(new StringConcat()),
    });
    const referenced = /^\$\{aws_cloudwatch_log_group\.([^.]+)\.name\}$/.exec(String(resolvedLogGroup))?.[1];
    const ownGroup = logGroupsOf(node).find((group) => {
      const attributes = configuredAttributes(group);
      return (
        attributes.name === `/aws/lambda/${String(name)}` ||
        (logging?.log_group !== undefined && attributes.name === logging.log_group) ||
        group.friendlyUniqueId === referenced
      );
    });
    const own = ownGroup && configuredAttributes(ownGroup);
    if (!own) problems.push(`create its log group (/aws/lambda/${String(name)}) explicitly, so Lambda does not create one that keeps logs forever`);
    else if (typeof own.retention_in_days !== 'number' || own.retention_in_days < 1) problems.push('give its log group a retention_in_days');
    if (problems.length === 0) return undefined;
    return `aws_lambda_function ${String(name)}: ${problems.join('; ')}.`;
  },
};

/** ADS-AWS7: production stateful AWS resources cannot be destroyed by an apply. */
export const productionStatefulPreventDestroy: PolicyRule = {
  id: 'ADS-AWS7',
  description: 'In production, the database, cache, failure queues and KMS keys have prevent_destroy; RDS has deletion_protection.',
  level: 'error',
  check(node, context) {
    if (!context.production) return undefined;
    const resource = resourceOfType(node, 'aws_db_instance', 'aws_elasticache_replication_group', 'aws_sqs_queue', 'aws_kms_key');
    if (!resource) return undefined;
    const problems: string[] = [];
    if (!preventsDestroy(resource)) problems.push('lifecycle { prevent_destroy = true }');
    if (resource.terraformResourceType === 'aws_db_instance' && !isTrue(configuredAttributes(resource).deletion_protection))
      problems.push('deletion_protection = true');
    if (problems.length === 0) return undefined;
    return `${resource.terraformResourceType} must set ${problems.join(' and ')} in production: destroying it loses the ledger, the cache, undelivered records or the keys to them.`;
  },
};

/** Attribute names whose literal values would be secrets. */
const SECRET_ATTRIBUTE = /(^|_)(password|secret|secret_string|auth_token|token|api_key|access_key|secret_key|private_key)$/;
/** Value shapes of credentials that must never be synthesized. */
const SECRET_VALUE_SHAPES: ReadonlyArray<[string, RegExp]> = [
  ['an AWS access key id', /\b(AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['a Confluent API secret', /^(?![0-9a-f]{64}$)[A-Za-z0-9+/]{64}$/],
  ['a private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
];

/**
 * Walks a synthesized stack and returns where a secret literal appears: a secret-named
 * attribute with a literal (non-reference) string value, a sensitive variable with a default,
 * or a value shaped like a credential. Exported for tests and for checking any JSON.
 */
export function findSecretLiterals(synthesized: unknown): string[] {
  const findings: string[] = [];
  const visit = (value: unknown, path: string[]): void => {
    if (typeof value === 'string') {
      const key = path[path.length - 1] ?? '';
      const isReference = value.includes('${');
      if (SECRET_ATTRIBUTE.test(key) && !isReference && value.length > 0 && path[0] !== 'output') {
        findings.push(`${path.join('.')} is a literal; pass a secret ARN, a sensitive variable or a resource reference`);
      }
      for (const [what, shape] of SECRET_VALUE_SHAPES) {
        if (shape.test(value)) findings.push(`${path.join('.')} looks like ${what}`);
      }
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((item, index) => visit(item, [...path, String(index)]));
      return;
    }
    if (value && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      if (path[0] === 'variable' && path.length === 2 && record.sensitive === true && record.default !== undefined) {
        findings.push(`variable ${path[1]} is sensitive but has a default value`);
      }
      // "//" holds cdktf's metadata (construct paths, output names), never configuration.
      for (const [key, item] of Object.entries(record)) if (key !== '//') visit(item, [...path, key]);
    }
  };
  visit(synthesized, []);
  return findings;
}

/** ADS-AWS8: no secret value appears in a stack's synthesized configuration. */
export const noSecretLiterals: PolicyRule = {
  id: 'ADS-AWS8',
  description: 'The synthesized stack contains no secret literal (secret attributes are references; no credential-shaped values).',
  level: 'error',
  check(node) {
    if (!TerraformStack.isStack(node)) return undefined;
    const findings = findSecretLiterals((node as TerraformStack).toTerraform());
    if (findings.length === 0) return undefined;
    return `secret literal(s) in the synthesized stack: ${findings.slice(0, 5).join('; ')}${findings.length > 5 ? ` (+${findings.length - 5} more)` : ''}.`;
  },
};

/** Metrics a stateful resource must be alarmed on, by resource type (extra ones by its settings). */
export const REQUIRED_STATEFUL_ALARMS: Readonly<Record<string, readonly string[]>> = {
  aws_db_instance: [
    'CPUUtilization',
    'FreeStorageSpace',
    'FreeableMemory',
    'DatabaseConnections',
    'ReadLatency',
    'WriteLatency',
    'MaximumUsedTransactionIDs',
    'db.Concurrency.deadlocks',
  ],
  aws_db_proxy: ['ClientConnections', 'DatabaseConnectionsBorrowLatency', 'DatabaseConnectionsCurrentlySessionPinned'],
  aws_elasticache_replication_group: ['EngineCPUUtilization', 'DatabaseMemoryUsagePercentage', 'Evictions', 'CurrConnections'],
  aws_nat_gateway: ['ErrorPortAllocation', 'PacketsDropCount'],
};

function resolvedInStack(node: IConstruct, value: unknown): unknown {
  return Tokenization.resolve(value, { scope: TerraformStack.of(node), preparing: false, resolver: new DefaultTokenResolver(new StringConcat()) });
}

/** What each alarm of the stack watches: its resolved configuration as text, and its metric names. */
function alarmsOf(node: IConstruct): Array<{ text: string; metrics: string[] }> {
  return TerraformStack.of(node)
    .node.findAll()
    .filter(
      (c): c is TerraformResource =>
        TerraformResource.isTerraformResource(c) && (c as TerraformResource).terraformResourceType === 'aws_cloudwatch_metric_alarm',
    )
    .map((alarm) => {
      const attributes = resolvedInStack(node, configuredAttributes(alarm)) as Record<string, unknown>;
      const actions = attributes.alarm_actions;
      // An alarm that tells nobody does not watch anything.
      if (!Array.isArray(actions) || actions.length === 0) return { text: '', metrics: [] };
      const queries = Array.isArray(attributes.metric_query) ? (attributes.metric_query as Array<Record<string, unknown>>) : [];
      const metrics = [
        attributes.metric_name,
        ...queries.map((q) => (q.metric as Record<string, unknown> | undefined)?.metric_name),
        ...queries.flatMap((q) =>
          typeof q.expression === 'string' ? [...q.expression.matchAll(/'(db\.[A-Za-z]+\.[A-Za-z_]+)\.[a-z]+'/g)].map((m) => m[1]) : [],
        ),
      ].filter((m): m is string => typeof m === 'string');
      return { text: JSON.stringify(attributes), metrics };
    });
}

/**
 * ADS-AWS9: every stateful resource is alarmed on the metrics that show the money path
 * failing: RDS (CPU, storage, memory, connections, latency, transaction-id age, deadlocks,
 * replica lag on a replica), RDS Proxy, ElastiCache (and replication lag and failover with a
 * replica) and NAT gateways. An alarm counts when it notifies someone and its dimensions
 * or expression refer to the resource (by reference, or for cache nodes by the group id).
 */
export const statefulResourcesAlarmed: PolicyRule = {
  id: 'ADS-AWS9',
  description:
    'RDS instances, RDS proxies, ElastiCache replication groups and NAT gateways have CloudWatch alarms on the metrics that matter, in the same stack.',
  level: 'error',
  check(node) {
    const resource = resourceOfType(node, ...Object.keys(REQUIRED_STATEFUL_ALARMS));
    if (!resource) return undefined;
    const type = resource.terraformResourceType;
    const attributes = configuredAttributes(resource);
    const required = [...REQUIRED_STATEFUL_ALARMS[type]];
    if (type === 'aws_db_instance' && isSet(attributes.replicate_source_db)) required.push('ReplicaLag');
    if (type === 'aws_elasticache_replication_group' && Number(attributes.num_cache_clusters ?? 1) > 1) required.push('ReplicationLag', 'IsMaster');
    const reference = `\${${resource.terraformResourceType}.${resource.friendlyUniqueId}.`;
    const groupId = type === 'aws_elasticache_replication_group' ? resolvedInStack(node, attributes.replication_group_id) : undefined;
    const covered = new Set(
      alarmsOf(node)
        .filter((alarm) => alarm.text.includes(reference) || (typeof groupId === 'string' && alarm.text.includes(`"CacheClusterId":"${groupId}-`)))
        .flatMap((alarm) => alarm.metrics),
    );
    const missing = required.filter((metric) => !covered.has(metric));
    if (missing.length === 0) return undefined;
    return `${type} ${resource.friendlyUniqueId} has no alarm on ${missing.join(', ')}: a stateful resource fails silently without them. Watch it with StorageAlarms (constructs/aws/storage-alarms.ts).`;
  },
};

/** The AWS rules, in id order. */
export const AWS_POLICY_RULES: readonly PolicyRule[] = [
  rdsStorageEncrypted,
  redisEncrypted,
  sqsEncrypted,
  snsEncrypted,
  noOpenStoreIngress,
  functionLimits,
  productionStatefulPreventDestroy,
  noSecretLiterals,
  statefulResourcesAlarmed,
];
