"""`FineTuningStack`: everything one fine-tuning needs in one environment."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_constructs import (
    BedrockCustomizationRole,
    CustomizationJobTrigger,
    ModelEvaluationRole,
    NotificationTopic,
    ServingLifecycle,
    TrainingDataBucket,
    TrainingDataUpload,
    TrainingDataUploadFunction,
)
from finetune.core.contracts import EvaluationGate
from finetune.core.evaluation import INFERENCE_PROFILE_PREFIXES, EvaluationSettings
from finetune.core.names import (
    ENDPOINT_ARN_PARAMETER,
    EVALUATION_DATA_PREFIX,
    MAIN_TRIAL,
    TRAINING_PREFIX,
    VALIDATION_PREFIX,
    ssm_parameter_name,
    without_context_suffix,
)
from finetune.core.plan import DataPlan, FineTuningPlan

REMOVAL_POLICIES = {"retain": cdk.RemovalPolicy.RETAIN, "destroy": cdk.RemovalPolicy.DESTROY}


class FineTuningStack(cdk.Stack):
    """One (environment, fine-tuning): its data bucket, Bedrock service role and staged data.

    `plan` is the stack's typed parameter, decided at synth time: the fine-tuning's configuration with
    the environment's overrides applied, resolved hyperparameters, data digests and cost estimate.
    The template records it in its `Metadata.FineTuning` section and in outputs, so `cdk diff` shows
    a reviewer exactly what a deploy will train and serve.

    Public attributes for the constructs later layers add (job trigger, serving, teardown):
    `training_bucket` (TrainingDataBucket), `customization_role`, `encryption_key`, `notifications`,
    `training_upload`, `validation_upload` (or None), `job_trigger`, `serving`.
    """

    def __init__(self, scope: Construct, construct_id: str, *, plan: FineTuningPlan, **kwargs: Any) -> None:
        config = plan.config
        super().__init__(scope, construct_id, description=_description(plan), **kwargs)
        removal_policy = REMOVAL_POLICIES[config.environment.removal_policy]

        self.encryption_key = kms.Key(
            self,
            "EncryptionKey",
            description=f"Encrypts training data, job output, logs and queues of {config.stack_name}",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            pending_window=cdk.Duration.days(7) if removal_policy == cdk.RemovalPolicy.DESTROY else None,
        )
        self.training_bucket = TrainingDataBucket(
            self, "TrainingData", removal_policy=removal_policy, encryption_key=self.encryption_key
        )
        self.customization_role = BedrockCustomizationRole(
            self, "CustomizationRole", bucket=self.training_bucket.bucket
        )
        self.notifications = NotificationTopic(
            self,
            "Notifications",
            encryption_key=self.encryption_key,
            emails=config.environment.notification_emails,
        )
        staging = TrainingDataUploadFunction(
            self,
            "DataStaging",
            encryption_key=self.encryption_key,
            alarm_topic=self.notifications.topic,
            removal_policy=removal_policy,
        )

        def upload(construct_id: str, data: DataPlan, prefix: str) -> TrainingDataUpload:
            return TrainingDataUpload(
                self,
                construct_id,
                source=data.file.path,
                sha256=data.digest.sha256,
                size_bytes=data.digest.size_bytes,
                training_bucket=self.training_bucket,
                prefix=prefix,
                fine_tuning=config.name,
                function=staging,
            )

        self.training_upload = upload("TrainingDataUpload", plan.training, TRAINING_PREFIX)
        self.validation_upload = (
            upload("ValidationDataUpload", plan.validation, VALIDATION_PREFIX) if plan.validation else None
        )

        self.job_trigger = CustomizationJobTrigger(
            self,
            "CustomizationJobTrigger",
            spec=plan.job_spec,
            training_bucket=self.training_bucket,
            customization_role=self.customization_role.role,
            training_upload=self.training_upload,
            validation_upload=self.validation_upload,
            encryption_key=self.encryption_key,
            topic=self.notifications.topic,
            stop_on_delete=config.environment.stop_jobs_on_destroy,
            stop_superseded=config.environment.stop_superseded_jobs,
            training_budget=plan.training_budget,
            removal_policy=removal_policy,
        )
        # Bedrock reads the data with the customization role: its policy must exist before a job starts.
        self.job_trigger.job.node.add_dependency(self.customization_role)
        for candidate in plan.candidates:
            self.job_trigger.add_candidate(
                candidate.config.trial_name, candidate.job_spec, candidate.training_budget
            )
        self.evaluation_upload: TrainingDataUpload | None = None
        self.evaluation_role: ModelEvaluationRole | None = None
        gate: EvaluationGate | None = None
        if plan.evaluation is not None:
            self.evaluation_upload = upload(
                "EvaluationDataUpload", plan.evaluation.data, EVALUATION_DATA_PREFIX
            )
            self.evaluation_role = self._evaluation_role(plan, plan.evaluation.settings)
            # A candidate's job name is its resource's (a retried generation included); the main
            # one's is read from the deployed-job record at run time.
            candidates = self.job_trigger.candidate_jobs
            gate = plan.evaluation_gate(
                role_arn=self.evaluation_role.role.role_arn,
                bucket=self.training_bucket.bucket.bucket_name,
                dataset_key=self.evaluation_upload.key,
                kms_key_arn=self.encryption_key.key_arn,
                job_names={
                    MAIN_TRIAL: self.job_trigger.job_name,
                    **{name: job.get_att_string("JobName") for name, job in candidates.items()},
                },
            )

        self.serving = ServingLifecycle(
            self,
            "ServingLifecycle",
            environment=config.environment.name,
            fine_tuning=config.name,
            serving=config.serving,
            encryption_key=self.encryption_key,
            topic=self.notifications.topic,
            removal_policy=removal_policy,
            stop_jobs_on_destroy=config.environment.stop_jobs_on_destroy,
            # A destroy environment deletes the key that encrypts the custom models: they would be
            # unreadable, and still billed for storage.
            delete_models_on_destroy=removal_policy == cdk.RemovalPolicy.DESTROY,
            gate=gate,
            evaluation_role=self.evaluation_role,
            training_bucket=self.training_bucket if gate is not None else None,
        )
        # Deploys update the job first (it records the deployed job that serving then reads). On
        # delete, the upload rule goes before serving's teardown, which stops the running jobs
        # before it deletes what serves: nothing can start or complete behind it.
        self.serving.resource.node.add_dependency(self.job_trigger.job)
        for candidate_job in self.job_trigger.candidate_jobs.values():
            self.serving.resource.node.add_dependency(candidate_job)
        self.job_trigger.upload_rule.node.add_dependency(self.serving.resource)

        self.add_metadata("FineTuning", plan.describe())
        self._outputs(plan)

    def _evaluation_role(self, plan: FineTuningPlan, settings: EvaluationSettings) -> ModelEvaluationRole:
        """The evaluation jobs' role: it may invoke this account's provisioned throughputs (a trial's
        temporary endpoint), the base models (for beat_base) and the judge."""

        def foundation_model(model_id: str, region: str | None = None) -> str:
            return self.format_arn(
                service="bedrock",
                resource="foundation-model",
                resource_name=model_id,
                account="",
                region=region,
            )

        evaluated = [self.format_arn(service="bedrock", resource="provisioned-model", resource_name="*")]
        if settings.gate.beat_base:
            evaluated += [
                foundation_model(without_context_suffix(trial.config.base_model)) for trial in plan.trials
            ]
        judges: list[str] = []
        if settings.judge_model is not None:
            geography, _, model_id = settings.judge_model.partition(".")
            if geography + "." in INFERENCE_PROFILE_PREFIXES:
                # A cross-Region profile routes to its geography's Regions, which synth cannot list:
                # the profile here, and this one foundation model in any Region.
                judges += [
                    self.format_arn(
                        service="bedrock", resource="inference-profile", resource_name=settings.judge_model
                    ),
                    foundation_model(model_id, region="*"),
                ]
            else:
                judges.append(foundation_model(settings.judge_model))
        return ModelEvaluationRole(
            self,
            "EvaluationRole",
            bucket=self.training_bucket.bucket,
            evaluated_models=list(dict.fromkeys(evaluated)),
            judge_models=judges,
        )

    def _outputs(self, plan: FineTuningPlan) -> None:
        outputs: dict[str, tuple[str, str]] = {
            "TrainingDataBucketName": (
                self.training_bucket.bucket.bucket_name,
                "Bucket holding data and job output",
            ),
            "CustomizationRoleArn": (self.customization_role.role.role_arn, "Role Bedrock jobs assume"),
            "TrainingDataS3Uri": (self.training_upload.s3_uri, "Staged training data"),
            "TrainingDataSha256": (plan.training.digest.sha256, "sha256 of the training data"),
            "Hyperparameters": (json.dumps(dict(plan.hyperparameters)), "Resolved hyperparameters"),
            "CostEstimate": (plan.cost_summary, "Estimated cost (see Metadata.FineTuning.cost)"),
            "JobName": (self.job_trigger.job_name, "Customization job of the deployed configuration"),
            "JobArn": (self.job_trigger.job_arn, "Its ARN"),
            "CustomModelName": (plan.job_spec.custom_model_name, "The custom model the job creates"),
            "EndpointArn": (self.serving.endpoint_arn, "PT or deployment serving the model at deploy time"),
            "EndpointParameter": (
                ssm_parameter_name(plan.config.environment.name, plan.config.name, ENDPOINT_ARN_PARAMETER),
                "SSM parameter that always holds the current endpoint",
            ),
        }
        if self.validation_upload is not None:
            outputs["ValidationDataS3Uri"] = (self.validation_upload.s3_uri, "Staged validation data")
            outputs["ValidationDataSha256"] = (self.validation_upload.sha256, "sha256 of the validation data")
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)


def _description(plan: FineTuningPlan) -> str:
    config = plan.config
    text = (
        f"Bedrock {config.customization_type} of {config.base_model} for {config.name} "
        f"({config.environment.name}); cost: {plan.cost_summary}"
    )
    return text[:1024]  # CloudFormation's limit for a template description
