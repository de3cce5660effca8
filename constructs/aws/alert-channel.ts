import { Construct } from 'constructs';
import type { TerraformProvider } from 'cdktf';
import { AwsConstructError } from './errors';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { KmsAlias } from '@cdktf/provider-aws/lib/kms-alias';
import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { SnsTopicSubscription } from '@cdktf/provider-aws/lib/sns-topic-subscription';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { ChatbotSlackChannelConfiguration } from '@cdktf/provider-aws/lib/chatbot-slack-channel-configuration';
import type { AlertsConfig } from '../../config/schema';
import { AwsLocation, partitionOf } from './arn';
import type { WorkerFunction } from './worker-function';

/** Props of {@link AlertChannel}. */
export interface AlertChannelProps {
  /** E-mail addresses and optional Slack channel. */
  readonly config: AlertsConfig;
  /** Account and region (the key policy names the account). */
  readonly location: AwsLocation;
  /** Name prefix, e.g. `adstream-dev`. */
  readonly namePrefix: string;
  /** `prevent_destroy` on the key (destroying it makes queued alerts unreadable). */
  readonly production: boolean;
  /**
   * Provider in `alerts.slack.apiRegion`: the Chatbot API runs in four regions only, so the
   * channel configuration is created there (it may subscribe to a topic of any supported region).
   * @default - required when `config.slack` is set
   */
  readonly chatbotProvider?: TerraformProvider;
}

/**
 * Where people hear about the pipeline: an SNS topic encrypted with its own KMS key (the AWS
 * managed SNS key would refuse CloudWatch alarms), e-mail subscriptions (each address confirms
 * once) and, when configured, a Slack channel through AWS Chatbot. Budget alerts from the
 * outbox and every CloudWatch alarm publish here.
 */
export class AlertChannel extends Construct {
  /** Topic ARN. */
  public readonly topicArn: string;
  /** ARN of the topic's KMS key. */
  public readonly keyArn: string;

  constructor(scope: Construct, id: string, props: AlertChannelProps) {
    super(scope, id);
    const { location } = props;
    const partition = partitionOf(location.region);
    const keyPolicy = new DataAwsIamPolicyDocument(this, 'key-policy', {
      statement: [
        {
          sid: 'AccountAdministers',
          effect: 'Allow',
          actions: ['kms:*'],
          resources: ['*'],
          principals: [{ type: 'AWS', identifiers: [`arn:${partition}:iam::${location.accountId}:root`] }],
        },
        {
          sid: 'AlarmsPublish',
          effect: 'Allow',
          actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
          resources: ['*'],
          principals: [{ type: 'Service', identifiers: ['cloudwatch.amazonaws.com'] }],
          condition: [{ test: 'StringEquals', variable: 'aws:SourceAccount', values: [location.accountId] }],
        },
      ],
    });
    const key = new KmsKey(this, 'key', {
      description: `${props.namePrefix} alerts topic`,
      enableKeyRotation: true,
      deletionWindowInDays: 30,
      policy: keyPolicy.json,
      lifecycle: { preventDestroy: props.production },
    });
    new KmsAlias(this, 'key-alias', { name: `alias/${props.namePrefix}-alerts`, targetKeyId: key.keyId });
    this.keyArn = key.arn;

    const topic = new SnsTopic(this, 'topic', { name: `${props.namePrefix}-alerts`, kmsMasterKeyId: key.arn });
    this.topicArn = topic.arn;
    props.config.emails.forEach((email, index) => {
      // Index, not address, in the id: the id is a state address and addresses contain "@".
      new SnsTopicSubscription(this, `email-${index}`, { topicArn: topic.arn, protocol: 'email', endpoint: email });
    });

    if (props.config.slack) {
      if (!props.chatbotProvider) {
        throw new AwsConstructError(this.node.path, `alerts.slack needs a chatbotProvider in ${props.config.slack.apiRegion}, where the Chatbot API runs.`);
      }
      const assume = new DataAwsIamPolicyDocument(this, 'chatbot-assume', {
        statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['chatbot.amazonaws.com'] }] }],
      });
      const readAlarms = new DataAwsIamPolicyDocument(this, 'chatbot-access', {
        statement: [{ sid: 'ReadAlarmContext', effect: 'Allow', actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:GetMetricData'], resources: ['*'] }],
      });
      const role = new IamRole(this, 'chatbot-role', { name: `${props.namePrefix}-alerts-chatbot`, assumeRolePolicy: assume.json });
      new IamRolePolicy(this, 'chatbot-role-policy', { name: 'read-alarm-context', role: role.id, policy: readAlarms.json });
      new ChatbotSlackChannelConfiguration(this, 'slack', {
        configurationName: `${props.namePrefix}-alerts`,
        iamRoleArn: role.arn,
        slackTeamId: props.config.slack.workspaceId,
        slackChannelId: props.config.slack.channelId,
        snsTopicArns: [topic.arn],
        guardrailPolicyArns: [`arn:${partition}:iam::aws:policy/ReadOnlyAccess`],
        loggingLevel: 'ERROR',
        provider: props.chatbotProvider,
      });
    }
  }

  /** Lets a function publish to the topic: `ALERTS_TOPIC_ARN`, `sns:Publish` and use of the key. */
  public grantPublish(worker: WorkerFunction): void {
    worker.setVariables({ ALERTS_TOPIC_ARN: this.topicArn });
    worker.addStatement({ sid: 'PublishAlerts', effect: 'Allow', actions: ['sns:Publish'], resources: [this.topicArn] });
    worker.addStatement({ sid: 'EncryptAlerts', effect: 'Allow', actions: ['kms:GenerateDataKey*', 'kms:Decrypt'], resources: [this.keyArn] });
  }
}
