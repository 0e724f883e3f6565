"""`FinetuneFunction`: a Lambda function running a handler of the `finetune` package, securely by default."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from cdk_constructs.common import default_child, key_or_new
from cdk_constructs.nag import acknowledge, acknowledge_all, acknowledge_wildcard_resources

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The asset is an allow-list of the layers that run in Lambda (stdlib + boto3, which the runtime
# provides): finetune/core, aws and runtime. No bundling and no Docker; the command-line tools
# (finetune/cli) and finetune/__main__.py stay out. Glob excludes also stop the fingerprint from
# descending into .venv/ or node_modules/.
LAMBDA_LAYERS = ("core", "aws", "runtime")
ASSET_EXCLUDES = [
    "*",
    ".*",
    "!finetune",
    "!finetune/__init__.py",
    *(pattern for layer in LAMBDA_LAYERS for pattern in (f"!finetune/{layer}", f"!finetune/{layer}/**")),
    "__pycache__",
    "*.pyc",
]
# Lambda retries a failed asynchronous invocation once (events; CloudFormation's requests too).
RETRY_ATTEMPTS = 1
MAX_SERVICE_TIMEOUT_SECONDS = 3600  # CloudFormation's upper bound for ServiceTimeout


def finetune_code() -> lambda_.Code:
    """The Lambda code asset: this repository's `finetune/` package."""
    return lambda_.Code.from_asset(str(PROJECT_ROOT), exclude=ASSET_EXCLUDES, ignore_mode=cdk.IgnoreMode.GLOB)


@jsii.implements(iam.IGrantable)
class FinetuneFunction(Construct):
    """A Python Lambda function whose handler is `finetune.runtime.<module>.handler`.

    Defaults: Python 3.14 on arm64, 256 MB, `timeout` 5 minutes, X-Ray active tracing, its own role
    (no AWS-managed policy: it may write only to its own log group; callers grant the rest: the
    function is `iam.IGrantable`), a log group encrypted with `encryption_key` (default: a new key of
    its own; the key policy lets CloudWatch Logs use it for that group only) and kept `log_retention` (one year), and an SQS queue as
    the on-failure destination of asynchronous invocations, encrypted with the same key (an event
    that fails its retry lands there with the error, nothing is lost), with an alarm to `alarm_topic`
    as soon as it holds a message.

    `rule_target()` makes it an EventBridge rule's target that dead-letters into the same queue.

    Created resources: `self.lambda_function`, `self.role`, `self.log_group`, `self.dead_letter_queue`,
    `self.dlq_alarm`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler_module: str,
        description: str,
        alarm_topic: sns.ITopic,
        encryption_key: kms.IKey | None = None,
        timeout: cdk.Duration = cdk.Duration.minutes(5),
        memory_size: int = 256,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        environment: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if not (PROJECT_ROOT / "finetune" / "runtime" / f"{handler_module}.py").is_file():
            raise ValueError(f"{self.node.path}: no handler module finetune/runtime/{handler_module}.py")
        encryption_key = key_or_new(
            self, encryption_key, purpose="logs and dead letters", removal_policy=removal_policy
        )
        self.encryption_key = encryption_key
        stack = cdk.Stack.of(self)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            encryption_key=encryption_key,
            removal_policy=removal_policy,
        )
        # CloudWatch Logs may use the key for this log group only. CloudFormation names a log group
        # that has no name `<stack name>-<logical id>-<random>` (aws-cloudformation-resource-
        # providers-logs, CreateHandler.generateName); the encryption context is the group's ARN.
        cfn_log_group = default_child(self.log_group, logs.CfnLogGroup)
        encryption_key.grant_encrypt_decrypt(
            iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com").with_conditions(
                {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name=f"{stack.stack_name}-{cfn_log_group.logical_id}-*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                }
            )
        )
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=encryption_key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs {self.node.path}",
        )
        self.log_group.grant_write(self.role)
        # Lambda sends failed events to the encrypted dead-letter queue with the function's role.
        encryption_key.grant(self.role, "kms:GenerateDataKey", "kms:Decrypt")
        self.lambda_function = lambda_.Function(
            self,
            "Function",
            role=self.role,
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            code=finetune_code(),
            handler=f"finetune.runtime.{handler_module}.handler",
            timeout=timeout,
            memory_size=memory_size,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=RETRY_ATTEMPTS,
            environment=environment or {},
        )
        self.dlq_alarm = cloudwatch.Alarm(
            self,
            "DeadLettersAlarm",
            alarm_description=f"A failed invocation of {self.node.path} waits in its dead-letter queue",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5)
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dlq_alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))
        # How long CloudFormation waits for this function's answer to a custom resource request.
        # The handler answers before its own timeout (finetune.runtime.responder's deadline guard);
        # this bounds what no code can answer (an import error, out of memory): the first attempt
        # and Lambda's one retry, plus a margin to deliver the answer.
        self.service_timeout = cdk.Duration.seconds(
            min(timeout.to_seconds() * (1 + RETRY_ATTEMPTS) + 120, MAX_SERVICE_TIMEOUT_SECONDS)
        )
        self._acknowledge()

    @property
    def grant_principal(self) -> iam.IPrincipal:
        """What grants go to (`iam.IGrantable`): the function's own role."""
        return self.role

    def custom_resource(
        self, scope: Construct, construct_id: str, *, resource_type: str, properties: Mapping[str, str]
    ) -> cdk.CustomResource:
        """A custom resource answered by this function, with `service_timeout` as its ServiceTimeout
        (without one CloudFormation waits an hour for an answer that may never come). It depends on
        the function's role and its policy, whatever is granted later: a request never reaches the
        function before its permissions exist."""
        resource = cdk.CustomResource(
            scope,
            construct_id,
            service_token=self.lambda_function.function_arn,
            resource_type=resource_type,
            properties=dict(properties),
            service_timeout=self.service_timeout,
        )
        resource.node.add_dependency(self.role)
        return resource

    def acknowledge_wildcard_resources(self, resources: Mapping[str, str]) -> None:
        """Acknowledge cdk-nag's wildcard-resource findings on the function's own policy (the one
        its grants produce): {resource ARN or pattern: why no narrower resource exists}."""
        acknowledge_wildcard_resources(self._policy(), resources)

    def _policy(self) -> IConstruct:
        policy = self.role.node.try_find_child("DefaultPolicy")
        if policy is None:
            raise ValueError(f"{self.node.path}: nothing has been granted to the function yet")
        return policy

    def rule_target(self, *, retry_attempts: int = 2) -> targets.LambdaFunction:
        """This function as an EventBridge rule's target, with retries and the dead-letter queue.

        EventBridge puts what it could not deliver into the queue, so it must use the queue's key:
        the key policy allows `events.amazonaws.com` that for rules of this account and region only
        (`aws:SourceAccount`, `aws:SourceArn`). The rules' own ARNs cannot be named there: they
        depend on the queue, which depends on the key. The statement is the same for every target of
        a key, so the key policy holds it once.
        """
        stack = cdk.Stack.of(self)
        self.encryption_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeDeadLettersOfThisAccount",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="events", resource="rule", resource_name="*"
                        )
                    },
                },
            )
        )
        return targets.LambdaFunction(
            self.lambda_function, retry_attempts=retry_attempts, dead_letter_queue=self.dead_letter_queue
        )

    def _acknowledge(self) -> None:
        function = default_child(self.lambda_function, lambda_.CfnFunction)
        queue = default_child(self.dead_letter_queue, sqs.CfnQueue)
        acknowledge_all(
            function,
            {
                "NIST.800.53.R5-LambdaInsideVPC": "The function calls only AWS APIs (S3, Bedrock); a VPC "
                "would need NAT or interface endpoints per stack for no additional isolation of public "
                "AWS endpoints.",
                "NIST.800.53.R5-LambdaConcurrency": "Invoked only by CloudFormation and events of this "
                "stack; reserving concurrency would fail deploys in accounts whose unreserved "
                "concurrency is at the minimum of 10.",
            },
        )
        acknowledge(
            queue,
            "Serverless-SQSRedrivePolicy",
            "This queue is itself the failure destination of the function; a redrive policy would "
            "move failed events one more hop without anyone reading them.",
        )
        acknowledge(
            self.lambda_function.node.find_child("EventInvokeConfig"),
            "Serverless-LambdaAsyncFailureDestination",
            "Failed asynchronous invocations go to the encrypted dead-letter queue; an on-failure "
            "destination as well would deliver every failure twice.",
        )
        # Its grants (the log group's, the key's) are made above: the policy exists.
        acknowledge_all(
            self._policy(),
            {
                "NIST.800.53.R5-IAMNoInlinePolicy": "CDK grants on this function's own role produce "
                "this policy; it is attached to that single role and scoped to this stack's resources.",
                "AwsSolutions-IAM5[Resource::*]": "X-Ray PutTraceSegments/PutTelemetryRecords do not "
                "support resource-level permissions (X-Ray service authorization reference).",
            },
        )
