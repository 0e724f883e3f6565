"""`CustomizationJobTrigger`: starts a Bedrock customization job when configuration or data change.

CloudFormation has no resource type for a customization job, so a `Custom::CustomizationJob`
resource backed by a Lambda function (`finetune/runtime/customization_job_trigger.py`) stands for it. Its
properties are the whole job: model, type, every hyperparameter, data locations and digests, and
the job name derived from them (`finetune.core.names.JobSpec`). A deploy that changes any of them
shows the new job name in `cdk diff` and starts exactly one new job; a deploy that changes none
starts nothing. The same function starts a job when data is uploaded under `incoming/` (an
EventBridge rule on the bucket's object events), so data teams retrain without a deploy.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.lambda_function import FinetuneFunction
from cdk_constructs.nag import acknowledge_wildcard_resources, prefix_objects
from cdk_constructs.training_data_bucket import (
    INCOMING_PREFIX,
    OUTPUT_PREFIX,
    TRAINING_PREFIX,
    VALIDATION_PREFIX,
    TrainingDataBucket,
)
from cdk_constructs.training_data_upload import TrainingDataUpload
from finetune.aws.jobs import DEPLOYED_JOB_PARAMETER, job_resource_properties, job_template
from finetune.core.names import JobSpec, ssm_parameter_name

RESOURCE_TYPE = "Custom::CustomizationJob"


class CustomizationJobTrigger(Construct):
    """The job trigger of one fine-tuning: a Lambda function, the job resource and the upload rule.

    Defaults: as `FinetuneFunction` (Python 3.14 arm64, traced, encrypted logs and dead-letter
    queue with an alarm), a 15-minute timeout (it streams and validates the whole dataset before a
    job is paid for). `stop_on_delete` (default False) stops the deployed job when the resource is
    deleted with its stack; `stop_superseded` (default False) stops a job still running when a newer
    deploy or upload replaces it (it would never be served). Uploads of `.jsonl` objects under `incoming/` start a
    job on that data (validated first; rejected uploads are tagged and reported to `topic`).

    Permissions, each scoped to this account and region: create, read, stop and tag customization
    jobs and custom models (`bedrock:*` on job and model ARNs: their ids are chosen by Bedrock);
    `iam:PassRole` on the customization role only, to `bedrock.amazonaws.com` only; `kms:DescribeKey`
    and `kms:CreateGrant` (for an AWS resource) on the key through Bedrock only, which encrypts the
    custom model with it; read data prefixes, write `training/` (staging uploads), tag `incoming/`
    objects; publish to `topic`.

    Created resources: `self.function` (FinetuneFunction), `self.job` (the custom resource),
    `self.upload_rule`. Attributes for others: `self.job_name`, `self.job_arn`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: JobSpec,
        data: TrainingDataBucket,
        customization_role: iam.IRole,
        training_upload: TrainingDataUpload,
        validation_upload: TrainingDataUpload | None,
        encryption_key: kms.IKey,
        topic: sns.ITopic,
        stop_on_delete: bool = False,
        stop_superseded: bool = False,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        bucket = data.bucket
        output_s3_uri = f"s3://{bucket.bucket_name}/{OUTPUT_PREFIX}{spec.fine_tuning}/"
        template = job_template(
            spec,
            role_arn=customization_role.role_arn,
            output_s3_uri=output_s3_uri,
            validation_s3_uri=validation_upload.resource.get_att_string("S3Uri") if validation_upload else "",
            kms_key_arn=encryption_key.key_arn,
            stop_superseded=stop_superseded,
        )
        self.function = FinetuneFunction(
            self,
            "Function",
            handler_module="customization_job_trigger",
            description=f"Starts Bedrock customization jobs of {spec.environment}-{spec.fine_tuning}",
            encryption_key=encryption_key,
            alarm_topic=topic,
            timeout=cdk.Duration.minutes(15),
            memory_size=512,
            removal_policy=removal_policy,
            environment={
                "FINETUNE_JOB_TEMPLATE": stack.to_json_string(template),
                "FINETUNE_TOPIC_ARN": topic.topic_arn,
                "FINETUNE_INCOMING_PREFIX": INCOMING_PREFIX,
                "FINETUNE_TRAINING_PREFIX": TRAINING_PREFIX,
            },
        )
        role = self.function.role
        self._grant(role, spec, data, customization_role, encryption_key, topic)

        self.job = self.function.custom_resource(
            self,
            "Job",
            resource_type=RESOURCE_TYPE,
            properties=job_resource_properties(
                spec,
                template,
                training_s3_uri=training_upload.resource.get_att_string("S3Uri"),
                stop_on_delete=stop_on_delete,
            ),
        )
        # The function's permissions must exist before CloudFormation asks it to start a job.
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.job.node.add_dependency(policy)
        self.job_name = spec.job_name
        self.job_arn = self.job.get_att_string("JobArn")

        self.upload_rule = events.Rule(
            self,
            "UploadRule",
            description=f"Uploads under {INCOMING_PREFIX} start a customization job of {spec.fine_tuning}",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": [{"prefix": INCOMING_PREFIX}]},
                },
            ),
            targets=[self.function.rule_target()],
        )

    def _grant(
        self,
        role: iam.IRole,
        spec: JobSpec,
        data: TrainingDataBucket,
        customization_role: iam.IRole,
        encryption_key: kms.IKey,
        topic: sns.ITopic,
    ) -> None:
        stack = cdk.Stack.of(self)
        jobs = stack.format_arn(service="bedrock", resource="model-customization-job", resource_name="*")
        models = stack.format_arn(service="bedrock", resource="custom-model", resource_name="*")
        foundation_models = stack.format_arn(
            service="bedrock", resource="foundation-model", resource_name="*", account=""
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="StartCustomizationJobs",
                actions=["bedrock:CreateModelCustomizationJob", "bedrock:TagResource"],
                resources=[jobs, models, foundation_models],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # Finds the running attempts of a job whose Create failed, to stop them.
                sid="ListJobs",
                actions=["bedrock:ListModelCustomizationJobs"],
                resources=["*"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # Which job the fine-tuning serves (finetune.aws.jobs.DeployedJob).
                sid="RecordDeployedJob",
                actions=["ssm:GetParameter", "ssm:PutParameter", "ssm:AddTagsToResource"],
                resources=[
                    stack.format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name=ssm_parameter_name(
                            spec.environment, spec.fine_tuning, DEPLOYED_JOB_PARAMETER
                        ).lstrip("/"),
                    )
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadAndStopOwnJobs",
                actions=["bedrock:GetModelCustomizationJob", "bedrock:StopModelCustomizationJob"],
                resources=[jobs],
            )
        )
        # A job with customModelKmsKeyId: Bedrock checks the key and grants itself its use, with the
        # caller's permissions, through Bedrock only (and the grant only for an AWS resource).
        through_bedrock = {"kms:ViaService": f"bedrock.{stack.region}.amazonaws.com"}
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="CheckCustomModelKeyThroughBedrock",
                actions=["kms:DescribeKey"],
                resources=[encryption_key.key_arn],
                conditions={"StringEquals": through_bedrock},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="GrantCustomModelKeyToBedrock",
                actions=["kms:CreateGrant"],
                resources=[encryption_key.key_arn],
                conditions={"StringEquals": through_bedrock, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassCustomizationRoleToBedrockOnly",
                actions=["iam:PassRole"],
                resources=[customization_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}},
            )
        )
        for prefix in (TRAINING_PREFIX, VALIDATION_PREFIX, INCOMING_PREFIX):
            data.grant_read(role, prefix)
        data.grant_write(role, TRAINING_PREFIX)
        data.grant_tagging(role, INCOMING_PREFIX)
        # Staging an upload asks whether the content-addressed key exists yet: 404, not 403.
        data.grant_list(role)
        # An upload is copied as the very version that was validated (GetObject with a VersionId).
        iam.Grant.add_to_principal(
            grantee=role,
            actions=["s3:GetObjectVersion"],
            resource_arns=[data.bucket.arn_for_objects(f"{INCOMING_PREFIX}*")],
        )
        # Exact actions (Topic.grant_publish adds kms:GenerateDataKey*); the key is granted above.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn])
        )

        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        fixed = "; the account and region are fixed."
        acknowledge_wildcard_resources(
            policy,
            {
                "*": "No narrower resource exists: ListModelCustomizationJobs supports no resource-level "
                "permissions (it lists names; acting on a job needs the grants above).",
                jobs: "No narrower resource exists: Bedrock chooses job ids (ARNs end in a random id)"
                + fixed,
                models: "No narrower resource exists: custom models are created by the job" + fixed,
                foundation_models: "No narrower resource exists: base models are AWS-owned in this region"
                + fixed,
                **prefix_objects(
                    data.bucket,
                    [TRAINING_PREFIX, VALIDATION_PREFIX, INCOMING_PREFIX],
                    "The function validates and stages data files whose names users choose, within one "
                    "prefix of this stack's bucket.",
                ),
            },
        )
