import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Construct } from 'constructs';
import { AssetType, Fn, Lazy, TerraformAsset, Token } from 'cdktf';
import type { ITerraformDependable } from 'cdktf';
import { dependable } from 'cdktf/lib/tfExpression';
import { LambdaFunction } from '@cdktf/provider-aws/lib/lambda-function';
import { LambdaAlias } from '@cdktf/provider-aws/lib/lambda-alias';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule';
import { VpcSecurityGroupEgressRule } from '@cdktf/provider-aws/lib/vpc-security-group-egress-rule';
import type { FunctionSizing, LOG_RETENTION_DAYS } from '../../config/schema';
import type { PostgresEndpoint, RedisEndpoint, WorkerSubnets } from './endpoints';
import { AwsConstructError, MissingBundleError } from './errors';

/** Runtime of every worker; the newest Node.js LTS that provider 5.100.0 accepts. */
export const WORKER_RUNTIME = 'nodejs22.x';
/**
 * CA bundle of the Lambda Node.js runtime that includes the RDS certificate authorities; from
 * Node.js 20 on the runtime no longer loads it by itself.
 */
export const RDS_CA_BUNDLE = '/var/runtime/ca-cert.pem';
/** Alias every trigger and schedule invokes. */
export const LIVE_ALIAS = 'live';
/** CloudWatch namespace of the workers' EMF metrics (lambdas/shared/observability.ts). */
export const WORKER_METRICS_NAMESPACE = 'adstream';

/** One IAM allow statement, in the shape `aws_iam_policy_document` synthesizes. */
export interface PolicyStatement {
  /** Statement id; unique within the function's policy. */
  readonly sid: string;
  /** Only allows: everything not granted is denied. */
  readonly effect: 'Allow';
  /** IAM actions. */
  readonly actions: string[];
  /** Resource ARNs (or `*` where the action has no resource-level scoping). */
  readonly resources: string[];
}

/** Props of {@link WorkerFunction}. */
export interface WorkerFunctionProps {
  /** Full function name, e.g. `adstream-dev-click-balance`. */
  readonly functionName: string;
  /** What the function does (shown in the console). */
  readonly description: string;
  /**
   * Directory of the built bundle (`build/lambdas/<name>`, with `index.js` exporting
   * `handler`); made by `npm run bundle`.
   */
  readonly bundleDirectory: string;
  /** Memory, timeout and reserved concurrency. */
  readonly sizing: FunctionSizing;
  /** Days the function's log group keeps its logs. */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** Private subnets the function runs in. */
  readonly network: WorkerSubnets;
  /** `POWERTOOLS_SERVICE_NAME`; also the `service` dimension of its metrics. */
  readonly serviceName: string;
  /** Environment variables every invocation needs besides the connection ones (never secret values). */
  readonly environment?: Readonly<Record<string, string>>;
}

/**
 * One worker Lambda from its esbuild bundle: current Node.js runtime, sizing and reserved
 * concurrency from config, its own log group with retention (created before the function so
 * Lambda never creates an unbounded one), its own security group and a role whose policy is
 * built from the grants the function is given. `connectTo`, `connectToCache`, `readsSecret`
 * and friends add the environment variable, the IAM grant and the network rule in one place.
 */
export class WorkerFunction extends Construct {
  /** Function name. */
  public readonly functionName: string;
  /** Function ARN. */
  public readonly functionArn: string;
  /** Execution role ARN. */
  public readonly roleArn: string;
  /** The function's own security group. */
  public readonly securityGroupId: string;
  /** Sizing it was built with (triggers check the timeout against the Kafka limit). */
  public readonly sizing: FunctionSizing;
  /** Service name of its logs and metrics. */
  public readonly serviceName: string;
  /** The role's policy, which triggers and invocations must wait for. */
  public readonly rolePolicy: IamRolePolicy;
  /** The generated binding, for dependencies. */
  public readonly resource: LambdaFunction;
  /**
   * ARN of the `live` alias: what triggers and schedules invoke. It moves to a newly
   * published version only after what `releaseAfter` names (the schema migration).
   */
  public readonly liveArn: string;
  /** The `live` alias. */
  public readonly alias: LambdaAlias;

  private readonly statements: PolicyStatement[] = [];
  private readonly variables: Record<string, string> = {};
  private readonly grantedSecrets = new Set<string>();
  private httpsToInternet = false;

  constructor(scope: Construct, id: string, props: WorkerFunctionProps) {
    super(scope, id);
    if (!Token.isUnresolved(props.functionName) && !/^[A-Za-z0-9_-]{1,64}$/.test(props.functionName)) {
      throw new AwsConstructError(
        this.node.path,
        `functionName ${JSON.stringify(props.functionName)} is not a Lambda function name; use letters, digits, "-" and "_", at most 64.`,
      );
    }
    if (!existsSync(props.bundleDirectory)) {
      throw new MissingBundleError(id, props.bundleDirectory, 'its directory');
    }
    if (!existsSync(join(props.bundleDirectory, 'index.js'))) {
      throw new MissingBundleError(id, props.bundleDirectory, 'index.js');
    }
    this.functionName = props.functionName;
    this.sizing = props.sizing;
    this.serviceName = props.serviceName;

    const logGroup = new CloudwatchLogGroup(this, 'logs', {
      name: `/aws/lambda/${props.functionName}`,
      retentionInDays: props.logRetentionDays,
    });
    this.statements.push({
      sid: 'WriteOwnLogs',
      effect: 'Allow',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [`${logGroup.arn}:*`],
    });
    // Lambda creates and removes the function's network interfaces with the function's role;
    // these EC2 actions do not support resource-level scoping.
    this.statements.push({
      sid: 'ManageVpcNetworkInterfaces',
      effect: 'Allow',
      actions: [
        'ec2:CreateNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DeleteNetworkInterface',
        'ec2:AssignPrivateIpAddresses',
        'ec2:UnassignPrivateIpAddresses',
      ],
      resources: ['*'],
    });

    const assume = new DataAwsIamPolicyDocument(this, 'assume-role', {
      statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['lambda.amazonaws.com'] }] }],
    });
    const role = new IamRole(this, 'role', { name: props.functionName, assumeRolePolicy: assume.json });
    const access = new DataAwsIamPolicyDocument(this, 'access', {
      // Grants keep arriving after construction (connectTo, readsSecret, triggers); resolve at synth.
      statement: Lazy.anyValue({ produce: () => this.statements.map((s) => ({ ...s })) }) as never,
    });
    this.rolePolicy = new IamRolePolicy(this, 'role-policy', { name: 'worker-access', role: role.id, policy: access.json });
    this.roleArn = role.arn;

    const group = new SecurityGroup(this, 'security-group', {
      name: props.functionName,
      description: `Lambda ${props.functionName}`,
      vpcId: props.network.vpcId,
    });
    this.securityGroupId = group.id;
    // HTTPS only to the interface endpoints (Secrets Manager, SNS, SQS): nothing a function
    // calls over HTTPS is on the internet. A referenced VPC brings its own routes and endpoints,
    // so there it stays open through the NAT (docs/deploy.md, "Network egress").
    if (props.network.endpointSecurityGroupId !== undefined) {
      new VpcSecurityGroupEgressRule(this, 'egress-https', {
        securityGroupId: group.id,
        description: 'AWS APIs through the VPC interface endpoints',
        ipProtocol: 'tcp',
        fromPort: 443,
        toPort: 443,
        referencedSecurityGroupId: props.network.endpointSecurityGroupId,
      });
    } else {
      this.allowEgress('https', 443, '0.0.0.0/0', 'AWS APIs through the NAT (referenced VPC: its endpoints are unknown here)');
      this.httpsToInternet = true;
    }

    Object.assign(this.variables, {
      NODE_OPTIONS: '--enable-source-maps',
      NODE_EXTRA_CA_CERTS: RDS_CA_BUNDLE,
      POWERTOOLS_SERVICE_NAME: props.serviceName,
      POWERTOOLS_METRICS_NAMESPACE: WORKER_METRICS_NAMESPACE,
      ...props.environment,
    });

    const bundle = new TerraformAsset(this, 'bundle', { path: props.bundleDirectory, type: AssetType.ARCHIVE });
    this.resource = new LambdaFunction(this, 'function', {
      functionName: props.functionName,
      description: props.description,
      role: role.arn,
      runtime: WORKER_RUNTIME,
      architectures: ['arm64'],
      handler: 'index.handler',
      filename: bundle.path,
      sourceCodeHash: Fn.filebase64sha256(bundle.path),
      memorySize: props.sizing.memoryMb,
      timeout: props.sizing.timeoutSeconds,
      reservedConcurrentExecutions: props.sizing.reservedConcurrency,
      vpcConfig: { subnetIds: props.network.privateSubnetIds, securityGroupIds: [group.id] },
      loggingConfig: { logFormat: 'JSON', logGroup: logGroup.name },
      environment: { variables: Token.asStringMap(Lazy.anyValue({ produce: () => ({ ...this.variables }) })) },
      // Every code change becomes a numbered version; the `live` alias decides which one runs.
      publish: true,
      dependsOn: [logGroup, this.rolePolicy],
    });
    this.functionName = this.resource.functionName;
    this.functionArn = this.resource.arn;
    this.alias = new LambdaAlias(this, 'live', {
      name: LIVE_ALIAS,
      description: 'The released version: triggers and schedules invoke this.',
      functionName: this.resource.functionName,
      functionVersion: this.resource.version,
    });
    this.liveArn = this.alias.arn;
  }

  /**
   * Keeps the `live` alias on the previous version until `dependencies` are applied: with the
   * schema migration here, new handler code never goes live before its migration ran.
   */
  public releaseAfter(...dependencies: ITerraformDependable[]): void {
    this.alias.dependsOn = [...(this.alias.dependsOn ?? []), ...dependencies.map((d) => dependable(d))];
  }

  /**
   * Lets the function use the database as `role` (its own database role, created by the
   * migrations with only the grants it needs), or as the master user when no role is given
   * (db-migrate only): the endpoint and that one credentials secret in the environment, read
   * access to that secret only, and port 5432 from this function's security group into the
   * database's.
   */
  public connectTo(database: PostgresEndpoint, role?: string): void {
    let secretArn = database.credentialsSecretArn;
    if (role !== undefined) {
      const roleSecret = database.roleSecretArns[role];
      if (roleSecret === undefined) {
        throw new AwsConstructError(
          this.node.path,
          `database role ${JSON.stringify(role)} has no secret; known roles: ${Object.keys(database.roleSecretArns).join(', ')}.`,
        );
      }
      secretArn = roleSecret;
    }
    this.setVariables({
      DATABASE_HOST: database.host,
      DATABASE_PORT: portText(database.port),
      DATABASE_NAME: database.databaseName,
      DATABASE_SECRET_ARN: secretArn,
    });
    this.readsSecret('DatabaseCredentials', secretArn);
    this.allowTo('database', database.securityGroupId, database.port, 'Postgres');
  }

  /** Lets the function use the cache: endpoint and AUTH token secret, port 6379 from this function only. */
  public connectToCache(cache: RedisEndpoint): void {
    this.setVariables({
      REDIS_HOST: cache.host,
      REDIS_PORT: portText(cache.port),
      REDIS_AUTH_SECRET_ARN: cache.authTokenSecretArn,
    });
    this.readsSecret('CacheAuthToken', cache.authTokenSecretArn);
    this.allowTo('cache', cache.securityGroupId, cache.port, 'Redis');
  }

  /** Grants read access to exactly one secret (by ARN), e.g. a Kafka key the trigger uses. */
  public readsSecret(sid: string, secretArn: string): void {
    if (this.grantedSecrets.has(secretArn)) return;
    this.grantedSecrets.add(secretArn);
    this.addStatement({
      sid: `Read${sid}`,
      effect: 'Allow',
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resources: [secretArn],
    });
  }

  /** Adds one allow statement to the function's role (used by triggers and channels). */
  public addStatement(statement: PolicyStatement): void {
    if (this.statements.some((s) => s.sid === statement.sid)) {
      throw new AwsConstructError(this.node.path, `two grants share the statement id ${JSON.stringify(statement.sid)}; give each grant its own sid.`);
    }
    this.statements.push(statement);
  }

  /** Adds environment variables; refuses to overwrite one with a different value. */
  public setVariables(variables: Readonly<Record<string, string>>): void {
    for (const [name, value] of Object.entries(variables)) {
      const existing = this.variables[name];
      if (existing !== undefined && existing !== value) {
        throw new AwsConstructError(
          this.node.path,
          `environment variable ${name} is already set to ${JSON.stringify(existing)}; refusing to replace it with ${JSON.stringify(value)}.`,
        );
      }
      this.variables[name] = value;
    }
  }

  /**
   * Opens HTTPS to the internet through the NAT, for a function that calls an API with no VPC
   * endpoint here (the Confluent Flink REST API, the Lambda API). Once per function: a second
   * identical rule would be refused by EC2.
   */
  public allowHttpsThroughNat(description: string): void {
    if (this.httpsToInternet) return;
    this.httpsToInternet = true;
    this.allowEgress('https-internet', 443, '0.0.0.0/0', description);
  }

  /** Opens egress on the function's security group to a CIDR (for Kafka through the NAT). */
  public allowEgress(id: string, port: number, cidr: string, description: string): void {
    new VpcSecurityGroupEgressRule(this, `egress-${id}`, {
      securityGroupId: this.securityGroupId,
      description,
      ipProtocol: 'tcp',
      fromPort: port,
      toPort: port,
      cidrIpv4: cidr,
    });
  }

  private allowTo(id: string, targetGroupId: string, port: number, what: string): void {
    new VpcSecurityGroupEgressRule(this, `egress-${id}`, {
      securityGroupId: this.securityGroupId,
      description: `${what} to the ${id}`,
      ipProtocol: 'tcp',
      fromPort: port,
      toPort: port,
      referencedSecurityGroupId: targetGroupId,
    });
    new VpcSecurityGroupIngressRule(this, `ingress-${id}`, {
      securityGroupId: targetGroupId,
      description: `${what} from Lambda ${this.node.id}`,
      ipProtocol: 'tcp',
      fromPort: port,
      toPort: port,
      referencedSecurityGroupId: this.securityGroupId,
    });
  }
}

/** A port as an environment variable value, whether a literal or a variable's token. */
function portText(port: number): string {
  return Token.isUnresolved(port) ? Token.asString(port) : String(port);
}
