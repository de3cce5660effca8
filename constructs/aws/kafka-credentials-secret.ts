import { Construct } from 'constructs';
import { Fn } from 'cdktf';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import type { ServiceAccountApiKey } from '../confluent/service-account';

/** Props of {@link KafkaCredentialsSecret}. */
export interface KafkaCredentialsSecretProps {
  /** Secret name, e.g. `adstream/dev/kafka/workers-consumer`. */
  readonly secretName: string;
  /** What the credentials are for. */
  readonly description: string;
  /**
   * The Confluent API key whose id and secret become username and password.
   * @default - the secret exists without a value (a key slot not in use; see `workerApiKeys`)
   */
  readonly apiKey?: ServiceAccountApiKey;
  /** Days before a deleted secret is gone; 0 deletes at once. @default 7 */
  readonly recoveryWindowInDays?: number;
}

/**
 * A Confluent API key stored in Secrets Manager as `{"username","password"}`, the shape a
 * Lambda self-managed Kafka trigger's `BASIC_AUTH` expects. The value is built from resource
 * references with `jsonencode`, so it never appears in the synthesized JSON. The secret itself
 * outlives the key it holds: a rotation switches the functions to the other slot's secret, and
 * a deleted secret's name stays reserved for its recovery window.
 */
export class KafkaCredentialsSecret extends Construct {
  /** ARN of the secret. */
  public readonly secretArn: string;
  /** Name of the secret. */
  public readonly secretName: string;

  constructor(scope: Construct, id: string, props: KafkaCredentialsSecretProps) {
    super(scope, id);
    const secret = new SecretsmanagerSecret(this, 'secret', {
      name: props.secretName,
      description: props.description,
      recoveryWindowInDays: props.recoveryWindowInDays ?? 7,
    });
    if (props.apiKey) {
      new SecretsmanagerSecretVersion(this, 'value', {
        secretId: secret.id,
        secretString: Fn.jsonencode({
          username: props.apiKey.resource.id,
          password: props.apiKey.resource.secret,
        }),
      });
    }
    this.secretArn = secret.arn;
    this.secretName = secret.name;
  }
}
