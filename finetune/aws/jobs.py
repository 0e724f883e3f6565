"""Starting, finding and stopping Bedrock model customization jobs, and checking their data first.

A job is named by its `JobSpec` (see `finetune.core.names`), so starting one is idempotent: the job is
looked up by its deterministic NAME first and created (with the spec's `clientRequestToken`) only
when it does not exist. A concurrent start that wins the race shows up as ResourceInUseException
(moto) or ConflictException (Bedrock); the job is then looked up again and returned as found.

Decisions:
- Jobs are looked up by name, never by ARN: real Bedrock accepts both, moto only names.
- Generations. A job that is running or Completed is returned as found. A job that Failed or was
  Stopped trained nothing: the same spec then starts its next generation (a new name and token,
  `JobSpec.generation_name`), because Bedrock job names are unique forever. So a deploy after a
  failure, a rollback to a configuration whose job was stopped, or destroy-and-redeploy all train,
  instead of "finding" a dead job and reporting success.
- The deployed job. Which job the fine-tuning serves is recorded in SSM (`deployed-job`): the
  trigger writes it for the job a deploy or an upload asked for, and serving serves that job's
  model only, never a job that merely ended later (`DeployedJob`).
- `JobState.custom_model_name` is the name the request asked for. Bedrock's `outputModelName` is the
  same name; moto reports `<model>-<job>` instead, which names no model it knows.
- Every Bedrock error becomes `JobRejected`, whose message names the job, Bedrock's error code and
  Bedrock's own message, plus what to do for the errors whose cause is known. Throttling is retried
  by botocore (the caller configures its client); when it still fails it is a `JobRejected` too.
- Data is validated by streaming each object once; its sha256 is computed in the same pass, and an
  object whose sha256 differs from the spec's is rejected: a job never trains on bytes other than
  the ones its name was derived from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from finetune.core.names import (
    MAX_GENERATION,
    JobSpec,
    job_name_prefix,
    owns_job,
    resource_tags,
    ssm_parameter_name,
)

if TYPE_CHECKING:
    from finetune.core.dataset import DatasetReport
    from finetune.core.formats import DatasetLimits

__all__ = [
    "DISTILLATION",
    "MAX_PROBLEM_CHARS",
    "BedrockClient",
    "DataRejected",
    "DeployedJob",
    "JobRejected",
    "JobRequest",
    "JobState",
    "ObjectCheck",
    "find_job",
    "format_problems",
    "live_attempt",
    "parse_s3_object_uri",
    "parse_s3_uri",
    "problem_lines",
    "read_deployed_job",
    "record_deployed_job",
    "running_jobs",
    "s3_uri",
    "sha256_of_s3_object",
    "start_job",
    "stop_job_if_running",
    "validate_and_hash_s3_object",
    "validate_data_in_s3",
]

RUNNING = "InProgress"
COMPLETED = "Completed"
DEAD_STATES = frozenset({"Failed", "Stopped", "Stopping"})
# finetune.core.catalog.DISTILLATION, not imported from there: the catalog's table is a cold-start cost
# this module does not otherwise need (see bench/handler_import.py).
DISTILLATION = "DISTILLATION"
# Error codes that mean "the name is taken": a concurrent start created the job first.
NAME_TAKEN_CODES = frozenset({"ResourceInUseException", "ConflictException"})
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})
# Problem lines shown in an error message (CloudFormation keeps at most ~4 KB of a response).
MAX_PROBLEM_CHARS = 2500
HASH_CHUNK_BYTES = 1024 * 1024

HINTS: Mapping[str, str] = {
    "ServiceQuotaExceededException": (
        "at most 2 concurrent customization jobs per account is commonly non-adjustable: "
        "wait for a running job or stop one"
    ),
    "AccessDeniedException": (
        "check the service role (it must trust bedrock.amazonaws.com, read the training data and "
        "write the output prefix) and that the caller may call bedrock:{operation} and iam:PassRole "
        "on the role {role_arn}"
    ),
    "ValidationException": (
        "Bedrock's message names the field it rejected: fix that setting (or the data) and deploy again"
    ),
    "ThrottlingException": "Bedrock kept throttling the requests after retries: try again in a few minutes",
    "ResourceNotFoundException": (
        "a resource the job refers to was not found: check the base model, teacher model and KMS key "
        "identifiers and that the base model can be customized in this region"
    ),
    "TooManyTagsException": "the job or its custom model would carry too many tags (at most 200)",
    "InternalServerException": "Bedrock failed internally: try again",
    "ResourceInUseException": "a job or custom model with this name already exists",
    "ConflictException": "a job or custom model with this name already exists, or the job changed state",
}


class BedrockClient(Protocol):
    """The calls of a boto3 Bedrock client this module makes (keyword arguments, as boto3 takes them)."""

    def create_model_customization_job(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def get_model_customization_job(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def stop_model_customization_job(self, **kwargs: Any) -> Mapping[str, Any]: ...


class S3Reader(Protocol):
    """The S3 call the data checks make."""

    def get_object(self, **kwargs: Any) -> Mapping[str, Any]: ...


# --------------------------------------------------------------------------------------------------
# S3 URIs
# --------------------------------------------------------------------------------------------------


def job_template(
    spec: JobSpec,
    *,
    role_arn: str,
    output_s3_uri: str,
    validation_s3_uri: str,
    kms_key_arn: str,
    stop_superseded: bool,
) -> dict[str, str]:
    """The settings every job of a fine-tuning shares: FINETUNE_JOB_TEMPLATE of the trigger function
    (uploads under incoming/ start jobs with it) and the base of `Custom::CustomizationJob`'s
    properties. Values may be CDK tokens; every value is a string, as CloudFormation sends them.

    `stop_superseded`: a job still running when a newer deploy or upload replaces it is stopped.
    """
    return {
        "Environment": spec.environment,
        "FineTuning": spec.fine_tuning,
        "BaseModelIdentifier": spec.base_model,
        "CustomizationType": spec.customization_type,
        "TeacherModel": spec.teacher_model or "",
        "Hyperparameters": json.dumps(dict(spec.hyperparameters), sort_keys=True),
        "ValidationDataS3Uri": validation_s3_uri,
        "ValidationSha256": spec.validation_sha256 or "",
        "RoleArn": role_arn,
        "OutputS3Uri": output_s3_uri,
        "KmsKeyArn": kms_key_arn,
        "StopSuperseded": "true" if stop_superseded else "false",
    }


def job_resource_properties(
    spec: JobSpec, template: Mapping[str, str], *, training_s3_uri: str, stop_on_delete: bool
) -> dict[str, str]:
    """`Custom::CustomizationJob`'s properties: the template, the training data and the job's names,
    so that `cdk diff` shows a reviewer which job a deploy will start and why."""
    return {
        **template,
        "TrainingDataS3Uri": training_s3_uri,
        "TrainingSha256": spec.training_sha256,
        "JobName": spec.job_name,
        "CustomModelName": spec.custom_model_name,
        "JobDigest": spec.digest,
        "StopOnDelete": "true" if stop_on_delete else "false",
    }


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key"); raises ValueError for anything else.

    The key may be empty (`s3://bucket/` or `s3://bucket`: a bucket or prefix, e.g. an output location).
    """
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}; expected s3://<bucket>/<key>")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in the S3 URI {uri!r}; expected s3://<bucket>/<key>")
    return bucket, key


def parse_s3_object_uri(uri: str) -> tuple[str, str]:
    """Like `parse_s3_uri`, but the URI must name an object (a non-empty key not ending in "/")."""
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise ValueError(f"the S3 URI {uri!r} names no object; expected s3://<bucket>/<key of a file>")
    return bucket, key


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


# --------------------------------------------------------------------------------------------------
# Requests and states
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """Everything CreateModelCustomizationJob needs: what to train (the spec) and where (S3, IAM, KMS).

    Raises ValueError when the parts disagree: S3 URIs that are not `s3://bucket/key`, a validation
    set without its sha256 in the spec (or the reverse), a distillation without a teacher model or a
    teacher model for another customization type.
    """

    spec: JobSpec
    role_arn: str
    training_s3_uri: str
    validation_s3_uri: str | None
    output_s3_uri: str
    kms_key_arn: str | None = None
    generation: int = 1  # the attempt: a retry after a Failed or Stopped job is the next one

    def __post_init__(self) -> None:
        self.spec.generation_name(self.generation)  # raises ValueError out of range
        parse_s3_object_uri(self.training_s3_uri)
        parse_s3_uri(self.output_s3_uri)
        if self.validation_s3_uri is not None:
            parse_s3_object_uri(self.validation_s3_uri)
        if (self.validation_s3_uri is None) != (self.spec.validation_sha256 is None):
            raise ValueError(
                "a validation data set needs both its S3 URI and its sha256 (the job digest covers it); "
                f"got URI {self.validation_s3_uri!r} and sha256 {self.spec.validation_sha256!r}"
            )
        if self.spec.customization_type == DISTILLATION and not self.spec.teacher_model:
            raise ValueError("a DISTILLATION job needs a teacher model (teacherModelIdentifier)")
        if self.spec.customization_type != DISTILLATION and self.spec.teacher_model:
            raise ValueError(
                f"a teacher model ({self.spec.teacher_model}) is only used by DISTILLATION, "
                f"not by {self.spec.customization_type}"
            )

    @property
    def job_name(self) -> str:
        return self.spec.generation_name(self.generation)

    @property
    def custom_model_name(self) -> str:
        """Named like its job: custom model names are unique too, so each attempt has its own."""
        return self.job_name

    def create_job_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of boto3's `create_model_customization_job` for this request."""
        spec = self.spec
        tags = [{"key": key, "value": value} for key, value in spec.tags().items()]
        kwargs: dict[str, Any] = {
            "jobName": self.job_name,
            "customModelName": self.custom_model_name,
            "roleArn": self.role_arn,
            "clientRequestToken": spec.client_request_token(self.generation),
            "baseModelIdentifier": spec.base_model,
            "customizationType": spec.customization_type,
            "jobTags": tags,
            "customModelTags": list(tags),
            "trainingDataConfig": {"s3Uri": self.training_s3_uri},
            "outputDataConfig": {"s3Uri": self.output_s3_uri},
            "hyperParameters": {key: str(value) for key, value in spec.hyperparameters.items()},
        }
        if self.validation_s3_uri is not None:
            kwargs["validationDataConfig"] = {"validators": [{"s3Uri": self.validation_s3_uri}]}
        if self.kms_key_arn:
            kwargs["customModelKmsKeyId"] = self.kms_key_arn
        if spec.customization_type == DISTILLATION and spec.teacher_model:
            kwargs["customizationConfig"] = {
                "distillationConfig": {"teacherModelConfig": {"teacherModelIdentifier": spec.teacher_model}}
            }
        return kwargs


@dataclass(frozen=True)
class JobState:
    """A customization job as Bedrock reports it; `started` is True only for the call that created it."""

    job_name: str
    job_arn: str
    status: str
    custom_model_name: str
    started: bool = False
    failure_message: str | None = None

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def dead(self) -> bool:
        """Failed, Stopped or Stopping: it produces no model, a retry needs the next generation."""
        return self.status in DEAD_STATES


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class JobRejected(Exception):  # noqa: N818 (the name the project uses for this outcome)
    """Bedrock refused a call about a job: the job name, Bedrock's code and message, and what to do."""

    def __init__(self, job_name: str, code: str, bedrock_message: str, hint: str | None = None) -> None:
        self.job_name = job_name
        self.code = code
        self.bedrock_message = bedrock_message
        self.hint = hint
        text = f"Bedrock rejected customization job {job_name}: {code}: {bedrock_message}"
        if hint:
            text += f" (what to do: {hint})"
        super().__init__(text)

    @classmethod
    def from_client_error(
        cls, job_name: str, error: ClientError, *, operation: str, role_arn: str = "(the service role)"
    ) -> JobRejected:
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "UnknownError")
        message = str(details.get("Message") or error)
        hint = HINTS.get(code)
        if hint is not None:
            hint = hint.format(operation=operation, role_arn=role_arn)
        return cls(job_name, code, message, hint)


class DataRejected(Exception):  # noqa: N818 (the name the project uses for this outcome)
    """The data failed validation: `problems` holds every problem line ("s3://bucket/key:LINE: message")."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems: list[str], budget: int = MAX_PROBLEM_CHARS) -> str:
    """The first problem lines that fit in about `budget` characters, and "... and N more"."""
    count = len(problems)
    header = f"the data was rejected ({count} problem{'s' if count != 1 else ''}); no job was started:"
    shown: list[str] = []
    used = len(header)
    for line in problems:
        if shown and used + 1 + len(line) > budget:
            break
        if not shown and used + 1 + len(line) > budget:
            line = line[: max(budget - used - 4, 0)] + "..."
        shown.append(line)
        used += 1 + len(line)
    text = "\n".join([header, *shown])
    if len(shown) < count:
        text += f"\n... and {count - len(shown)} more"
    return text


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --------------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------------


def find_job(bedrock: BedrockClient, job_name: str, custom_model_name: str | None = None) -> JobState | None:
    """The job named `job_name`, or None when Bedrock knows no such job. Raises JobRejected."""
    try:
        job = bedrock.get_model_customization_job(jobIdentifier=job_name)
    except ClientError as error:
        if _code(error) in NOT_FOUND_CODES:
            return None
        raise JobRejected.from_client_error(job_name, error, operation="GetModelCustomizationJob") from error
    return JobState(
        job_name=str(job.get("jobName", job_name)),
        job_arn=str(job["jobArn"]),
        status=str(job.get("status", "")),
        custom_model_name=custom_model_name or str(job.get("outputModelName", "")),
        started=False,
        failure_message=job.get("failureMessage") if job.get("status") == "Failed" else None,
    )


def live_attempt(bedrock: BedrockClient, request: JobRequest) -> tuple[JobState | None, JobRequest]:
    """The request's spec as it stands: its live job (running or Completed) if one exists, and the
    request of that generation, or None and the request of the generation to start next.

    Generations are tried in order; a Failed or Stopped one is passed over (it trained nothing).
    Raises JobRejected when every generation was tried, or Bedrock refuses a look-up.
    """
    for generation in range(1, MAX_GENERATION + 1):
        attempt = replace(request, generation=generation)
        found = find_job(bedrock, attempt.job_name, attempt.custom_model_name)
        if found is None or not found.dead:
            return found, attempt
    raise JobRejected(
        request.job_name,
        "TooManyAttempts",
        f"all {MAX_GENERATION} attempts at this configuration and data Failed or were Stopped",
        "read the failure messages (python -m finetune status), then change the configuration or data",
    )


def start_job(bedrock: BedrockClient, request: JobRequest) -> JobState:
    """Start the request's generation of its job unless it exists; its state either way
    (`started` says which). Use `live_attempt` first to pick the generation.

    Raises JobRejected when Bedrock refuses (quota, access, validation, throttling after retries).
    """
    name = request.job_name
    found = find_job(bedrock, name, request.custom_model_name)
    if found is not None:
        return found
    try:
        created = bedrock.create_model_customization_job(**request.create_job_kwargs())
    except ClientError as error:
        if _code(error) in NAME_TAKEN_CODES:
            # A concurrent start (a replayed event, a retry) created it first: that is our job.
            found = find_job(bedrock, name, request.custom_model_name)
            if found is not None:
                return found
        raise JobRejected.from_client_error(
            name, error, operation="CreateModelCustomizationJob", role_arn=request.role_arn
        ) from error
    return JobState(
        job_name=name,
        job_arn=str(created["jobArn"]),
        status=RUNNING,
        custom_model_name=request.custom_model_name,
        started=True,
    )


def running_jobs(bedrock: Any, environment: str, fine_tuning: str, name_prefix: str = "") -> list[str]:
    """Names of this fine-tuning's InProgress jobs (optionally only those starting `name_prefix`)."""
    prefix = name_prefix or job_name_prefix(environment, fine_tuning)
    names = []
    token: str | None = None
    while True:
        response = bedrock.list_model_customization_jobs(
            nameContains=prefix, statusEquals=RUNNING, **({"nextToken": token} if token else {})
        )
        for summary in response.get("modelCustomizationJobSummaries") or []:
            name = str(summary["jobName"])
            status = summary.get("status", RUNNING)
            if status == RUNNING and name.startswith(prefix) and owns_job(environment, fine_tuning, name):
                names.append(name)
        token = response.get("nextToken")
        if not token:
            return sorted(names)


def stop_job_if_running(bedrock: BedrockClient, job_name: str) -> bool:
    """Stop the job if it is InProgress; True when a stop was requested. A missing job is not an error.

    A job that finishes between the look-up and the stop (Bedrock answers ValidationException or
    ConflictException) is not stopped and not an error either. Raises JobRejected otherwise.
    """
    found = find_job(bedrock, job_name)
    if found is None or not found.running:
        return False
    try:
        bedrock.stop_model_customization_job(jobIdentifier=job_name)
    except ClientError as error:
        if _code(error) in NOT_FOUND_CODES:
            return False
        if _code(error) in ("ValidationException", "ConflictException"):
            again = find_job(bedrock, job_name)
            if again is None or not again.running:
                return False
        raise JobRejected.from_client_error(job_name, error, operation="StopModelCustomizationJob") from error
    return True


# --------------------------------------------------------------------------------------------------
# The deployed job
# --------------------------------------------------------------------------------------------------

DEPLOYED_JOB_PARAMETER = "deployed-job"
DEPLOY = "deploy"
UPLOAD = "upload"


@dataclass(frozen=True)
class DeployedJob:
    """The job whose model this fine-tuning serves once it completes: the one the last deploy (or
    upload under incoming/) asked for. Stored as JSON in SSM `/finetune/<env>/<ft>/deployed-job`."""

    job_name: str
    digest: str
    source: str  # DEPLOY or UPLOAD

    def to_json(self) -> str:
        return json.dumps({"jobName": self.job_name, "digest": self.digest, "source": self.source})

    @classmethod
    def from_json(cls, text: str) -> DeployedJob | None:
        """None for a value this code cannot read (it is then treated as missing, and rewritten)."""
        try:
            values = json.loads(text)
            return cls(str(values["jobName"]), str(values["digest"]), str(values["source"]))
        except (ValueError, TypeError, KeyError):
            return None


def read_deployed_job(ssm: Any, environment: str, fine_tuning: str) -> DeployedJob | None:
    """The recorded deployed job, or None when none is recorded (a stack deployed by older code)."""
    try:
        value = ssm.get_parameter(Name=ssm_parameter_name(environment, fine_tuning, DEPLOYED_JOB_PARAMETER))
    except ClientError as error:
        if _code(error) == "ParameterNotFound":
            return None
        raise
    return DeployedJob.from_json(str(value["Parameter"]["Value"]))


def record_deployed_job(ssm: Any, environment: str, fine_tuning: str, job: DeployedJob) -> None:
    """Write the record (tagged like the stack's resources when it is created)."""
    name = ssm_parameter_name(environment, fine_tuning, DEPLOYED_JOB_PARAMETER)
    tags = [
        {"Key": key, "Value": value} for key, value in sorted(resource_tags(environment, fine_tuning).items())
    ]
    try:
        ssm.put_parameter(Name=name, Value=job.to_json(), Type="String", Tags=tags)
    except ClientError as error:
        if _code(error) != "ParameterAlreadyExists":
            raise
        # SSM refuses Tags together with Overwrite: the parameter is tagged from its creation.
        ssm.put_parameter(Name=name, Value=job.to_json(), Type="String", Overwrite=True)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


class _HashingBody:
    """A body that hashes (sha256) and counts every byte read through it."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._body.read(size if size is not None and size >= 0 else None)
        self.digest.update(data)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._body.close()


class _HashingS3:
    """Wraps an S3 client so the body `validate_s3_object` streams is hashed on the way."""

    def __init__(self, s3: S3Reader) -> None:
        self._s3 = s3
        self.body: _HashingBody | None = None
        self.content_length: int | None = None
        self.version_id: str | None = None

    def get_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]:  # noqa: N803 (boto3 names)
        response = dict(self._s3.get_object(Bucket=Bucket, Key=Key))
        self.body = _HashingBody(response["Body"])
        length = response.get("ContentLength")
        self.content_length = length if isinstance(length, int) else None
        version = response.get("VersionId")
        self.version_id = version if isinstance(version, str) and version != "null" else None
        response["Body"] = self.body
        return response


@dataclass(frozen=True)
class ObjectCheck:
    """One S3 object, validated: the report, its sha256 and size (None when it was not read whole),
    and the version that was read (in a versioned bucket), so that exactly those bytes are used."""

    report: DatasetReport
    sha256: str | None
    size_bytes: int | None
    version_id: str | None = None


def validate_and_hash_s3_object(
    s3: S3Reader,
    bucket: str,
    key: str,
    *,
    limits: DatasetLimits,
    validation: bool = False,
    batch_size: int | None = None,
) -> ObjectCheck:
    """Validate an S3 object by streaming it once, hashing the bytes in the same pass.

    The sha256 is None when the validator stopped early (binary or empty data: invalid anyway).
    botocore errors (no such key, access denied) propagate.
    """
    from finetune.core.dataset import validate_s3_object  # imported when data is checked, not at cold start

    hashing = _HashingS3(s3)
    report = validate_s3_object(
        hashing, bucket, key, limits=limits, validation=validation, batch_size=batch_size
    )
    body = hashing.body
    complete = body is not None and (
        hashing.content_length is None or body.bytes_read == hashing.content_length
    )
    if body is None or not complete:
        return ObjectCheck(report=report, sha256=None, size_bytes=hashing.content_length)
    return ObjectCheck(
        report=report,
        sha256=body.digest.hexdigest(),
        size_bytes=body.bytes_read,
        version_id=hashing.version_id,
    )


def sha256_of_s3_object(s3: S3Reader, bucket: str, key: str) -> str:
    """sha256 (hex) of an S3 object, streamed in 1 MiB chunks."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    try:
        for chunk in iter(lambda: body.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


def problem_lines(report: DatasetReport) -> list[str]:
    """The report's errors as "s3://bucket/key:LINE: message" (file-level ones without the line)."""
    return [
        f"{issue.file}:{issue.line}: {issue.message}"
        if issue.line is not None
        else f"{issue.file}: {issue.message}"
        for issue in report.issues()
        if issue.severity == "error"
    ]


def validate_data_in_s3(
    s3: S3Reader, request: JobRequest, limits: DatasetLimits, batch_size: int | None = None
) -> list[str]:
    """Problems of the request's training (and validation) data in S3; an empty list means valid.

    Each object is streamed once; besides the validator's findings, an object whose sha256 differs
    from the one in the request's spec is a problem (the job would train on other bytes than named).
    """
    data: list[tuple[str, str | None, bool]] = [
        (request.training_s3_uri, request.spec.training_sha256, False)
    ]
    if request.validation_s3_uri is not None:
        data.append((request.validation_s3_uri, request.spec.validation_sha256, True))
    problems: list[str] = []
    for uri, expected_sha256, validation in data:
        bucket, key = parse_s3_object_uri(uri)
        check = validate_and_hash_s3_object(
            s3, bucket, key, limits=limits, validation=validation, batch_size=batch_size
        )
        problems.extend(problem_lines(check.report))
        if not check.report.ok or not expected_sha256:
            continue
        actual = check.sha256 or sha256_of_s3_object(s3, bucket, key)
        if actual != expected_sha256:
            problems.append(
                f"{uri}: the object's sha256 is {actual}, but the job was named for {expected_sha256}: "
                "the data changed after it was staged; deploy again (or upload it again)"
            )
    return problems
