"""Test helpers: the serving fake (now `finetune.cli.local_serving`, shared with the rehearsal), moto
jobs, and the evaluation lab (moto's S3 and the evaluation and Converse fakes).

`FakeBedrockServing` lives in product code so `python -m finetune rehearse` can use it; it is
re-exported here for the tests that import it from `tests.fakes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from finetune.cli.local_serving import (
    ACCOUNT,
    COMMITMENT_DAYS,
    NAME_PATTERN,
    REGION,
    STATUS_CODES,
    FakeBedrockServing,
    client_error,
)

__all__ = [
    "ACCOUNT",
    "COMMITMENT_DAYS",
    "CUSTOM_MODEL_ARN",
    "DEPLOYMENT_ARN",
    "EVALUATION_BUCKET",
    "EVALUATION_PROMPTS",
    "EVALUATION_ROLE",
    "JUDGE",
    "NAME_PATTERN",
    "PT_ARN",
    "REGION",
    "STATUS_CODES",
    "EvaluationLab",
    "FakeBedrockServing",
    "World",
    "client_error",
    "create_job",
    "deploy_serving",
    "job_model_arn",
    "make_evaluation_lab",
    "make_world",
    "sent_notifications",
    "set_job_status",
]


# -- customization jobs in moto --------------------------------------------------------------------


def create_job(bedrock: Any, job_name: str) -> str:
    """A customization job in moto (InProgress); returns its ARN."""
    response = bedrock.create_model_customization_job(
        jobName=job_name,
        customModelName=job_name,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/customization",
        baseModelIdentifier="amazon.nova-micro-v1:0:128k",
        trainingDataConfig={"s3Uri": "s3://training-data/train.jsonl"},
        outputDataConfig={"s3Uri": "s3://training-data/output/"},
        hyperParameters={"epochCount": "2"},
    )
    return str(response["jobArn"])


def set_job_status(job_name: str, status: str, *, ended: datetime, region: str = REGION) -> None:
    """moto never finishes a job: set its status (and end time, which orders the models) by hand."""
    from moto.bedrock.models import bedrock_backends

    job = bedrock_backends[ACCOUNT][region].model_customization_jobs[job_name]
    job.status = status
    job.end_time = ended.strftime("%Y-%m-%d %H:%M:%S")


def job_model_arn(job_name: str, region: str = REGION) -> str:
    """The outputModelArn moto reports for a job."""
    from moto.bedrock.models import bedrock_backends

    return str(bedrock_backends[ACCOUNT][region].model_customization_jobs[job_name].output_model_arn)


def sent_notifications(topic_arn: str, region: str = REGION) -> list[tuple[str | None, str]]:
    """(subject, message) of everything published to a moto SNS topic."""
    from moto.sns.models import sns_backends

    return [
        (subject, message)
        for _, message, subject, *_ in sns_backends[ACCOUNT][region].topics[topic_arn].sent_notifications
    ]


# -- a whole world: moto for SSM, SNS, CloudWatch and jobs, the fake for serving ---------------------


@dataclass
class World:
    """The clients `finetune.aws.serving` takes, with the fake and moto's Bedrock client at hand."""

    clients: Any  # finetune.aws.serving.Clients
    fake: FakeBedrockServing
    jobs: Any  # moto's Bedrock client (customization jobs)
    topic_arn: str


def make_world(region: str = REGION) -> World:
    """Call inside `moto.mock_aws()`."""
    import boto3

    from finetune.aws.endpoints import Clients

    jobs = boto3.client("bedrock", region_name=region)
    fake = FakeBedrockServing(jobs, region=region)
    sns = boto3.client("sns", region_name=region)
    topic_arn = str(sns.create_topic(Name="fine-tuning-notifications")["TopicArn"])
    clients = Clients(
        bedrock=fake,
        ssm=boto3.client("ssm", region_name=region),
        cloudwatch=boto3.client("cloudwatch", region_name=region),
        sns=sns,
    )
    return World(clients=clients, fake=fake, jobs=jobs, topic_arn=topic_arn)


def deploy_serving(world: World, environment: str, fine_tuning: str) -> None:
    """What a deploy's `Custom::ServingLifecycle` leaves: the serving settings parameter, without
    which job events and the schedule change nothing (`finetune.aws.serving.serving_deployed`)."""
    from finetune.core import names as identity

    world.clients.ssm.put_parameter(
        Name=identity.ssm_parameter_name(environment, fine_tuning, identity.SETTINGS_PARAMETER),
        Value="{}",
        Type="String",
    )


# -- evaluation: moto's S3, the serving fake, the evaluation and Converse fakes --------------------

EVALUATION_BUCKET = "evaluation-data"
CUSTOM_MODEL_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-micro-v1:0:128k/abcdef123456"
EVALUATION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/evaluation"
JUDGE = "amazon.nova-pro-v1:0"
PT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdef123456"
DEPLOYMENT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/abcdef123456"
# An evaluation dataset: every optional field, and none.
EVALUATION_PROMPTS: list[dict[str, str]] = [
    {
        "prompt": "How do I reset my password?",
        "referenceResponse": "Use the reset link.",
        "category": "account",
    },
    {"prompt": "Where is my order?"},
    {"prompt": "Can I get a refund?", "category": "billing"},
]


@dataclass
class EvaluationLab:
    """S3 (moto) with a bucket, the serving fake, and the evaluation and runtime fakes over it."""

    s3: Any
    serving: FakeBedrockServing
    bedrock: Any  # finetune.cli.local_evaluation.FakeBedrockEvaluation
    runtime: Any  # finetune.cli.local_evaluation.FakeBedrockRuntime

    def put(self, key: str, lines: list[str]) -> str:
        """A JSONL object of these lines; returns its S3 URI."""
        self.s3.put_object(Bucket=EVALUATION_BUCKET, Key=key, Body="".join(f"{line}\n" for line in lines))
        return f"s3://{EVALUATION_BUCKET}/{key}"

    def read(self, key: str) -> str:
        return str(self.s3.get_object(Bucket=EVALUATION_BUCKET, Key=key)["Body"].read().decode("utf-8"))

    def object_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=EVALUATION_BUCKET).get("Contents", [])
        return sorted(str(item["Key"]) for item in listed)

    def deployment(self, name: str = "dev-support-assistant-od", *, active: bool = True) -> str:
        """An on-demand deployment of the custom model in the serving fake; returns its ARN."""
        arn = str(
            self.serving.create_custom_model_deployment(modelDeploymentName=name, modelArn=CUSTOM_MODEL_ARN)[
                "customModelDeploymentArn"
            ]
        )
        if active:
            self.serving.settle()
        return arn


def make_evaluation_lab(region: str = REGION, **evaluation_options: Any) -> EvaluationLab:
    """Call inside `moto.mock_aws()`."""
    import boto3

    from finetune.cli.local_evaluation import FakeBedrockEvaluation, FakeBedrockRuntime

    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=EVALUATION_BUCKET)
    serving = FakeBedrockServing(boto3.client("bedrock", region_name=region), region=region)
    bedrock = FakeBedrockEvaluation(serving, s3=s3, region=region, **evaluation_options)
    return EvaluationLab(s3=s3, serving=serving, bedrock=bedrock, runtime=FakeBedrockRuntime(serving))
