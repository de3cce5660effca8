/**
 * What a worker needs to reach a store. The storage stack's constructs implement these, and
 * the workers stack rebuilds them from its input variables, so `worker.connectTo(...)` takes
 * the same typed reference in both places.
 */

/** A Postgres endpoint the functions may connect to. */
export interface PostgresEndpoint {
  /** Host name of the database (or of its RDS Proxy). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
  /** Database name. */
  readonly databaseName: string;
  /** Secrets Manager ARN of `{"username","password"}` (the RDS-managed master secret; db-migrate only). */
  readonly credentialsSecretArn: string;
  /**
   * Secrets Manager ARN of `{"username","password"}` of each function's own database role
   * (created by the migrations, password set by db-migrate from this secret), by role name.
   */
  readonly roleSecretArns: Readonly<Record<string, string>>;
  /** Security group that admits clients (the proxy's, when there is one). */
  readonly securityGroupId: string;
}

/** A Redis endpoint the functions may connect to (TLS + AUTH). */
export interface RedisEndpoint {
  /** Primary endpoint host name. */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
  /** Secrets Manager ARN of the AUTH token (a plain string). */
  readonly authTokenSecretArn: string;
  /** Security group that admits clients. */
  readonly securityGroupId: string;
}

/** The private network the functions run in. */
export interface WorkerSubnets {
  /** VPC id. */
  readonly vpcId: string;
  /** Private subnet ids. */
  readonly privateSubnetIds: string[];
  /**
   * Security group of the VPC's interface endpoints (Secrets Manager, SNS, SQS). When given,
   * the functions' HTTPS egress goes to it only, instead of anywhere through the NAT.
   * @default - none (a referenced VPC): HTTPS egress stays open to 0.0.0.0/0
   */
  readonly endpointSecurityGroupId?: string;
}
