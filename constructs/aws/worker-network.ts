import { Construct } from 'constructs';
import { Fn } from 'cdktf';
import { Vpc } from '@cdktf/provider-aws/lib/vpc';
import { Subnet } from '@cdktf/provider-aws/lib/subnet';
import { InternetGateway } from '@cdktf/provider-aws/lib/internet-gateway';
import { Eip } from '@cdktf/provider-aws/lib/eip';
import { NatGateway } from '@cdktf/provider-aws/lib/nat-gateway';
import { RouteTable } from '@cdktf/provider-aws/lib/route-table';
import { Route } from '@cdktf/provider-aws/lib/route';
import { RouteTableAssociation } from '@cdktf/provider-aws/lib/route-table-association';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule';
import { VpcEndpoint } from '@cdktf/provider-aws/lib/vpc-endpoint';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import type { NetworkConfig } from '../../config/schema';
import { availabilityZoneNames } from './arn';

/** AWS services the functions call from private subnets, reached through interface endpoints. */
export const INTERFACE_ENDPOINT_SERVICES = ['secretsmanager', 'sns', 'sqs'] as const;

/** Props of {@link WorkerNetwork}. */
export interface WorkerNetworkProps {
  /** Create a VPC, or use an existing one. */
  readonly config: NetworkConfig;
  /** Region; availability zone and endpoint service names derive from it. */
  readonly region: string;
  /** Prefix of every `Name` tag, e.g. `adstream-dev`. */
  readonly namePrefix: string;
  /** Account whose principals and resources the endpoint policies admit. */
  readonly accountId: string;
}

/**
 * Where the functions, the database and the cache live: private subnets (one per zone), NAT
 * for the functions that produce to Confluent Cloud, and endpoints for the AWS services the
 * functions call so that traffic stays off the NAT. In `reference` mode it only names the
 * existing VPC and subnets (their routes and endpoints are the owner's business).
 */
export class WorkerNetwork extends Construct {
  /** VPC id. */
  public readonly vpcId: string;
  /** Private subnet ids, one per availability zone. */
  public readonly privateSubnetIds: string[];
  /** The NAT gateways this network created, by zone (none in `reference` mode). */
  public readonly natGateways: ReadonlyArray<{ readonly zone: string; readonly id: string }>;
  /** Security group of the interface endpoints; undefined for a referenced VPC. */
  public readonly endpointSecurityGroupId?: string;

  constructor(scope: Construct, id: string, props: WorkerNetworkProps) {
    super(scope, id);
    const { config } = props;
    if (config.mode === 'reference') {
      this.vpcId = config.vpcId;
      this.privateSubnetIds = [...config.privateSubnetIds];
      this.natGateways = [];
      return;
    }

    const tag = (suffix: string) => ({ Name: `${props.namePrefix}-${suffix}` });
    const zones = availabilityZoneNames(props.region, config.availabilityZones);
    const vpc = new Vpc(this, 'vpc', {
      cidrBlock: config.cidr,
      // Interface endpoints with private DNS need both.
      enableDnsHostnames: true,
      enableDnsSupport: true,
      tags: tag('workers'),
    });
    this.vpcId = vpc.id;

    // Private subnets take the first sixteenths of the VPC, public ones start at the ninth, so
    // adding a zone later never renumbers an existing subnet.
    const privateSubnets = zones.map(
      (zone, index) =>
        new Subnet(this, `private-${zone}`, {
          vpcId: vpc.id,
          availabilityZone: zone,
          cidrBlock: Fn.cidrsubnet(config.cidr, 4, index),
          mapPublicIpOnLaunch: false,
          tags: tag(`private-${zone}`),
        }),
    );
    this.privateSubnetIds = privateSubnets.map((subnet) => subnet.id);

    const natGateways: NatGateway[] = [];
    const natByZone: Array<{ zone: string; id: string }> = [];
    if (config.natGateways > 0) {
      const internet = new InternetGateway(this, 'internet', { vpcId: vpc.id, tags: tag('internet') });
      const publicRoutes = new RouteTable(this, 'public-routes', { vpcId: vpc.id, tags: tag('public') });
      new Route(this, 'public-default-route', { routeTableId: publicRoutes.id, destinationCidrBlock: '0.0.0.0/0', gatewayId: internet.id });
      zones.slice(0, config.natGateways).forEach((zone, index) => {
        const publicSubnet = new Subnet(this, `public-${zone}`, {
          vpcId: vpc.id,
          availabilityZone: zone,
          cidrBlock: Fn.cidrsubnet(config.cidr, 4, 8 + index),
          mapPublicIpOnLaunch: false,
          tags: tag(`public-${zone}`),
        });
        new RouteTableAssociation(this, `public-${zone}-routes`, { subnetId: publicSubnet.id, routeTableId: publicRoutes.id });
        const address = new Eip(this, `nat-${zone}-address`, { domain: 'vpc', tags: tag(`nat-${zone}`) });
        natGateways.push(
          new NatGateway(this, `nat-${zone}`, {
            subnetId: publicSubnet.id,
            allocationId: address.allocationId,
            tags: tag(`nat-${zone}`),
            dependsOn: [internet],
          }),
        );
        natByZone.push({ zone, id: natGateways[natGateways.length - 1].id });
      });
    }

    this.natGateways = natByZone;

    const privateRouteTables = zones.map((zone, index) => {
      const table = new RouteTable(this, `private-${zone}-routes`, { vpcId: vpc.id, tags: tag(`private-${zone}`) });
      new RouteTableAssociation(this, `private-${zone}-association`, { subnetId: privateSubnets[index].id, routeTableId: table.id });
      if (natGateways.length > 0) {
        // Zones without their own NAT share one; fewer NATs trade zone independence for cost.
        new Route(this, `private-${zone}-default-route`, {
          routeTableId: table.id,
          destinationCidrBlock: '0.0.0.0/0',
          natGatewayId: natGateways[index % natGateways.length].id,
        });
      }
      return table;
    });

    const endpointGroup = new SecurityGroup(this, 'endpoints', {
      name: `${props.namePrefix}-endpoints`,
      description: 'HTTPS from inside the VPC to the AWS service endpoints',
      vpcId: vpc.id,
      tags: tag('endpoints'),
    });
    this.endpointSecurityGroupId = endpointGroup.id;
    new VpcSecurityGroupIngressRule(this, 'endpoints-https', {
      securityGroupId: endpointGroup.id,
      description: 'HTTPS from the VPC',
      ipProtocol: 'tcp',
      fromPort: 443,
      toPort: 443,
      cidrIpv4: config.cidr,
    });
    // Endpoint policy: through these endpoints, only this account's principals reach only this
    // account's secrets, topics and queues (no exfiltration to another account's resources).
    const endpointPolicy = new DataAwsIamPolicyDocument(this, 'endpoint-policy', {
      statement: [
        {
          sid: 'OwnAccountOnly',
          effect: 'Allow',
          actions: ['*'],
          resources: ['*'],
          principals: [{ type: 'AWS', identifiers: ['*'] }],
          condition: [
            { test: 'StringEquals', variable: 'aws:PrincipalAccount', values: [props.accountId] },
            { test: 'StringEquals', variable: 'aws:ResourceAccount', values: [props.accountId] },
          ],
        },
      ],
    });
    for (const service of INTERFACE_ENDPOINT_SERVICES) {
      new VpcEndpoint(this, `endpoint-${service}`, {
        policy: endpointPolicy.json,
        vpcId: vpc.id,
        serviceName: `com.amazonaws.${props.region}.${service}`,
        vpcEndpointType: 'Interface',
        privateDnsEnabled: true,
        subnetIds: this.privateSubnetIds,
        securityGroupIds: [endpointGroup.id],
        tags: tag(service),
      });
    }
    // A gateway endpoint costs nothing and keeps S3 traffic (Lambda layers, exports) off the NAT.
    new VpcEndpoint(this, 'endpoint-s3', {
      vpcId: vpc.id,
      serviceName: `com.amazonaws.${props.region}.s3`,
      vpcEndpointType: 'Gateway',
      routeTableIds: privateRouteTables.map((table) => table.id),
      tags: tag('s3'),
    });
  }
}
