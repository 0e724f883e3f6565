"""What the steps of a rehearsal share: the plan, the stack's resources as they are made, the
clients, and the requests CloudFormation and EventBridge would send, built from the same contracts
the constructs write (`finetune.core.contracts`)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from finetune.aws.endpoints import Deployment, Throughput, find_deployments, find_throughputs
from finetune.cli.rehearsal.sandbox import LambdaContext
from finetune.core import names
from finetune.core.contracts import (
    EvaluationGate,
    JobResource,
    JobTemplate,
    Mode,
    ServingResource,
    ServingSettings,
)
from finetune.core.plan import FineTuningPlan


@dataclass
class RehearsalState:
    """The rehearsal's stack, filled in by the steps in order."""

    plan: FineTuningPlan
    serving_mode: str
    bad_data: bool
    clients: dict[str, Any] = field(default_factory=dict)
    fake: Any = None  # the serving fake (PTs, deployments)
    evaluation: Any = None  # the evaluation fake in front of it (what the serving function calls)
    gate_fails: bool = False  # the evaluation gate's scores are set to miss it
    evaluation_role_arn: str = ""
    candidate_jobs: dict[str, str] = field(default_factory=dict)  # candidate -> its job (physical id)
    account: str = ""
    key_arn: str = ""
    bucket: str = ""
    assets_bucket: str = ""
    responses_bucket: str = ""
    role_arn: str = ""
    topic_arn: str = ""
    mailbox_url: str = ""
    staged: dict[str, tuple[str, str]] = field(default_factory=dict)  # "training"/... -> (s3 uri, sha256)
    bad_line: int = 0
    job_properties: dict[str, str] = field(default_factory=dict)
    job_physical_id: str = ""
    completion_event: dict[str, Any] = field(default_factory=dict)
    notifications: list[tuple[str, str]] = field(default_factory=list)
    response_keys: dict[str, str] = field(default_factory=dict)  # request id -> key of the response object

    @property
    def config(self) -> Any:
        return self.plan.config

    @property
    def environment(self) -> str:
        return str(self.plan.config.environment.name)

    @property
    def fine_tuning(self) -> str:
        return str(self.plan.config.name)

    @property
    def region(self) -> str:
        return str(self.plan.config.region)

    @property
    def stack_name(self) -> str:
        return names.stack_name(self.environment, self.fine_tuning)

    @property
    def stack_id(self) -> str:
        return (
            f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/"
            f"{uuid.uuid5(uuid.NAMESPACE_URL, self.stack_name)}"
        )

    @property
    def spec(self) -> names.JobSpec:
        """The plan's job, on the training data as staged (its sha256 differs with bad data)."""
        training_sha = (
            self.staged["training"][1] if "training" in self.staged else self.plan.job_spec.training_sha256
        )
        return dataclasses.replace(self.plan.job_spec, training_sha256=training_sha)

    # -- the contracts, as the constructs write them -------------------------------------------------

    @property
    def gated(self) -> bool:
        return self.plan.evaluation is not None

    def settle(self) -> None:
        """Time passes: evaluation jobs end, PTs and deployments finish creating or deleting."""
        self.evaluation.settle()

    def candidate_spec(self, candidate: FineTuningPlan) -> names.JobSpec:
        return dataclasses.replace(candidate.job_spec, training_sha256=self.spec.training_sha256)

    def job_template(self, spec: names.JobSpec | None = None) -> JobTemplate:
        validation_uri = self.staged.get("validation", ("", ""))[0] or None
        return JobTemplate.for_spec(
            spec or self.spec,
            role_arn=self.role_arn,
            output_s3_uri=names.s3_uri(self.bucket, names.output_key_prefix(self.fine_tuning)),
            validation_s3_uri=validation_uri,
            kms_key_arn=self.key_arn,
            stop_superseded=self.config.environment.stop_superseded_jobs,
        )

    def job_resource(self, candidate: FineTuningPlan | None = None) -> JobResource:
        """The main job's resource, or a candidate's (its own model and hyperparameters, same data)."""
        spec = self.candidate_spec(candidate) if candidate is not None else self.spec
        return JobResource(
            self.job_template(spec),
            training_s3_uri=self.staged["training"][0],
            training_sha256=spec.training_sha256,
            stop_on_delete=self.config.environment.stop_jobs_on_destroy,
            trial=candidate.config.trial_name if candidate is not None else names.MAIN_TRIAL,
        )

    def gate(self) -> EvaluationGate | None:
        """The evaluation gate as the stack hands it to serving (None without an evaluation)."""
        if not self.gated:
            return None
        _, dataset_key = names.parse_s3_uri(self.staged["evaluation"][0])
        return self.plan.evaluation_gate(
            role_arn=self.evaluation_role_arn,
            bucket=self.bucket,
            dataset_key=dataset_key,
            kms_key_arn=self.key_arn,
            job_names={
                names.MAIN_TRIAL: self.job_physical_id or self.spec.job_name,
                **{
                    candidate.config.trial_name: self.candidate_jobs.get(
                        candidate.config.trial_name, self.candidate_spec(candidate).job_name
                    )
                    for candidate in self.plan.candidates
                },
            },
        )

    def serving_resource(self, mode: str | None = None) -> ServingResource:
        serving = self.config.serving
        environment = self.config.environment
        return ServingResource(
            environment=self.environment,
            fine_tuning=self.fine_tuning,
            region=self.region,
            settings=ServingSettings(
                cast(Mode, mode or self.serving_mode),
                serving.model_units,
                serving.commitment,
                serving.idle_alarm_hours,
            ),
            topic_arn=self.topic_arn,
            stop_jobs_on_destroy=environment.stop_jobs_on_destroy,
            delete_models_on_destroy=environment.removal_policy == "destroy",
            stack_id=self.stack_id,
            gate=self.gate(),
        )

    # -- CloudFormation and AWS, as seen from the rehearsal ------------------------------------------

    def cfn_event(
        self,
        request_type: str,
        resource_type: str,
        logical_id: str,
        function: str,
        properties: Mapping[str, str],
        physical_id: str | None = None,
    ) -> dict[str, Any]:
        """A CloudFormation custom resource request, with a pre-signed S3 URL for the response."""
        request_id = str(uuid.uuid4())
        response_key = f"{logical_id}/{request_id}"
        self.response_keys[request_id] = response_key
        url = self.clients["s3"].generate_presigned_url(
            "put_object", Params={"Bucket": self.responses_bucket, "Key": response_key}, ExpiresIn=7200
        )
        service_token = f"arn:aws:lambda:{self.region}:{self.account}:function:{self.stack_name}-{function}"
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": service_token,
            "ResponseURL": url,
            "StackId": self.stack_id,
            "RequestId": request_id,
            "LogicalResourceId": logical_id,
            "ResourceType": resource_type,
            "ResourceProperties": {"ServiceToken": service_token, **properties},
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        return event

    def invoke_custom_resource(
        self, handler: Callable[[Mapping[str, Any], Any], Any], event: Mapping[str, Any], function: str
    ) -> dict[str, Any]:
        """Call the handler and read back what CloudFormation would have received."""
        handler(event, LambdaContext(function_name=function))
        key = self.response_keys[str(event["RequestId"])]
        body = self.clients["s3"].get_object(Bucket=self.responses_bucket, Key=key)
        response: dict[str, Any] = json.loads(body["Body"].read())
        return response

    def jobs(self) -> list[Mapping[str, Any]]:
        bedrock = self.clients["bedrock"]
        prefix = names.job_name_prefix(self.environment, self.fine_tuning)
        return [
            summary
            for summary in bedrock.list_model_customization_jobs(nameContains=prefix).get(
                "modelCustomizationJobSummaries", []
            )
            if names.owns_job(self.environment, self.fine_tuning, str(summary["jobName"]))
        ]

    def read_mailbox(self) -> list[tuple[str, str]]:
        sqs = self.clients["sqs"]
        received: list[tuple[str, str]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.mailbox_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                break
            for message in messages:
                envelope = json.loads(message["Body"])
                received.append((str(envelope.get("Subject", "")), str(envelope.get("Message", ""))))
                sqs.delete_message(QueueUrl=self.mailbox_url, ReceiptHandle=message["ReceiptHandle"])
        self.notifications += received
        return received

    def endpoints(self) -> tuple[list[Throughput], list[Deployment]]:
        return (
            find_throughputs(self.fake, self.environment, self.fine_tuning),
            find_deployments(self.fake, self.environment, self.fine_tuning),
        )

    def endpoint_names(self) -> list[str]:
        throughputs, deployments = self.endpoints()
        return [item.name for item in throughputs] + [item.name for item in deployments]

    def parameter(self, name: str) -> str | None:
        path = names.ssm_parameter_name(self.environment, self.fine_tuning, name)
        try:
            return str(self.clients["ssm"].get_parameter(Name=path)["Parameter"]["Value"])
        except self.clients["ssm"].exceptions.ParameterNotFound:
            return None
