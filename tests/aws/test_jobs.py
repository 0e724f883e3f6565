"""finetune.aws.jobs: idempotent job starts, Bedrock errors people can act on, data checked before a job."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from moto import mock_aws
from moto.bedrock.models import bedrock_backends

from finetune.aws import data, jobs
from finetune.core import catalog, contracts, names
from finetune.core.catalog import find_model
from finetune.core.contracts import JobRequest
from finetune.core.formats import DatasetLimits
from finetune.core.names import JobSpec

REGION = "us-west-2"
ACCOUNT = "123456789012"
BUCKET = "training-data"
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/bedrock-customization"


def dataset(records: int = 120, *, tag: str = "") -> bytes:
    """A valid prompt/completion JSONL file for Llama 3.1 (at least 100 distinct records)."""
    return b"".join(
        json.dumps({"prompt": f"question {tag}{i}?", "completion": f"answer {tag}{i}."}).encode() + b"\n"
        for i in range(records)
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def llama_limits() -> DatasetLimits:
    model = find_model(LLAMA)
    assert model is not None
    limits = model.dataset_limits("FINE_TUNING")
    assert limits is not None
    return limits


def make_spec(training: bytes, validation: bytes | None = None, **changes: Any) -> JobSpec:
    spec = JobSpec(
        environment="dev",
        fine_tuning="sql-generator",
        base_model=LLAMA,
        customization_type="FINE_TUNING",
        hyperparameters={"epochCount": "2", "batchSize": "1", "learningRate": "0.0001"},
        training_sha256=sha(training),
        validation_sha256=sha(validation) if validation is not None else None,
    )
    return replace(spec, **changes)


def make_request(
    spec: JobSpec, *, training_key: str = "training/train.jsonl", validation_key: str | None = None
) -> JobRequest:
    return JobRequest(
        spec=spec,
        role_arn=ROLE,
        training_s3_uri=f"s3://{BUCKET}/{training_key}",
        validation_s3_uri=f"s3://{BUCKET}/{validation_key}" if validation_key else None,
        output_s3_uri=f"s3://{BUCKET}/output/",
    )


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def bedrock(aws: None) -> Any:
    return boto3.client("bedrock", region_name=REGION)


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


def job_names(bedrock: Any) -> list[str]:
    return [
        job["jobName"] for job in bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]
    ]


# --------------------------------------------------------------------------------------------------
# S3 URIs and requests
# --------------------------------------------------------------------------------------------------


def test_parse_s3_uri_splits_bucket_and_key_and_refuses_other_schemes() -> None:
    assert names.parse_s3_uri("s3://bucket/a/b.jsonl") == ("bucket", "a/b.jsonl")
    assert names.parse_s3_uri("s3://bucket/output/") == ("bucket", "output/")
    assert names.parse_s3_uri("s3://bucket") == ("bucket", "")
    assert names.s3_uri("bucket", "a/b.jsonl") == "s3://bucket/a/b.jsonl"
    for wrong in ("https://bucket/key", "bucket/key", "s3:///key"):
        with pytest.raises(ValueError, match="s3://<bucket>/<key>"):
            names.parse_s3_uri(wrong)


def test_create_kwargs_satisfy_botocore_model_of_create_model_customization_job() -> None:
    training, validation = dataset(), dataset(10, tag="v")
    spec = make_spec(training, validation)
    request = replace(
        make_request(spec, validation_key="validation/valid.jsonl"),
        kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234",
    )
    kwargs = request.create_job_kwargs()

    model = botocore.session.get_session().get_service_model("bedrock")
    shape = model.operation_model("CreateModelCustomizationJob").input_shape
    report = ParamValidator().validate(kwargs, shape)
    assert not report.has_errors(), report.generate_report()
    assert kwargs["jobName"] == spec.job_name
    assert kwargs["customModelName"] == spec.custom_model_name
    assert kwargs["clientRequestToken"] == spec.client_request_token()
    assert kwargs["baseModelIdentifier"] == LLAMA
    assert kwargs["customizationType"] == "FINE_TUNING"
    assert kwargs["trainingDataConfig"] == {"s3Uri": f"s3://{BUCKET}/training/train.jsonl"}
    assert kwargs["validationDataConfig"] == {
        "validators": [{"s3Uri": f"s3://{BUCKET}/validation/valid.jsonl"}]
    }
    assert kwargs["outputDataConfig"] == {"s3Uri": f"s3://{BUCKET}/output/"}
    assert kwargs["hyperParameters"] == {"epochCount": "2", "batchSize": "1", "learningRate": "0.0001"}
    assert kwargs["customModelKmsKeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
    expected_tags = [{"key": key, "value": value} for key, value in spec.tags().items()]
    assert kwargs["jobTags"] == expected_tags
    assert kwargs["customModelTags"] == expected_tags
    assert "customizationConfig" not in kwargs


def test_the_distillation_type_matches_the_catalog() -> None:
    assert contracts.DISTILLATION == catalog.DISTILLATION


def test_distillation_names_the_teacher_in_customization_config() -> None:
    spec = make_spec(
        dataset(),
        customization_type="DISTILLATION",
        teacher_model="meta.llama3-1-70b-instruct-v1:0",
        hyperparameters={},
    )
    kwargs = make_request(spec).create_job_kwargs()
    shape = (
        botocore.session.get_session()
        .get_service_model("bedrock")
        .shape_for("CreateModelCustomizationJobRequest")
    )
    report = ParamValidator().validate(kwargs, shape)
    assert not report.has_errors(), report.generate_report()
    assert kwargs["customizationConfig"] == {
        "distillationConfig": {
            "teacherModelConfig": {"teacherModelIdentifier": "meta.llama3-1-70b-instruct-v1:0"}
        }
    }
    assert "validationDataConfig" not in kwargs and "customModelKmsKeyId" not in kwargs


@pytest.mark.parametrize(
    ("changes", "request_changes", "message"),
    [
        ({"customization_type": "DISTILLATION"}, {}, "needs a teacher model"),
        ({"teacher_model": "meta.llama3-1-70b-instruct-v1:0"}, {}, "only used by DISTILLATION"),
        ({"validation_sha256": "ab" * 32}, {}, "needs both its S3 URI and its sha256"),
        ({}, {"validation_s3_uri": f"s3://{BUCKET}/v.jsonl"}, "needs both its S3 URI and its sha256"),
        ({}, {"training_s3_uri": f"s3://{BUCKET}/folder/"}, "names no object"),
        ({}, {"output_s3_uri": "https://example.com/out"}, "not an S3 URI"),
    ],
)
def test_inconsistent_requests_are_refused(
    changes: dict[str, Any], request_changes: dict[str, Any], message: str
) -> None:
    spec = make_spec(dataset(), **changes)
    fields: dict[str, Any] = {
        "spec": spec,
        "role_arn": ROLE,
        "training_s3_uri": f"s3://{BUCKET}/t.jsonl",
        "validation_s3_uri": None,
        "output_s3_uri": f"s3://{BUCKET}/output/",
        **request_changes,
    }
    with pytest.raises(ValueError, match=message):
        JobRequest(**fields)


# --------------------------------------------------------------------------------------------------
# Starting, finding, stopping
# --------------------------------------------------------------------------------------------------


def test_start_job_creates_once_and_then_finds_the_same_job(bedrock: Any) -> None:
    request = make_request(make_spec(dataset()))

    first = jobs.start_job(bedrock, request)
    second = jobs.start_job(bedrock, request)

    assert first.started is True and second.started is False
    assert first.job_name == second.job_name == request.spec.job_name
    assert first.job_arn == second.job_arn
    assert first.status == second.status == "InProgress"
    assert second.custom_model_name == request.spec.custom_model_name
    assert job_names(bedrock) == [request.spec.job_name]
    job = bedrock.get_model_customization_job(jobIdentifier=request.spec.job_name)
    assert job["clientRequestToken"] == request.spec.client_request_token()
    tags = bedrock.list_tags_for_resource(resourceARN=first.job_arn)["tags"]
    assert {tag["key"]: tag["value"] for tag in tags} == request.spec.tags()


class LosesTheRace:
    """A Bedrock client whose first look-up misses the job a concurrent start creates meanwhile."""

    def __init__(self, client: Any, request: JobRequest) -> None:
        self.client = client
        self.request = request
        self.lookups = 0

    def get_model_customization_job(self, **kwargs: Any) -> Mapping[str, Any]:
        self.lookups += 1
        if self.lookups == 1:
            self.client.create_model_customization_job(**self.request.create_job_kwargs())  # the other start
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "not found"}},
                "GetModelCustomizationJob",
            )
        result: Mapping[str, Any] = self.client.get_model_customization_job(**kwargs)
        return result

    def create_model_customization_job(self, **kwargs: Any) -> Mapping[str, Any]:
        result: Mapping[str, Any] = self.client.create_model_customization_job(**kwargs)
        return result

    def stop_model_customization_job(self, **kwargs: Any) -> Mapping[str, Any]:
        result: Mapping[str, Any] = self.client.stop_model_customization_job(**kwargs)
        return result


def test_a_concurrent_start_returns_the_job_the_other_start_created(bedrock: Any) -> None:
    request = make_request(make_spec(dataset()))
    racing = LosesTheRace(bedrock, request)

    state = jobs.start_job(racing, request)

    assert state.started is False
    assert state.job_name == request.spec.job_name
    assert racing.lookups == 2
    assert job_names(bedrock) == [request.spec.job_name]


@pytest.mark.parametrize(
    ("code", "bedrock_message", "expected"),
    [
        (
            "ServiceQuotaExceededException",
            "You have reached the maximum number of concurrent jobs",
            "at most 2 concurrent customization jobs per account is commonly non-adjustable: "
            "wait for a running job or stop one",
        ),
        (
            "AccessDeniedException",
            "User is not authorized to perform iam:PassRole",
            "iam:PassRole on the role " + ROLE,
        ),
        (
            "ValidationException",
            "1 validation error: hyperParameters.epochCount must be <= 10",
            "names the field",
        ),
        ("ThrottlingException", "Rate exceeded", "try again in a few minutes"),
    ],
)
def test_bedrock_rejections_name_job_code_message_and_what_to_do(
    bedrock: Any, code: str, bedrock_message: str, expected: str
) -> None:
    request = make_request(make_spec(dataset()))
    with Stubber(bedrock) as stub:
        stub.add_client_error("get_model_customization_job", "ResourceNotFoundException", "no such job", 404)
        stub.add_client_error("create_model_customization_job", code, bedrock_message, 400)
        with pytest.raises(jobs.JobRejected) as raised:
            jobs.start_job(bedrock, request)
        stub.assert_no_pending_responses()

    rejected = raised.value
    text = str(rejected)
    assert rejected.job_name == request.spec.job_name and rejected.code == code
    assert rejected.bedrock_message == bedrock_message
    assert request.spec.job_name in text and code in text and bedrock_message in text and expected in text
    assert job_names(bedrock) == []


def test_a_failed_look_up_is_a_rejection_too(bedrock: Any) -> None:
    with Stubber(bedrock) as stub:
        stub.add_client_error("get_model_customization_job", "AccessDeniedException", "not allowed", 403)
        with pytest.raises(jobs.JobRejected, match="bedrock:GetModelCustomizationJob"):
            jobs.find_job(bedrock, "dev-x-123")


def test_stop_job_if_running_stops_only_a_running_job(bedrock: Any) -> None:
    running = make_request(make_spec(dataset()))
    done = make_request(make_spec(dataset(tag="done")))
    jobs.start_job(bedrock, running)
    jobs.start_job(bedrock, done)
    bedrock_backends[ACCOUNT][REGION].model_customization_jobs[done.job_name].status = "Completed"

    assert jobs.stop_job_if_running(bedrock, running.job_name) is True
    assert jobs.stop_job_if_running(bedrock, running.job_name) is False  # Stopped now
    assert jobs.stop_job_if_running(bedrock, done.job_name) is False
    assert jobs.stop_job_if_running(bedrock, "dev-sql-generator-000000000000") is False
    assert bedrock.get_model_customization_job(jobIdentifier=running.job_name)["status"] == "Stopped"
    assert bedrock.get_model_customization_job(jobIdentifier=done.job_name)["status"] == "Completed"


def test_a_job_that_finishes_before_the_stop_is_not_an_error(bedrock: Any) -> None:
    with Stubber(bedrock) as stub:
        job = {
            "jobArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/j",
            "jobName": "j",
            "outputModelName": "j",
            "roleArn": ROLE,
            "creationTime": "2026-01-01T00:00:00Z",
            "baseModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{LLAMA}",
            "trainingDataConfig": {"s3Uri": f"s3://{BUCKET}/t.jsonl"},
            "validationDataConfig": {"validators": []},
            "outputDataConfig": {"s3Uri": f"s3://{BUCKET}/output/"},
        }
        stub.add_response("get_model_customization_job", {**job, "status": "InProgress"})
        stub.add_client_error(
            "stop_model_customization_job", "ValidationException", "job is not in progress", 400
        )
        stub.add_response("get_model_customization_job", {**job, "status": "Completed"})
        assert jobs.stop_job_if_running(bedrock, "j") is False
        stub.assert_no_pending_responses()


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def test_valid_data_in_s3_has_no_problems_and_is_hashed_in_the_validation_pass(s3: Any) -> None:
    training, validation = dataset(), dataset(20, tag="v")
    s3.put_object(Bucket=BUCKET, Key="training/train.jsonl", Body=training)
    s3.put_object(Bucket=BUCKET, Key="validation/valid.jsonl", Body=validation)
    request = make_request(
        make_spec(training, validation),
        training_key="training/train.jsonl",
        validation_key="validation/valid.jsonl",
    )

    assert data.request_data_problems(s3, request, llama_limits(), 1) == []
    check = data.check_object(s3, BUCKET, "training/train.jsonl", limits=llama_limits())
    assert check.report.ok and check.report.records == 120
    assert check.sha256 == sha(training)
    assert check.size_bytes == len(training)


def test_invalid_data_is_reported_as_s3_uri_line_message(s3: Any) -> None:
    lines = dataset().splitlines(keepends=True)
    lines[2] = b'{"prompt": "q", "completion": 3}\n'
    lines[6] = b"not json\n"
    training = b"".join(lines)
    validation = b'{"prompt": "only a prompt"}\n'
    s3.put_object(Bucket=BUCKET, Key="training/train.jsonl", Body=training)
    s3.put_object(Bucket=BUCKET, Key="validation/valid.jsonl", Body=validation)
    request = make_request(
        make_spec(training, validation),
        training_key="training/train.jsonl",
        validation_key="validation/valid.jsonl",
    )

    problems = data.request_data_problems(s3, request, llama_limits(), None)

    training_uri, validation_uri = request.training_s3_uri, request.validation_s3_uri
    assert [line.split(": ")[0] for line in problems] == [
        f"{training_uri}:3",
        f"{training_uri}:7",
        f"{validation_uri}:1",
    ]
    assert "invalid JSON" in problems[1]
    assert all(": error:" not in line for line in problems)


def test_data_whose_sha256_differs_from_the_spec_is_a_problem(s3: Any) -> None:
    training = dataset()
    s3.put_object(Bucket=BUCKET, Key="training/train.jsonl", Body=dataset(tag="other"))
    request = make_request(make_spec(training))

    problems = data.request_data_problems(s3, request, llama_limits(), None)

    assert len(problems) == 1
    assert problems[0].startswith(f"{request.training_s3_uri}: the object's sha256 is ")
    assert sha(training) in problems[0]


def test_too_few_records_is_a_file_level_problem(s3: Any) -> None:
    training = dataset(5)
    s3.put_object(Bucket=BUCKET, Key="training/train.jsonl", Body=training)
    problems = data.request_data_problems(s3, make_request(make_spec(training)), llama_limits(), None)
    assert problems == [
        f"s3://{BUCKET}/training/train.jsonl: 5 records; at least 100 are required for training data"
    ]


def test_data_rejected_shows_the_first_problems_that_fit_and_counts_the_rest() -> None:
    problems = [f"s3://b/k.jsonl:{line}: invalid JSON: Expecting value (column 1)" for line in range(1, 501)]

    text = str(jobs.DataRejected(problems))

    assert len(text) <= jobs.MAX_PROBLEM_CHARS + 40
    assert text.startswith("the data was rejected (500 problems); no job was started:")
    assert "s3://b/k.jsonl:1: invalid JSON" in text
    shown = text.count("s3://b/k.jsonl:")
    assert 0 < shown < 500
    assert text.endswith(f"... and {500 - shown} more")
    assert jobs.DataRejected(problems).problems == problems
    assert not str(jobs.DataRejected(problems[:2])).endswith("more")
