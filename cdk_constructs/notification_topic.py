"""`NotificationTopic`: where a fine-tuning tells people what happened (and alarms go)."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from cdk_constructs.common import key_or_new
from cdk_constructs.nag import acknowledge


class NotificationTopic(Construct):
    """An SNS topic encrypted with `encryption_key` (default: a new key of its own, kept or deleted by
    `removal_policy`), TLS-only, with an e-mail subscription per address.

    CloudWatch alarms of this account and region may publish to it (`aws:SourceAccount`,
    `aws:SourceArn` in the topic policy; the key policy lets CloudWatch use the key for that, and only
    that). E-mail subscriptions must be confirmed by their owners once.
    Created resources: `self.topic`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey | None = None,
        emails: Sequence[str] = (),
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        encryption_key = key_or_new(
            self, encryption_key, purpose="notifications", removal_policy=removal_policy
        )
        self.topic = sns.Topic(self, "Topic", master_key=encryption_key, enforce_ssl=True)
        # A topic policy replaces SNS's default one, so CloudWatch needs its own Allow: for alarms of
        # this account and region only (those of the stack and those its functions create at run time).
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        cloudwatch = iam.ServicePrincipal("cloudwatch.amazonaws.com").with_conditions(
            {"StringEquals": {"aws:SourceAccount": stack.account}}
        )
        encryption_key.grant(cloudwatch, "kms:Decrypt", "kms:GenerateDataKey")
        for email in emails:
            subscription = self.topic.add_subscription(subscriptions.EmailSubscription(email))
            acknowledge(
                subscription,
                "Serverless-SNSRedrivePolicy",
                "An e-mail that cannot be delivered cannot be redelivered from a queue either; every "
                "notification is also written to the sending function's log.",
            )
