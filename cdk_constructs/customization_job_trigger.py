"""`CustomizationJobTrigger`: starts a Bedrock customization job when configuration or data change.

CloudFormation has no resource type for a customization job, so a `Custom::CustomizationJob`
resource backed by a Lambda function (`finetune/runtime/customization_job_trigger.py`) stands for
it. Its properties are the whole job (`finetune.core.contracts.JobResource`): model, type, every
hyperparameter, data locations and digests, and the job name derived from them. A deploy that
changes any of them shows the new job name in `cdk diff` and starts exactly one new job; a deploy
that changes none starts nothing. The same function starts a job when data is uploaded under
`incoming/` (an EventBridge rule on the bucket's object events), so data teams retrain without a
deploy.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.lambda_function import FinetuneFunction
from cdk_constructs.nag import prefix_objects
from cdk_constructs.training_data_bucket import TrainingDataBucket
from cdk_constructs.training_data_upload import TrainingDataUpload
from finetune.core import names
from finetune.core.checks import check_job_spec
from finetune.core.contracts import JobResource, JobTemplate, TrainingBudget, TriggerEnvironment
from finetune.core.names import JobSpec


class CustomizationJobTrigger(Construct):
    """The job trigger of one fine-tuning: a Lambda function, the job resource and the upload rule.

    `spec` is checked against the catalog here (model, type, region, every hyperparameter as the
    string Bedrock takes), as synth checks a configuration: a construct built by other code starts
    nothing Bedrock would refuse.

    Defaults: as `FinetuneFunction` (Python 3.14 arm64, traced, encrypted logs and dead-letter
    queue with an alarm), a 15-minute timeout (it streams and validates the whole dataset before a
    job is paid for); `encryption_key` (which also encrypts the custom models): the data bucket's.
    `stop_on_delete` (default False) stops the deployed job when the resource is deleted with its
    stack; `stop_superseded` (default False) stops a job still running when a newer deploy or upload
    replaces it (it would never be served). Uploads of `.jsonl` objects under `incoming/` start a job
    on that data (validated first; rejected uploads are tagged and reported to `topic`).
    `training_budget` (default None): no job starts, at deploy or on an upload, whose data's
    estimated training cost exceeds it (the upload is tagged rejected and `topic` told why).

    Permissions, each scoped to this account and region: create, read, stop and tag customization
    jobs (and list a job's tags) and custom models (`bedrock:*` on job and model ARNs: their ids are chosen by Bedrock);
    `iam:PassRole` on the customization role only, to `bedrock.amazonaws.com` only; `kms:DescribeKey`
    and `kms:CreateGrant` (for an AWS resource) on the key through Bedrock only, which encrypts the
    custom model with it; read data prefixes, write `training/` (staging uploads), tag `incoming/`
    objects; its own deployed-job parameter; publish to `topic`.

    Created resources: `self.function` (FinetuneFunction), `self.job` (the custom resource),
    `self.upload_rule`, and one job resource per `add_candidate` (`self.candidate_jobs`).
    Attributes for others: `self.job_name`, `self.job_arn`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: JobSpec,
        training_bucket: TrainingDataBucket,
        customization_role: iam.IRole,
        training_upload: TrainingDataUpload,
        topic: sns.ITopic,
        validation_upload: TrainingDataUpload | None = None,
        encryption_key: kms.IKey | None = None,
        stop_on_delete: bool = False,
        stop_superseded: bool = False,
        training_budget: TrainingBudget | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        problems = check_job_spec(spec, stack.region)
        if (validation_upload is None) != (spec.validation_sha256 is None):
            problems.append("validation_upload and spec.validation_sha256 must be given together")
        if training_upload.sha256 != spec.training_sha256:
            problems.append(
                f"spec.training_sha256 is {spec.training_sha256}, the training upload's {training_upload.sha256}"
            )
        if problems:
            raise ValueError(f"{self.node.path}: the job cannot be started: " + "; ".join(problems))
        encryption_key = encryption_key or training_bucket.encryption_key
        bucket = training_bucket.bucket
        self._training_upload, self._stop_on_delete = training_upload, stop_on_delete

        def template_for(job: JobSpec, budget: TrainingBudget | None) -> JobTemplate:
            return JobTemplate.for_spec(
                job,
                role_arn=customization_role.role_arn,
                output_s3_uri=names.s3_uri(bucket.bucket_name, names.output_key_prefix(job.fine_tuning)),
                validation_s3_uri=validation_upload.resource.get_att_string("S3Uri")
                if validation_upload
                else None,
                kms_key_arn=encryption_key.key_arn,
                stop_superseded=stop_superseded,
                training_budget=budget,
            )

        self._template_for = template_for
        template = template_for(spec, training_budget)
        trigger = TriggerEnvironment(template, topic.topic_arn)
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
            environment=trigger.to_environment(stack.to_json_string(template.to_properties())),
        )
        self._grant(spec, training_bucket, customization_role, encryption_key, topic)

        resource = JobResource(
            template,
            training_s3_uri=training_upload.resource.get_att_string("S3Uri"),
            training_sha256=spec.training_sha256,
            stop_on_delete=stop_on_delete,
        )
        self.job = self.function.custom_resource(
            self, "Job", resource_type=JobResource.RESOURCE_TYPE, properties=resource.to_properties()
        )
        self.job_name = spec.job_name
        self.job_arn = self.job.get_att_string("JobArn")
        self.candidate_jobs: dict[str, cdk.CustomResource] = {}
        self.candidate_job_names: dict[str, str] = {}

        self.upload_rule = events.Rule(
            self,
            "UploadRule",
            description=f"Uploads under {names.INCOMING_PREFIX} start a customization job of {spec.fine_tuning}",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": [{"prefix": names.INCOMING_PREFIX}]},
                },
            ),
            targets=[self.function.rule_target()],
        )

    def add_candidate(
        self, name: str, spec: JobSpec, training_budget: TrainingBudget | None = None
    ) -> cdk.CustomResource:
        """Another job of this fine-tuning, on the same data: a candidate for the evaluation gate.

        It is a `Custom::CustomizationJob` of its own (with a `Trial` property), started and stopped
        by the same function and rules, but never recorded as the deployed job: uploads and retries
        retrain the fine-tuning's own settings only. `spec` must train the same data as the main job.
        """
        stack = cdk.Stack.of(self)
        problems = check_job_spec(spec, stack.region)
        if spec.training_sha256 != self._training_upload.sha256:
            problems.append("a candidate trains on the fine-tuning's own training data")
        if name == names.MAIN_TRIAL or name in self.candidate_jobs:
            problems.append(f"the name {name!r} is taken")
        if spec.job_name in (self.job_name, *self.candidate_job_names.values()):
            problems.append(f"it trains what another job of this fine-tuning trains ({spec.job_name})")
        if problems:
            raise ValueError(
                f"{self.node.path}: candidate {name!r} cannot be started: " + "; ".join(problems)
            )
        resource = JobResource(
            self._template_for(spec, training_budget),
            training_s3_uri=self._training_upload.resource.get_att_string("S3Uri"),
            training_sha256=spec.training_sha256,
            stop_on_delete=self._stop_on_delete,
            trial=name,
        )
        job = self.function.custom_resource(
            self,
            f"Candidate-{name}",
            resource_type=JobResource.RESOURCE_TYPE,
            properties=resource.to_properties(),
        )
        job.node.add_dependency(self.job)  # one job start at a time per deploy, the main job first
        self.candidate_jobs[name] = job
        self.candidate_job_names[name] = spec.job_name
        return job

    def _grant(
        self,
        spec: JobSpec,
        training_bucket: TrainingDataBucket,
        customization_role: iam.IRole,
        encryption_key: kms.IKey,
        topic: sns.ITopic,
    ) -> None:
        stack = cdk.Stack.of(self)
        function = self.function
        jobs = stack.format_arn(service="bedrock", resource="model-customization-job", resource_name="*")
        models = stack.format_arn(service="bedrock", resource="custom-model", resource_name="*")
        foundation_models = stack.format_arn(
            service="bedrock", resource="foundation-model", resource_name="*", account=""
        )
        # A job with customModelKmsKeyId: Bedrock checks the key and grants itself its use, with the
        # caller's permissions, through Bedrock only (and the grant only for an AWS resource).
        through_bedrock = {"kms:ViaService": f"bedrock.{stack.region}.amazonaws.com"}
        deployed_job = names.ssm_parameter_name(
            spec.environment, spec.fine_tuning, names.DEPLOYED_JOB_PARAMETER
        )
        statements = [
            iam.PolicyStatement(
                sid="StartCustomizationJobs",
                actions=["bedrock:CreateModelCustomizationJob", "bedrock:TagResource"],
                resources=[jobs, models, foundation_models],
            ),
            # Finds the running attempts of a job whose Create failed, to stop them.
            iam.PolicyStatement(
                sid="ListJobs", actions=["bedrock:ListModelCustomizationJobs"], resources=["*"]
            ),
            # Which job the fine-tuning serves (finetune.aws.jobs.DeployedJob).
            iam.PolicyStatement(
                sid="RecordDeployedJob",
                actions=["ssm:GetParameter", "ssm:PutParameter", "ssm:AddTagsToResource"],
                resources=[
                    stack.format_arn(
                        service="ssm", resource="parameter", resource_name=deployed_job.lstrip("/")
                    )
                ],
            ),
            # ListTagsForResource: a retry reads a job's data digest from its tag when the data
            # is not staged under that digest (finetune.aws.training).
            iam.PolicyStatement(
                sid="ReadAndStopOwnJobs",
                actions=[
                    "bedrock:GetModelCustomizationJob",
                    "bedrock:StopModelCustomizationJob",
                    "bedrock:ListTagsForResource",
                ],
                resources=[jobs],
            ),
            # A Completed job counts only while its custom model exists (destroy may delete it).
            iam.PolicyStatement(sid="ReadOwnModels", actions=["bedrock:GetCustomModel"], resources=[models]),
            iam.PolicyStatement(
                sid="CheckCustomModelKeyThroughBedrock",
                actions=["kms:DescribeKey"],
                resources=[encryption_key.key_arn],
                conditions={"StringEquals": through_bedrock},
            ),
            iam.PolicyStatement(
                sid="GrantCustomModelKeyToBedrock",
                actions=["kms:CreateGrant"],
                resources=[encryption_key.key_arn],
                conditions={"StringEquals": through_bedrock, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            iam.PolicyStatement(
                sid="PassCustomizationRoleToBedrockOnly",
                actions=["iam:PassRole"],
                resources=[customization_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}},
            ),
            # Exact actions (Topic.grant_publish adds kms:GenerateDataKey*); the function has the key already.
            iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
        ]
        for statement in statements:
            function.role.add_to_principal_policy(statement)
        for prefix in (names.TRAINING_PREFIX, names.VALIDATION_PREFIX, names.INCOMING_PREFIX):
            training_bucket.grant_read(function, prefix)
        training_bucket.grant_write(function, names.TRAINING_PREFIX)
        training_bucket.grant_tagging(function, names.INCOMING_PREFIX)
        # Staging an upload asks whether the content-addressed key exists yet: 404, not 403.
        training_bucket.grant_list(function)
        # An upload is copied as the very version that was validated (GetObject with a VersionId).
        training_bucket.grant_read_versions(function, names.INCOMING_PREFIX)

        fixed = "; the account and region are fixed."
        function.acknowledge_wildcard_resources(
            {
                "*": "No narrower resource exists: ListModelCustomizationJobs supports no resource-level "
                "permissions (it lists names; acting on a job needs the grants above).",
                jobs: "No narrower resource exists: Bedrock chooses job ids (ARNs end in a random id)"
                + fixed,
                models: "No narrower resource exists: custom models are created by the job" + fixed,
                foundation_models: "No narrower resource exists: base models are AWS-owned in this region"
                + fixed,
                **prefix_objects(
                    training_bucket.bucket,
                    [names.TRAINING_PREFIX, names.VALIDATION_PREFIX, names.INCOMING_PREFIX],
                    "The function validates and stages data files whose names users choose, within one "
                    "prefix of this stack's bucket.",
                ),
            }
        )
