"""Test helpers: the serving fake (now `finetune.cli.local_serving`, shared with the rehearsal) and moto jobs.

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
    "NAME_PATTERN",
    "REGION",
    "STATUS_CODES",
    "FakeBedrockServing",
    "World",
    "client_error",
    "create_job",
    "deploy_serving",
    "job_model_arn",
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
