import { Construct } from 'constructs';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import type { AwsConfig } from '../../config/schema';

/** Props of {@link createAwsProvider}. */
export interface WorkerAwsProviderProps {
  /** Account, region and tags of the environment. */
  readonly aws: AwsConfig;
  /**
   * Test-only opt-in for `terraform plan` without AWS: skips the credential, account,
   * metadata and region checks the provider makes when it is configured, and drops
   * `allowed_account_ids` (which needs the account id from STS). Never set by `main.ts`, so
   * `npm run synth` output always pins the account.
   * @default false - a provider that talks to AWS and refuses any other account
   */
  readonly offlinePlan?: boolean;
  /**
   * A second provider of the stack, for resources whose API lives in another region.
   * @default - the stack's default provider (no alias), in `aws.region`
   */
  readonly alias?: { readonly name: string; readonly region: string };
}

/**
 * The AWS provider of a worker-side stack. Credentials come only from the environment
 * (`AWS_PROFILE`, `AWS_ACCESS_KEY_ID`, …), never from the configuration.
 */
export function createAwsProvider(scope: Construct, props: WorkerAwsProviderProps): AwsProvider {
  const id = props.alias ? `aws-${props.alias.name}` : 'aws';
  const common = {
    region: props.alias?.region ?? props.aws.region,
    defaultTags: [{ tags: { ...props.aws.tags } }],
    ...(props.alias ? { alias: props.alias.name } : {}),
  };
  if (props.offlinePlan === true) {
    return new AwsProvider(scope, id, {
      ...common,
      skipCredentialsValidation: true,
      skipRequestingAccountId: true,
      skipMetadataApiCheck: 'true',
      skipRegionValidation: true,
    });
  }
  return new AwsProvider(scope, id, { ...common, allowedAccountIds: [props.aws.accountId] });
}
