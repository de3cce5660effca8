/**
 * ARN helpers that need no AWS call: the offline plan cannot use `aws_partition` or
 * `aws_caller_identity`, and the account id is validated config anyway.
 */

/** The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`). */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/** Where ARNs of one environment live. */
export interface AwsLocation {
  /** Region, e.g. `ap-northeast-2`. */
  readonly region: string;
  /** 12-digit account id. */
  readonly accountId: string;
}

/**
 * Availability zone names derived from the region (`<region>a`, `<region>b`, …). Every
 * commercial region has zones a–c, and the offline plan cannot ask `aws_availability_zones`.
 */
export function availabilityZoneNames(region: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${region}${String.fromCharCode(97 + index)}`);
}
