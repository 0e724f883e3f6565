"""The CustomizationJob trigger: one job per configuration and data, never two, never on bad data."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import botocore.endpoint
import botocore.retries.bucket
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.bedrock.models import bedrock_backends
from moto.server import ThreadedMotoServer
from moto.sns.models import sns_backends

from finetune.aws import staging
from finetune.core import names
from finetune.core.contracts import JobResource, TrainingBudget, TrainingRate
from finetune.core.deadline import Deadline, DeadlineError
from finetune.core.names import JobSpec
from finetune.runtime import clients as runtime_clients
from finetune.runtime import customization_job_trigger as trigger_job
from finetune.runtime import responder as custom_resource

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-west-2"
ACCOUNT = "123456789012"
BUCKET = "training-data"
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/bedrock-customization"
HYPERPARAMETERS = {"epochCount": "2", "batchSize": "1", "learningRate": "0.0001"}


def dataset(records: int = 120, *, tag: str = "") -> bytes:
    """A valid prompt/completion JSONL file for Llama 3.1 (at least 100 distinct records)."""
    return b"".join(
        json.dumps({"prompt": f"question {tag}{i}?", "completion": f"answer {tag}{i}."}).encode() + b"\n"
        for i in range(records)
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


VALIDATION = dataset(20, tag="validation-")
TEMPLATE: dict[str, str] = {
    "Environment": "dev",
    "FineTuning": "sql-generator",
    "BaseModelIdentifier": LLAMA,
    "CustomizationType": "FINE_TUNING",
    "TeacherModel": "",
    "Hyperparameters": json.dumps(HYPERPARAMETERS),
    "ValidationDataS3Uri": f"s3://{BUCKET}/validation/sql-generator/valid.jsonl",
    "ValidationSha256": sha(VALIDATION),
    "RoleArn": ROLE,
    "OutputS3Uri": f"s3://{BUCKET}/output/",
    "KmsKeyArn": "",
}


def spec_for(training: bytes) -> JobSpec:
    return JobSpec(
        environment="dev",
        fine_tuning="sql-generator",
        base_model=LLAMA,
        customization_type="FINE_TUNING",
        hyperparameters=HYPERPARAMETERS,
        training_sha256=sha(training),
        validation_sha256=sha(VALIDATION),
    )


def upload_training(s3: Any, training: bytes) -> str:
    """Stage the data as the TrainingDataUpload resource would; returns its S3 URI."""
    key = names.staged_key("training/", "sql-generator", sha(training), "train.jsonl")
    s3.put_object(Bucket=BUCKET, Key=key, Body=training)
    return f"s3://{BUCKET}/{key}"


def properties(training: bytes, *, stop_on_delete: bool = False, **overrides: str) -> dict[str, str]:
    """The resource properties synth writes for a job on `training` (strings, as CloudFormation sends)."""
    spec = spec_for(training)
    return {
        **TEMPLATE,
        "TrainingDataS3Uri": f"s3://{BUCKET}/training/sql-generator/{sha(training)}/train.jsonl",
        "TrainingSha256": sha(training),
        "JobName": spec.job_name,
        "CustomModelName": spec.custom_model_name,
        "JobDigest": spec.digest,
        "StopOnDelete": "true" if stop_on_delete else "false",
        **overrides,
    }


@dataclass
class CloudFormation:
    """Stands in for CloudFormation: sends requests to the handler and keeps the responses."""

    responses: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0

    def put(self, url: str, body: bytes) -> None:
        self.responses.append(json.loads(body))

    def send(
        self,
        request_type: str,
        props: dict[str, str],
        *,
        physical_id: str | None = None,
        old: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self.requests += 1
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
            "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/dev-sql-generator/1",
            "RequestId": f"request-{self.requests}",
            "LogicalResourceId": "CustomizationJob",
            "ResourceType": JobResource.RESOURCE_TYPE,
            "ResourceProperties": {
                "ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:t",
                **props,
            },
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        if old is not None:
            event["OldResourceProperties"] = old
        trigger_job.handler(event, None)
        return self.responses[-1]


def clear_clients() -> None:
    runtime_clients.forget()


@dataclass
class Aws:
    s3: Any
    bedrock: Any
    topic_arn: str
    cloudformation: CloudFormation

    def job_names(self) -> list[str]:
        summaries = self.bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]
        return sorted(job["jobName"] for job in summaries)

    def notifications(self) -> list[tuple[str | None, str]]:
        """(subject, message) of everything published to the topic."""
        sent = sns_backends[ACCOUNT][REGION].topics[self.topic_arn].sent_notifications
        return [(subject, message) for _id, message, subject, _attributes, _group in sent]

    def tags(self, key: str) -> dict[str, str]:
        tag_set = self.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
        return {tag["Key"]: tag["Value"] for tag in tag_set}

    def object_keys(self, prefix: str = "") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))


def setup_aws(monkeypatch: pytest.MonkeyPatch) -> Aws:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="validation/sql-generator/valid.jsonl", Body=VALIDATION)
    topic_arn = boto3.client("sns", region_name=REGION).create_topic(Name="finetune-notifications")[
        "TopicArn"
    ]
    monkeypatch.setenv("FINETUNE_JOB_TEMPLATE", json.dumps(TEMPLATE))
    monkeypatch.setenv("FINETUNE_TOPIC_ARN", topic_arn)
    monkeypatch.delenv("FINETUNE_INCOMING_PREFIX", raising=False)
    monkeypatch.delenv("FINETUNE_TRAINING_PREFIX", raising=False)
    cloudformation = CloudFormation()
    monkeypatch.setattr(custom_resource, "put_response", cloudformation.put)
    clear_clients()
    return Aws(
        s3=s3,
        bedrock=boto3.client("bedrock", region_name=REGION),
        topic_arn=topic_arn,
        cloudformation=cloudformation,
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, fake_aws_credentials: None) -> Iterator[Aws]:
    with mock_aws():
        yield setup_aws(monkeypatch)
    clear_clients()


# --------------------------------------------------------------------------------------------------
# Custom resource
# --------------------------------------------------------------------------------------------------


def test_create_starts_the_job_and_returns_its_attributes(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    spec = spec_for(training)

    response = aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == spec.job_name
    assert aws.job_names() == [spec.job_name]
    job = aws.bedrock.get_model_customization_job(jobIdentifier=spec.job_name)
    assert response["Data"] == {
        "JobArn": job["jobArn"],
        "JobName": spec.job_name,
        "CustomModelName": spec.custom_model_name,
        "Status": "InProgress",
    }
    assert job["trainingDataConfig"]["s3Uri"] == properties(training)["TrainingDataS3Uri"]
    assert job["validationDataConfig"] == {"validators": [{"s3Uri": TEMPLATE["ValidationDataS3Uri"]}]}
    assert job["hyperParameters"] == HYPERPARAMETERS
    assert job["clientRequestToken"] == spec.client_request_token()


def test_deploying_the_same_thing_twice_starts_one_job(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)

    first = aws.cloudformation.send("Create", properties(training))
    again = aws.cloudformation.send(
        "Create", properties(training)
    )  # e.g. the stack deleted and deployed again
    update = aws.cloudformation.send(
        "Update", properties(training), physical_id=first["PhysicalResourceId"], old=properties(training)
    )

    assert [r["Status"] for r in (first, again, update)] == ["SUCCESS"] * 3
    assert first["PhysicalResourceId"] == again["PhysicalResourceId"] == update["PhysicalResourceId"]
    assert first["Data"] == again["Data"] == update["Data"]
    assert aws.job_names() == [spec_for(training).job_name]


def test_update_with_the_same_digest_reports_the_job_current_status(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    created = aws.cloudformation.send("Create", properties(training))
    name = created["PhysicalResourceId"]
    bedrock_backends[ACCOUNT][REGION].model_customization_jobs[name].status = "Completed"
    # A property that does not define the job (StopOnDelete) changes: no new job.
    changed = properties(training, StopOnDelete="true")

    update = aws.cloudformation.send("Update", changed, physical_id=name, old=properties(training))

    assert update["Status"] == "SUCCESS"
    assert update["PhysicalResourceId"] == name
    assert update["Data"]["Status"] == "Completed"
    assert aws.job_names() == [name]


def test_update_with_the_same_digest_starts_the_job_again_if_it_no_longer_exists(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    name = spec_for(training).job_name

    update = aws.cloudformation.send(
        "Update", properties(training), physical_id=name, old=properties(training)
    )

    assert update["Status"] == "SUCCESS", update["Reason"]
    assert update["PhysicalResourceId"] == name
    assert aws.job_names() == [name]


def test_update_with_changed_data_starts_a_second_job_under_a_new_physical_id(aws: Aws) -> None:
    old_data, new_data = dataset(), dataset(150, tag="v2-")
    upload_training(aws.s3, old_data)
    upload_training(aws.s3, new_data)
    created = aws.cloudformation.send("Create", properties(old_data))

    update = aws.cloudformation.send(
        "Update", properties(new_data), physical_id=created["PhysicalResourceId"], old=properties(old_data)
    )

    assert update["Status"] == "SUCCESS", update["Reason"]
    assert update["PhysicalResourceId"] == spec_for(new_data).job_name != created["PhysicalResourceId"]
    assert aws.job_names() == sorted([spec_for(old_data).job_name, spec_for(new_data).job_name])


def test_update_with_changed_hyperparameters_starts_a_second_job(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    created = aws.cloudformation.send("Create", properties(training))
    tuned = {**HYPERPARAMETERS, "epochCount": "3"}
    spec = replace(spec_for(training), hyperparameters=tuned)
    new = properties(
        training,
        Hyperparameters=json.dumps(tuned),
        JobName=spec.job_name,
        CustomModelName=spec.custom_model_name,
        JobDigest=spec.digest,
    )

    update = aws.cloudformation.send(
        "Update", new, physical_id=created["PhysicalResourceId"], old=properties(training)
    )

    assert update["Status"] == "SUCCESS", update["Reason"]
    assert update["PhysicalResourceId"] == spec.job_name
    assert len(aws.job_names()) == 2
    assert (
        aws.bedrock.get_model_customization_job(jobIdentifier=spec.job_name)["hyperParameters"]["epochCount"]
        == "3"
    )


@pytest.mark.parametrize(("stop_on_delete", "expected_status"), [(True, "Stopped"), (False, "InProgress")])
def test_delete_stops_a_running_job_only_when_asked(
    aws: Aws, stop_on_delete: bool, expected_status: str
) -> None:
    training = dataset()
    staged_uri = upload_training(aws.s3, training)
    props = properties(training, stop_on_delete=stop_on_delete)
    name = aws.cloudformation.send("Create", props)["PhysicalResourceId"]

    deleted = aws.cloudformation.send("Delete", props, physical_id=name)

    assert deleted["Status"] == "SUCCESS"
    assert deleted["PhysicalResourceId"] == name
    assert aws.bedrock.get_model_customization_job(jobIdentifier=name)["status"] == expected_status
    assert aws.bedrock.get_custom_model(modelIdentifier=spec_for(training).custom_model_name)["modelName"]
    assert staged_uri.removeprefix(f"s3://{BUCKET}/") in aws.object_keys()


def test_delete_leaves_a_finished_job_alone(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    props = properties(training, stop_on_delete=True)
    name = aws.cloudformation.send("Create", props)["PhysicalResourceId"]
    bedrock_backends[ACCOUNT][REGION].model_customization_jobs[name].status = "Completed"

    deleted = aws.cloudformation.send("Delete", props, physical_id=name)

    assert deleted["Status"] == "SUCCESS"
    assert aws.bedrock.get_model_customization_job(jobIdentifier=name)["status"] == "Completed"


def test_delete_after_a_failed_create_does_nothing(aws: Aws) -> None:
    training = dataset()
    failed = aws.cloudformation.send("Create", properties(training, stop_on_delete=True))  # no data in S3
    assert failed["Status"] == "FAILED"
    assert custom_resource.is_failed_create(failed["PhysicalResourceId"])

    deleted = aws.cloudformation.send(
        "Delete", properties(training, stop_on_delete=True), physical_id=failed["PhysicalResourceId"]
    )

    assert deleted["Status"] == "SUCCESS"
    assert deleted["PhysicalResourceId"] == failed["PhysicalResourceId"]
    assert aws.job_names() == []


def set_status(name: str, status: str) -> None:
    bedrock_backends[ACCOUNT][REGION].model_customization_jobs[name].status = status


def deployed_job(aws: Aws) -> dict[str, str] | None:
    """The record serving reads: which job's model to serve."""
    ssm = boto3.client("ssm", region_name=REGION)
    try:
        value = ssm.get_parameter(Name="/finetune/dev/sql-generator/deployed-job")["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return dict(json.loads(value))


@pytest.mark.parametrize("ended", ["Failed", "Stopped"])
def test_a_job_that_trained_nothing_is_retried_as_its_next_generation(aws: Aws, ended: str) -> None:
    """Redeploy after a failure, a rollback to a stopped job, destroy and redeploy: each trains."""
    training = dataset()
    upload_training(aws.s3, training)
    spec = spec_for(training)
    first = aws.cloudformation.send("Create", properties(training))
    set_status(first["PhysicalResourceId"], ended)

    again = aws.cloudformation.send("Create", properties(training))

    assert again["Status"] == "SUCCESS", again["Reason"]
    retry = spec.generation_name(2)
    assert retry == f"dev-sql-generator-{spec.digest[:9]}r2" and len(retry) <= len(spec.job_name)
    assert again["PhysicalResourceId"] == retry and again["Data"]["Status"] == "InProgress"
    assert aws.job_names() == sorted([spec.job_name, retry])
    job = aws.bedrock.get_model_customization_job(jobIdentifier=retry)
    assert job["clientRequestToken"] == spec.client_request_token(2) != spec.client_request_token()
    assert job["outputModelName"].startswith(retry)  # its own custom model name
    assert deployed_job(aws) == {"jobName": retry, "digest": spec.digest, "source": "deploy"}
    # The live generation is found again: no third job.
    assert aws.cloudformation.send("Create", properties(training))["PhysicalResourceId"] == retry
    assert len(aws.job_names()) == 2


def test_a_completed_job_is_never_retrained(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    first = aws.cloudformation.send("Create", properties(training))
    set_status(first["PhysicalResourceId"], "Completed")

    again = aws.cloudformation.send("Create", properties(training))

    assert again["PhysicalResourceId"] == first["PhysicalResourceId"]
    assert again["Data"]["Status"] == "Completed" and len(aws.job_names()) == 1


def test_an_unchanged_update_keeps_a_newer_upload_as_the_deployed_job(aws: Aws) -> None:
    deployed = dataset()
    upload_training(aws.s3, deployed)
    name = aws.cloudformation.send("Create", properties(deployed))["PhysicalResourceId"]
    uploaded = dataset(tag="new-")
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=uploaded)
    trigger_job.handler(s3_event("incoming/train.jsonl"), None)
    assert deployed_job(aws) == {
        "jobName": spec_for(uploaded).job_name,
        "digest": spec_for(uploaded).digest,
        "source": "upload",
    }

    # A deploy that changes a property but not the job (StopOnDelete) keeps serving the upload's.
    aws.cloudformation.send(
        "Update", properties(deployed, StopOnDelete="true"), physical_id=name, old=properties(deployed)
    )
    assert deployed_job(aws) is not None and deployed_job(aws)["source"] == "upload"  # type: ignore[index]

    # A deploy that changes the job records its own, and stops the upload's when superseded jobs stop.
    changed = dataset(tag="changed-")
    upload_training(aws.s3, changed)
    spec = spec_for(changed)
    props = properties(changed, StopSuperseded="true")
    aws.cloudformation.send("Update", props, physical_id=name, old=properties(deployed))
    assert deployed_job(aws) == {"jobName": spec.job_name, "digest": spec.digest, "source": "deploy"}
    assert (
        aws.bedrock.get_model_customization_job(jobIdentifier=spec_for(uploaded).job_name)["status"]
        == "Stopped"
    )


@pytest.mark.parametrize(("stop_superseded", "expected"), [("true", "Stopped"), ("false", "InProgress")])
def test_an_upload_supersedes_the_deployed_job_and_stops_it_when_asked(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, stop_superseded: str, expected: str
) -> None:
    monkeypatch.setenv("FINETUNE_JOB_TEMPLATE", json.dumps({**TEMPLATE, "StopSuperseded": stop_superseded}))
    deployed = dataset()
    upload_training(aws.s3, deployed)
    name = aws.cloudformation.send("Create", properties(deployed))["PhysicalResourceId"]
    uploaded = dataset(tag="new-")
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=uploaded)

    trigger_job.handler(s3_event("incoming/train.jsonl"), None)

    assert deployed_job(aws) == {
        "jobName": spec_for(uploaded).job_name,
        "digest": spec_for(uploaded).digest,
        "source": "upload",
    }
    assert aws.bedrock.get_model_customization_job(jobIdentifier=name)["status"] == expected


@pytest.mark.parametrize(("stop_superseded", "expected"), [("true", "Stopped"), ("false", "InProgress")])
def test_the_cleanup_delete_of_a_replaced_job_follows_stop_superseded(
    aws: Aws, stop_superseded: str, expected: str
) -> None:
    old_data, new_data = dataset(), dataset(tag="new-")
    upload_training(aws.s3, old_data)
    upload_training(aws.s3, new_data)
    old_props = properties(old_data, StopSuperseded=stop_superseded)  # StopOnDelete false
    old_name = aws.cloudformation.send("Create", old_props)["PhysicalResourceId"]
    new_props = properties(new_data, StopSuperseded=stop_superseded)
    aws.cloudformation.send("Update", new_props, physical_id=old_name, old=old_props)

    # CloudFormation's cleanup, once the update can no longer roll back: the old resource goes.
    deleted = aws.cloudformation.send("Delete", old_props, physical_id=old_name)

    assert deleted["Status"] == "SUCCESS"
    assert aws.bedrock.get_model_customization_job(jobIdentifier=old_name)["status"] == expected
    assert (
        aws.bedrock.get_model_customization_job(jobIdentifier=spec_for(new_data).job_name)["status"]
        == "InProgress"
    )


def test_the_delete_of_a_create_that_never_answered_stops_what_it_started(aws: Aws) -> None:
    """CloudFormation gave up on the Create (its own physical id) after the job had started."""
    training = dataset()
    upload_training(aws.s3, training)
    props = properties(training)  # StopOnDelete false: an orphan of an undone deploy is stopped anyway
    name = aws.cloudformation.send("Create", props)["PhysicalResourceId"]

    deleted = aws.cloudformation.send("Delete", props, physical_id="CustomizationJob-1A2B3C4D5E6F")

    assert deleted["Status"] == "SUCCESS"
    assert aws.bedrock.get_model_customization_job(jobIdentifier=name)["status"] == "Stopped"


def test_a_create_whose_answer_is_overdue_starts_nothing(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    event = {
        "RequestType": "Create",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
        "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/dev-sql-generator/1",
        "RequestId": "late",
        "LogicalResourceId": "CustomizationJob",
        "ResourceProperties": properties(training),
    }
    expired = Deadline(time.time() - 1)

    with pytest.raises(DeadlineError, match="before starting customization job"):
        trigger_job.customization_job(event, expired)

    assert aws.job_names() == []


def test_a_job_started_after_the_deadline_answered_is_stopped_again(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard answered FAILED while Bedrock was creating the job: it must not train for nobody."""
    training = dataset()
    upload_training(aws.s3, training)
    clock = iter([0.0, 100.0])  # checked before the start (in time), then after it (overdue)
    deadline = Deadline(50.0, clock=lambda: next(clock))
    event = {"RequestType": "Create", "ResourceProperties": properties(training)}

    with pytest.raises(DeadlineError, match="was stopped again"):
        trigger_job.customization_job(event, deadline)

    (name,) = aws.job_names()
    assert aws.bedrock.get_model_customization_job(jobIdentifier=name)["status"] == "Stopped"


def test_invalid_data_fails_the_deployment_naming_each_line_and_starts_nothing(aws: Aws) -> None:
    lines = dataset().splitlines(keepends=True)
    lines[41] = b'{"prompt": "q"}\n'
    training = b"".join(lines)
    uri = upload_training(aws.s3, training)

    response = aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "FAILED"
    assert response["Reason"].startswith(
        "DataRejected: the data was rejected (1 problem); no job was started:"
    )
    assert f"{uri}:42: " in response["Reason"]
    assert aws.job_names() == []


def test_data_that_changed_after_staging_fails_the_deployment(aws: Aws) -> None:
    training = dataset()
    key = properties(training)["TrainingDataS3Uri"].removeprefix(f"s3://{BUCKET}/")
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=dataset(tag="tampered-"))

    response = aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "FAILED"
    assert "the object's sha256 is" in response["Reason"] and sha(training) in response["Reason"]
    assert aws.job_names() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"JobName": "dev-sql-generator-000000000000"}, "JobName is 'dev-sql-generator-000000000000'"),
        ({"JobDigest": "0" * 64}, "JobDigest is '" + "0" * 64),
        ({"CustomModelName": "another-model"}, "CustomModelName is 'another-model'"),
        (
            {"Hyperparameters": json.dumps({**HYPERPARAMETERS, "epochCount": "9"})},
            "do not describe the job synth named",
        ),
        ({"TrainingSha256": "ab" * 32}, "JobDigest is"),
    ],
)
def test_properties_that_disagree_with_the_job_name_fail_and_start_nothing(
    aws: Aws, overrides: dict[str, str], message: str
) -> None:
    training = dataset()
    upload_training(aws.s3, training)

    response = aws.cloudformation.send("Create", {**properties(training), **overrides})

    assert response["Status"] == "FAILED"
    assert message in response["Reason"]
    assert aws.job_names() == []


def test_missing_and_malformed_properties_are_all_named_at_once(aws: Aws) -> None:
    props = properties(dataset(), Hyperparameters='{"epochCount": 2}')
    del props["RoleArn"], props["OutputS3Uri"]

    response = aws.cloudformation.send("Create", props)

    assert response["Status"] == "FAILED"
    for expected in ("RoleArn is required", "OutputS3Uri is required", "not a string: epochCount"):
        assert expected in response["Reason"]
    assert aws.job_names() == []


def test_unrecognised_events_are_refused() -> None:
    with pytest.raises(ValueError, match="unrecognised event"):
        trigger_job.handler({"detail-type": "Scheduled Event"}, None)


# --------------------------------------------------------------------------------------------------
# S3 uploads
# --------------------------------------------------------------------------------------------------


def s3_event(key: str, *, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": event_name,
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key), "size": 1}},
            }
        ]
    }


def eventbridge_event(key: str, *, detail_type: str = "Object Created") -> dict[str, Any]:
    """An S3 event as EventBridge delivers it (the key as stored, not URL-encoded)."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2026-08-01T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key, "size": 1, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "1"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "reason": "PutObject",
        },
    }


EVENT_SHAPES: dict[str, Callable[[str], dict[str, Any]]] = {
    "s3-notification": s3_event,
    "eventbridge": eventbridge_event,
}


@pytest.mark.parametrize("shape", sorted(EVENT_SHAPES))
def test_the_same_upload_event_delivered_five_times_and_retried_starts_one_job(aws: Aws, shape: str) -> None:
    training = dataset()
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=training)
    spec = spec_for(training)
    event = EVENT_SHAPES[shape]("incoming/train.jsonl")

    results = [trigger_job.handler(event, None) for _ in range(6)]

    assert [r["results"][0]["outcome"] for r in results] == ["started"] + ["exists"] * 5
    assert aws.job_names() == [spec.job_name]
    staged_key = f"training/sql-generator/{sha(training)}/train.jsonl"
    assert staged_key in aws.object_keys("training/")
    job = aws.bedrock.get_model_customization_job(jobIdentifier=spec.job_name)
    assert job["trainingDataConfig"]["s3Uri"] == f"s3://{BUCKET}/{staged_key}"
    assert job["validationDataConfig"] == {"validators": [{"s3Uri": TEMPLATE["ValidationDataS3Uri"]}]}
    notifications = aws.notifications()
    assert len(notifications) == 1
    subject, message = notifications[0]
    assert subject == "Customization job started: dev/sql-generator"
    assert spec.job_name in message and f"s3://{BUCKET}/incoming/train.jsonl" in message
    assert aws.tags("incoming/train.jsonl") == {"finetune:status": "started", "finetune:job": spec.job_name}


def test_an_upload_and_a_deploy_of_the_same_data_share_one_job(aws: Aws) -> None:
    training = dataset()
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=training)
    trigger_job.handler(s3_event("incoming/train.jsonl"), None)

    response = aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "SUCCESS"
    assert aws.job_names() == [spec_for(training).job_name]


def test_an_invalid_upload_is_reported_tagged_kept_and_starts_nothing(aws: Aws) -> None:
    lines = dataset().splitlines(keepends=True)
    lines[4] = b'{"prompt": "q", "completion": ""\n'
    key = "incoming/bad data.jsonl"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"".join(lines), Tagging="owner=data-team")

    result = trigger_job.handler(s3_event(key), None)

    assert result["results"][0]["outcome"] == "rejected"
    assert aws.job_names() == []
    assert aws.object_keys() == sorted([key, "validation/sql-generator/valid.jsonl"])  # kept, nothing staged
    assert aws.tags(key) == {"owner": "data-team", "finetune:status": "rejected"}
    [(subject, message)] = aws.notifications()
    assert subject is not None and len(subject) <= 100
    assert subject == "Training data rejected: dev/sql-generator"
    assert f"s3://{BUCKET}/{key}:5: invalid JSON" in message
    assert "no customization job was started" in message
    assert f"upload the corrected file under s3://{BUCKET}/incoming/" in message


def budget_json(limit_usd: float) -> str:
    """A training budget of `limit_usd` at Llama 3.1 8B's list price, 2 epochs ($0.00149 per 1k tokens)."""
    rate = TrainingRate(per_token=0.00149 * 2 / 1000, basis="tokens x 2 epochs x $0.00149 per 1k tokens")
    return TrainingBudget(limit_usd, rate, "environments.dev.budget.training_usd").to_json()


def test_an_upload_over_the_training_budget_is_reported_tagged_kept_and_starts_nothing(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINETUNE_JOB_TEMPLATE", json.dumps({**TEMPLATE, "TrainingBudget": budget_json(0.01)}))
    training = dataset(3000)  # about 18,000 estimated tokens x 2 epochs: ~$0.05, over $0.01
    key = "incoming/big.jsonl"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=training)

    result = trigger_job.handler(s3_event(key), None)

    assert result["results"][0]["outcome"] == "over-budget"
    assert aws.job_names() == []
    assert aws.object_keys() == sorted([key, "validation/sql-generator/valid.jsonl"])  # kept, nothing staged
    assert aws.tags(key) == {"finetune:status": "rejected"}
    [(subject, message)] = aws.notifications()
    assert subject == "Training data over budget: dev/sql-generator"
    assert f"s3://{BUCKET}/{key}: the estimated training cost $0.0" in message
    assert "exceeds environments.dev.budget.training_usd = $0.01 by $0.0" in message
    assert "no customization job was started" in message
    assert "raise environments.dev.budget.training_usd in cdk.json" in message


def test_an_upload_within_the_training_budget_starts_its_job(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINETUNE_JOB_TEMPLATE", json.dumps({**TEMPLATE, "TrainingBudget": budget_json(5.0)}))
    training = dataset(3000)
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/big.jsonl", Body=training)

    result = trigger_job.handler(s3_event("incoming/big.jsonl"), None)

    assert result["results"][0]["outcome"] == "started"
    assert aws.job_names() == [spec_for(training).job_name]


def test_a_deploy_over_the_training_budget_fails_and_starts_nothing(aws: Aws) -> None:
    training = dataset(3000)
    upload_training(aws.s3, training)

    response = aws.cloudformation.send(
        "Create", {**properties(training), "TrainingBudget": budget_json(0.01)}
    )

    assert response["Status"] == "FAILED"
    assert "exceeds environments.dev.budget.training_usd = $0.01" in response["Reason"]
    assert aws.job_names() == []


def test_a_malformed_budget_property_is_named(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)

    response = aws.cloudformation.send(
        "Create", {**properties(training), "TrainingBudget": '{"limitUsd": -1}'}
    )

    assert response["Status"] == "FAILED"
    assert (
        "TrainingBudget: limitUsd, perToken, perRecord, fixed, basis, field missing or invalid"
        in response["Reason"]
    )
    assert aws.job_names() == []


def test_rejection_notices_are_capped(aws: Aws) -> None:
    key = "incoming/train.jsonl"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"not json\n" * 400)

    trigger_job.handler(s3_event(key), None)

    [(_subject, message)] = aws.notifications()
    assert len(message) < 4000
    assert "... and " in message and " more" in message
    assert aws.job_names() == []


@pytest.mark.parametrize(
    ("key", "event_name"),
    [
        (
            "output/model-customization-job-abc/training_artifacts/step_wise_training_metrics.csv",
            "ObjectCreated:Put",
        ),
        ("training/sql-generator/abc/train.jsonl", "ObjectCreated:Copy"),
        ("incoming/", "ObjectCreated:Put"),
        ("incoming/train.jsonl", "ObjectRemoved:Delete"),
    ],
)
def test_objects_outside_the_incoming_prefix_trigger_nothing_at_all(
    aws: Aws, key: str, event_name: str
) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"not json at all\n")
    before = aws.object_keys()

    result = trigger_job.handler(s3_event(key, event_name=event_name), None)

    assert result["results"][0]["outcome"] == "ignored"
    assert aws.job_names() == []
    assert aws.notifications() == []
    assert aws.object_keys() == before
    assert aws.tags(key) == {}


@pytest.mark.parametrize(
    ("key", "detail_type"),
    [
        (
            "output/dev/model-customization-job-abc/training_artifacts/step_wise_training_metrics.csv",
            "Object Created",
        ),
        ("training/sql-generator/abc/train.jsonl", "Object Created"),
        ("incoming/train.jsonl", "Object Deleted"),
        ("incoming/train.jsonl", "Object Tags Added"),
    ],
)
def test_eventbridge_events_outside_incoming_or_not_uploads_trigger_nothing(
    aws: Aws, key: str, detail_type: str
) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"not json at all\n")

    result = trigger_job.handler(eventbridge_event(key, detail_type=detail_type), None)

    assert result["results"][0]["outcome"] == "ignored"
    assert aws.job_names() == [] and aws.notifications() == [] and aws.tags(key) == {}


def test_eventbridge_keys_are_taken_as_stored_and_decoded_only_if_that_finds_nothing(aws: Aws) -> None:
    training = dataset()
    plus_key = "incoming/c++ notes.jsonl"  # "+" is part of the name: decoding would break it
    spaced_key = "incoming/sql data.jsonl"
    aws.s3.put_object(Bucket=BUCKET, Key=plus_key, Body=training)
    aws.s3.put_object(Bucket=BUCKET, Key=spaced_key, Body=training)

    as_stored = trigger_job.handler(eventbridge_event(plus_key), None)
    encoded = trigger_job.handler(eventbridge_event(quote_plus(spaced_key, safe="/")), None)
    missing = trigger_job.handler(eventbridge_event("incoming/nothing+here.jsonl"), None)

    assert as_stored["results"][0] == {
        "uri": f"s3://{BUCKET}/{plus_key}",
        "outcome": "started",
        "job": spec_for(training).job_name,
    }
    assert encoded["results"][0]["uri"] == f"s3://{BUCKET}/{spaced_key}"
    assert encoded["results"][0]["outcome"] == "exists"  # the same bytes: the same job
    assert missing["results"][0]["outcome"] == "gone"
    assert aws.tags(plus_key)["finetune:status"] == aws.tags(spaced_key)["finetune:status"] == "started"
    assert aws.job_names() == [spec_for(training).job_name]


def test_url_encoded_keys_are_decoded_and_staged_under_a_safe_name(aws: Aws) -> None:
    training = dataset()
    key = "incoming/sql data (v2)+ü.jsonl"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=training)

    result = trigger_job.handler(s3_event(key), None)

    assert result["results"][0]["outcome"] == "started"
    assert f"training/sql-generator/{sha(training)}/sql-data-(v2)--.jsonl" in aws.object_keys("training/")
    assert aws.tags(key)["finetune:status"] == "started"


def test_an_upload_that_vanished_before_handling_is_skipped(aws: Aws) -> None:
    result = trigger_job.handler(s3_event("incoming/gone.jsonl"), None)
    assert result["results"][0]["outcome"] == "gone"
    assert aws.job_names() == [] and aws.notifications() == []


def test_a_misconfigured_function_raises_naming_every_missing_setting(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINETUNE_JOB_TEMPLATE", json.dumps({"Environment": "dev"}))
    monkeypatch.delenv("FINETUNE_TOPIC_ARN")
    with pytest.raises(
        ValueError,
        match=r"FineTuning is required.*BaseModelIdentifier is required.*FINETUNE_TOPIC_ARN is not set",
    ):
        trigger_job.handler(s3_event("incoming/train.jsonl"), None)


def test_custom_prefixes_from_the_environment_are_honoured(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_INCOMING_PREFIX", "uploads/")
    monkeypatch.setenv("FINETUNE_TRAINING_PREFIX", "staged/")
    training = dataset()
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=training)
    aws.s3.put_object(Bucket=BUCKET, Key="uploads/train.jsonl", Body=training)

    ignored = trigger_job.handler(s3_event("incoming/train.jsonl"), None)
    started = trigger_job.handler(s3_event("uploads/train.jsonl"), None)

    assert ignored["results"][0]["outcome"] == "ignored"
    assert started["results"][0]["outcome"] == "started"
    assert f"staged/sql-generator/{sha(training)}/train.jsonl" in aws.object_keys("staged/")


# --------------------------------------------------------------------------------------------------
# Fault injection: Bedrock errors through the real HTTP layer (botocore retries included)
# --------------------------------------------------------------------------------------------------


class _Raw:
    """The raw body of an injected HTTP response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.body


@dataclass
class Faults:
    """Injects Bedrock error responses at the HTTP layer (botocore's before-send event).

    Under `mock_aws` moto answers from a before-send handler that runs whatever another handler
    returns, so an injected error would not stop the call from reaching moto. Against the threaded
    moto server the injected response replaces the HTTP request itself, as a real error would.
    """

    errors: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    injected: list[str] = field(default_factory=list)

    def fail(self, operation: str, *errors: tuple[int, str, str]) -> None:
        self.errors.setdefault(operation, []).extend(errors)

    def __call__(self, request: Any, event_name: str, **_kwargs: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        pending = self.errors.get(operation)
        if not pending:
            return None
        status, code, message = pending.pop(0)
        self.injected.append(code)
        body = json.dumps({"message": message}).encode()
        headers = {
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/",
            "Content-Type": "application/json",
        }
        return AWSResponse(request.url, status, headers, _Raw(body))


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class FaultyAws:
    aws: Aws
    faults: Faults
    sleeps: list[float]


@pytest.fixture
def faulty(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, fake_aws_credentials: None
) -> Iterator[FaultyAws]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    reset = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).read()
    # Keep retries instant: record botocore's backoff instead of sleeping, skip the adaptive limiter.
    sleeps: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=sleeps.append, time=time.time))
    monkeypatch.setattr(
        botocore.retries.bucket.TokenBucket, "acquire", lambda self, amount=1, block=True: True
    )
    aws = setup_aws(monkeypatch)
    faults = Faults()
    runtime_clients.client("bedrock").meta.events.register("before-send.bedrock", faults)
    yield FaultyAws(aws=aws, faults=faults, sleeps=sleeps)
    clear_clients()
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10
    ).read()


def test_throttling_twice_then_success_starts_one_job(faulty: FaultyAws) -> None:
    training = dataset()
    upload_training(faulty.aws.s3, training)
    throttled = (429, "ThrottlingException", "Rate exceeded")
    faulty.faults.fail("CreateModelCustomizationJob", throttled, throttled)

    response = faulty.aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert faulty.faults.injected == ["ThrottlingException", "ThrottlingException"]
    assert len(faulty.sleeps) == 2  # botocore backed off and retried twice
    assert faulty.aws.job_names() == [spec_for(training).job_name]


def test_throttling_that_outlasts_the_retries_fails_with_bedrock_message(faulty: FaultyAws) -> None:
    training = dataset()
    upload_training(faulty.aws.s3, training)
    # botocore's max_attempts counts retries: 8 retries, 9 attempts in all.
    faulty.faults.fail("CreateModelCustomizationJob", *[(429, "ThrottlingException", "Rate exceeded")] * 9)

    response = faulty.aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "FAILED"
    assert "ThrottlingException: Rate exceeded" in response["Reason"]
    assert len(faulty.faults.injected) == 9 and len(faulty.sleeps) == 8
    assert faulty.aws.job_names() == []


def test_quota_exceeded_fails_the_deployment_with_the_hint_and_starts_nothing(faulty: FaultyAws) -> None:
    training = dataset()
    upload_training(faulty.aws.s3, training)
    faulty.faults.fail(
        "CreateModelCustomizationJob",
        (
            400,
            "ServiceQuotaExceededException",
            "Maximum number of concurrent model customization jobs reached",
        ),
    )

    response = faulty.aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "FAILED"
    reason = response["Reason"]
    assert reason.startswith(
        f"JobRejected: Bedrock rejected customization job {spec_for(training).job_name}: "
    )
    assert (
        "ServiceQuotaExceededException: Maximum number of concurrent model customization jobs reached"
        in reason
    )
    assert "at most 2 concurrent customization jobs per account is commonly non-adjustable" in reason
    assert faulty.faults.injected == ["ServiceQuotaExceededException"]  # not retried
    assert faulty.aws.job_names() == []


def test_a_validation_error_surfaces_bedrock_message(faulty: FaultyAws) -> None:
    training = dataset()
    upload_training(faulty.aws.s3, training)
    message = (
        "1 validation error detected: Value at 'hyperParameters.learningRate' failed to satisfy constraint"
    )
    faulty.faults.fail("CreateModelCustomizationJob", (400, "ValidationException", message))

    response = faulty.aws.cloudformation.send("Create", properties(training))

    assert response["Status"] == "FAILED"
    assert f"ValidationException: {message}" in response["Reason"]
    assert "names the field" in response["Reason"]
    assert faulty.aws.job_names() == []


def test_a_rejected_start_on_upload_is_notified_tagged_failed_and_not_raised(faulty: FaultyAws) -> None:
    training = dataset()
    key = "incoming/train.jsonl"
    faulty.aws.s3.put_object(Bucket=BUCKET, Key=key, Body=training)
    faulty.faults.fail(
        "CreateModelCustomizationJob", (400, "ServiceQuotaExceededException", "Too many concurrent jobs")
    )

    result = trigger_job.handler(s3_event(key), None)

    assert result["results"][0]["outcome"] == "failed"
    assert faulty.aws.job_names() == []
    assert faulty.aws.tags(key) == {"finetune:status": "failed", "finetune:job": spec_for(training).job_name}
    [(subject, message)] = faulty.aws.notifications()
    assert subject == "Customization job not started: dev/sql-generator"
    assert "ServiceQuotaExceededException: Too many concurrent jobs" in message
    assert "wait for a running job or stop one" in message

    # Once the cause is gone, the same upload delivered again starts the job.
    retried = trigger_job.handler(s3_event(key), None)
    assert retried["results"][0]["outcome"] == "started"
    assert faulty.aws.job_names() == [spec_for(training).job_name]


def test_a_transient_bedrock_error_on_upload_is_raised_for_lambda_to_retry(faulty: FaultyAws) -> None:
    training = dataset()
    key = "incoming/train.jsonl"
    faulty.aws.s3.put_object(Bucket=BUCKET, Key=key, Body=training)
    internal = (500, "InternalServerException", "Bedrock had a moment")
    faulty.faults.fail("CreateModelCustomizationJob", *([internal] * 9))  # outlasts botocore's 8 retries

    with pytest.raises(RuntimeError, match="InternalServerException"):
        trigger_job.handler(s3_event(key), None)

    assert faulty.aws.job_names() == []
    assert faulty.aws.notifications() == []  # not reported as a refusal: the retry may well start it
    retried = trigger_job.handler(s3_event(key), None)  # Lambda's retry of the same event
    assert retried["results"][0]["outcome"] == "started"


def test_clients_are_created_once_with_adaptive_retries(aws: Aws) -> None:
    for service in ("bedrock", "s3", "sns", "ssm"):
        client = runtime_clients.client(service)
        assert client is runtime_clients.client(service)  # one client per container, created on first use
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 9}  # 8 retries
        assert client.meta.region_name == REGION


def test_importing_the_handler_creates_no_client_and_skips_the_catalog() -> None:
    code = (
        "import sys, boto3\n"
        "created = []\n"
        "boto3.client = lambda *a, **k: created.append(a)\n"
        "import finetune.runtime.customization_job_trigger\n"
        "print(created, 'finetune.core.catalog' in sys.modules, 'finetune.core.dataset' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.split() == ["[]", "False", "False"]


def test_an_upload_overwritten_between_validation_and_copy_stages_the_validated_bytes(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    training = dataset()
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=training)
    real_stage = staging.stage

    def overwrite_then_stage(s3: Any, request: staging.StagingRequest) -> bool:
        # Someone uploads other bytes of the same size under the same key while the job is prepared.
        s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=b"x" * len(training))
        return real_stage(s3, request)

    monkeypatch.setattr(staging, "stage", overwrite_then_stage)
    result = trigger_job.handler(s3_event("incoming/train.jsonl"), None)

    assert result["results"][0]["outcome"] == "started"
    staged = aws.s3.get_object(Bucket=BUCKET, Key=f"training/sql-generator/{sha(training)}/train.jsonl")
    assert staged["Body"].read() == training  # the validated version, not the overwrite


# --------------------------------------------------------------------------------------------------
# Retry ({"finetune": "retry", "job": NAME}, from `python -m finetune retry`)
# --------------------------------------------------------------------------------------------------


def retry(name: Any) -> dict[str, Any]:
    answer: dict[str, Any] = trigger_job.handler({"finetune": "retry", "job": name}, None)
    return answer


def deploy_and_end(aws: Aws, training: bytes, status: str) -> str:
    """Deploy a job on `training`, then let it end with `status`; its name."""
    upload_training(aws.s3, training)
    name = str(aws.cloudformation.send("Create", properties(training))["PhysicalResourceId"])
    set_status(name, status)
    return name


@pytest.mark.parametrize("ended", ["Failed", "Stopped"])
def test_a_retry_trains_a_dead_deployed_job_as_its_next_generation(aws: Aws, ended: str) -> None:
    training = dataset()
    spec = spec_for(training)
    name = deploy_and_end(aws, training, ended)

    answer = retry(name)

    second = spec.generation_name(2)
    assert answer["outcome"] == "started" and answer["newJob"] == second and answer["job"] == name
    assert answer["status"] == "InProgress" and answer["customModelName"] == second
    assert aws.job_names() == sorted([name, second])
    job = aws.bedrock.get_model_customization_job(jobIdentifier=second)
    assert job["clientRequestToken"] == spec.client_request_token(2)
    assert job["trainingDataConfig"]["s3Uri"] == properties(training)["TrainingDataS3Uri"]
    assert job["hyperParameters"] == HYPERPARAMETERS
    assert deployed_job(aws) == {"jobName": second, "digest": spec.digest, "source": "deploy"}
    [(subject, message)] = aws.notifications()
    assert subject == "Customization job retried: dev/sql-generator"
    assert f"Customization job {second} started" in message and f"the next generation of {name}" in message
    assert "python -m finetune status dev sql-generator --watch" in message

    # Asked again (the CLI retried the invocation), the running generation is found: nothing new.
    again = retry(name)
    assert again["outcome"] == "exists" and again["newJob"] == second
    assert len(aws.job_names()) == 2 and len(aws.notifications()) == 1
    # Once that generation fails too, a retry of it starts the third.
    set_status(second, "Failed")
    assert retry(second)["newJob"] == spec.generation_name(3)


def test_a_retry_keeps_the_source_of_an_uploads_job(aws: Aws) -> None:
    training = dataset(tag="upload-")
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=training)
    trigger_job.handler(s3_event("incoming/train.jsonl"), None)
    set_status(spec_for(training).job_name, "Failed")

    answer = retry(spec_for(training).job_name)

    assert answer["outcome"] == "started"
    assert deployed_job(aws) == {
        "jobName": spec_for(training).generation_name(2),
        "digest": spec_for(training).digest,
        "source": "upload",
    }


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Completed", "it Completed: there is nothing to retry (a Completed job is never trained again)"),
        (
            "InProgress",
            "it is still InProgress: there is nothing to retry; wait until it ends "
            "(python -m finetune status dev sql-generator --watch)",
        ),
        ("Stopping", "it is Stopping: wait until it is Stopped, then retry it"),
    ],
)
def test_a_job_that_is_not_dead_is_not_retried(aws: Aws, status: str, reason: str) -> None:
    name = deploy_and_end(aws, dataset(), status)

    answer = retry(name)

    assert answer == {"outcome": "refused", "job": name, "reason": f"{name} is not retried: {reason}"}
    assert aws.job_names() == [name] and aws.notifications() == []


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (
            "dev-support-assistant-0123456789ab",
            "is not a job of dev/sql-generator: its jobs are named dev-sql-generator-<12 hex>",
        ),
        (
            "dev-sql-generator-0123456789ab",
            "Bedrock knows no customization job dev-sql-generator-0123456789ab",
        ),
        ("", "the event names no job"),
        (None, "the event names no job"),
    ],
)
def test_a_job_that_is_not_this_fine_tunings_is_refused(aws: Aws, job: Any, reason: str) -> None:
    answer = retry(job)
    assert answer["outcome"] == "refused" and reason in answer["reason"]
    assert aws.job_names() == []


def test_a_job_of_a_configuration_no_longer_deployed_is_refused(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = deploy_and_end(aws, dataset(), "Failed")
    # A later deploy changed the hyperparameters: the function's template is the new configuration.
    monkeypatch.setenv(
        "FINETUNE_JOB_TEMPLATE",
        json.dumps({**TEMPLATE, "Hyperparameters": json.dumps({**HYPERPARAMETERS, "epochCount": "3"})}),
    )

    answer = retry(name)

    assert answer["outcome"] == "refused"
    assert "was started with another configuration than the deployed one" in answer["reason"]
    assert "To train a configuration, deploy it." in answer["reason"]
    assert aws.job_names() == [name]


def test_a_job_on_other_data_than_the_deployed_job_is_refused(aws: Aws) -> None:
    old = deploy_and_end(aws, dataset(), "Failed")
    newer = dataset(tag="newer-")
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/train.jsonl", Body=newer)
    trigger_job.handler(s3_event("incoming/train.jsonl"), None)  # the upload's job is deployed now

    answer = retry(old)

    assert answer["outcome"] == "refused"
    assert (
        f"trained other data than the deployed job {spec_for(newer).job_name} (recorded by the last upload)"
        in answer["reason"]
    )
    assert len(aws.job_names()) == 2


def test_a_retry_validates_the_data_again_and_starts_nothing_on_bad_data(aws: Aws) -> None:
    training = dataset()
    name = deploy_and_end(aws, training, "Failed")
    key = properties(training)["TrainingDataS3Uri"].removeprefix(f"s3://{BUCKET}/")
    lines = training.splitlines(keepends=True)
    lines[6] = b'{"prompt": "q"}\n'
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"".join(lines))  # the staged copy was overwritten

    answer = retry(name)

    assert answer["outcome"] == "rejected"
    assert f"s3://{BUCKET}/{key}:7: completion: missing" in answer["reason"]
    assert aws.job_names() == [name] and aws.notifications() == []


def test_the_data_digest_comes_from_the_jobs_tag_when_its_data_is_not_staged_by_digest(aws: Aws) -> None:
    training = dataset()
    spec = spec_for(training)
    aws.s3.put_object(Bucket=BUCKET, Key="elsewhere/train.jsonl", Body=training)
    request_kwargs = (
        JobResource.from_properties(
            properties(training, TrainingDataS3Uri=f"s3://{BUCKET}/elsewhere/train.jsonl")
        )
        .request()
        .create_job_kwargs()
    )
    aws.bedrock.create_model_customization_job(**request_kwargs)  # tagged finetune:data-sha256
    set_status(spec.job_name, "Stopped")

    answer = retry(spec.job_name)

    assert answer["outcome"] == "started" and answer["newJob"] == spec.generation_name(2)
    job = aws.bedrock.get_model_customization_job(jobIdentifier=spec.generation_name(2))
    assert job["trainingDataConfig"]["s3Uri"] == f"s3://{BUCKET}/elsewhere/train.jsonl"
    assert deployed_job(aws) == {
        "jobName": spec.generation_name(2),
        "digest": spec.digest,
        "source": "deploy",
    }


# --------------------------------------------------------------------------------------------------
# Candidates (the evaluation gate's other trials)
# --------------------------------------------------------------------------------------------------


def candidate_properties(training: bytes, **overrides: str) -> dict[str, str]:
    """A candidate's job: other hyperparameters on the same data, with its trial's name."""
    hyperparameters = {**HYPERPARAMETERS, "learningRate": "5e-05"}
    spec = replace(spec_for(training), hyperparameters=hyperparameters)
    candidate = {
        "Hyperparameters": json.dumps(hyperparameters),
        "JobName": spec.job_name,
        "CustomModelName": spec.custom_model_name,
        "JobDigest": spec.digest,
        "Trial": "gentle",
    }
    return {**properties(training), **candidate, **overrides}


def test_a_candidates_job_starts_but_is_never_recorded_as_the_deployed_job(aws: Aws) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    main = aws.cloudformation.send("Create", properties(training))
    props = candidate_properties(training)

    candidate = aws.cloudformation.send("Create", props)

    assert candidate["Status"] == "SUCCESS", candidate["Reason"]
    assert candidate["PhysicalResourceId"] == props["JobName"] != main["PhysicalResourceId"]
    assert aws.job_names() == sorted([main["PhysicalResourceId"], props["JobName"]])
    job = aws.bedrock.get_model_customization_job(jobIdentifier=props["JobName"])
    assert job["hyperParameters"]["learningRate"] == "5e-05"
    assert deployed_job(aws) == {
        "jobName": main["PhysicalResourceId"],
        "digest": spec_for(training).digest,
        "source": "deploy",
    }


@pytest.mark.parametrize(
    ("stop_on_delete", "stop_superseded", "expected"),
    [("true", "false", "Stopped"), ("false", "true", "Stopped"), ("false", "false", "InProgress")],
)
def test_a_candidates_job_is_stopped_on_delete_by_either_rule(
    aws: Aws, stop_on_delete: str, stop_superseded: str, expected: str
) -> None:
    training = dataset()
    upload_training(aws.s3, training)
    aws.cloudformation.send("Create", properties(training))
    props = candidate_properties(training, StopOnDelete=stop_on_delete, StopSuperseded=stop_superseded)
    name = aws.cloudformation.send("Create", props)["PhysicalResourceId"]

    deleted = aws.cloudformation.send("Delete", props, physical_id=name)

    assert deleted["Status"] == "SUCCESS"
    assert aws.bedrock.get_model_customization_job(jobIdentifier=name)["status"] == expected
