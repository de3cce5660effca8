import { Construct } from 'constructs';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicyAttachment } from '@cdktf/provider-aws/lib/iam-role-policy-attachment';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { partitionOf } from './arn';

/** Props of {@link EnhancedMonitoringRole}. */
export interface EnhancedMonitoringRoleProps {
  /** Role name, e.g. `adstream-prod-ledger-monitoring`. */
  readonly roleName: string;
  /** Region (for the partition of the managed policy ARN). */
  readonly region: string;
}

/**
 * The role RDS Enhanced Monitoring publishes OS metrics with: assumable by
 * `monitoring.rds.amazonaws.com` only, with AWS's managed `AmazonRDSEnhancedMonitoringRole`
 * policy (CloudWatch Logs writes to `RDSOSMetrics`, nothing else).
 */
export class EnhancedMonitoringRole extends Construct {
  /** Role ARN, for `monitoring_role_arn`. */
  public readonly roleArn: string;

  constructor(scope: Construct, id: string, props: EnhancedMonitoringRoleProps) {
    super(scope, id);
    const assume = new DataAwsIamPolicyDocument(this, 'assume', {
      statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['monitoring.rds.amazonaws.com'] }] }],
    });
    const role = new IamRole(this, 'role', { name: props.roleName, assumeRolePolicy: assume.json });
    new IamRolePolicyAttachment(this, 'policy', {
      role: role.name,
      policyArn: `arn:${partitionOf(props.region)}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole`,
    });
    this.roleArn = role.arn;
  }
}
