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
}

/**
 * The AWS provider of a worker-side stack. Credentials come only from the environment
 * (`AWS_PROFILE`, `AWS_ACCESS_KEY_ID`, …), never from the configuration.
 */
export function createAwsProvider(scope: Construct, props: WorkerAwsProviderProps): AwsProvider {
  const common = { region: props.aws.region, defaultTags: [{ tags: { ...props.aws.tags } }] };
  if (props.offlinePlan === true) {
    return new AwsProvider(scope, 'aws', {
      ...common,
      skipCredentialsValidation: true,
      skipRequestingAccountId: true,
      skipMetadataApiCheck: 'true',
      skipRegionValidation: true,
    });
  }
  return new AwsProvider(scope, 'aws', { ...common, allowedAccountIds: [props.aws.accountId] });
}
