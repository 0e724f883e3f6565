"""Starting, finding and stopping Bedrock model customization jobs (their data: `finetune.aws.data`).

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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from botocore.exceptions import ClientError

from finetune.aws import parameters
from finetune.aws.errors import error_code, error_message, is_not_found
from finetune.core.contracts import JobRequest
from finetune.core.names import (
    DEPLOYED_JOB_PARAMETER,
    MAX_GENERATION,
    job_name_prefix,
    owns_job,
)

RUNNING = "InProgress"
COMPLETED = "Completed"
DEAD_STATES = frozenset({"Failed", "Stopped", "Stopping"})
# Error codes that mean "the name is taken": a concurrent start created the job first.
NAME_TAKEN_CODES = frozenset({"ResourceInUseException", "ConflictException"})
# Problem lines shown in an error message (CloudFormation keeps at most ~4 KB of a response).
MAX_PROBLEM_CHARS = 2500

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


# --------------------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------------------


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
        code = error_code(error) or "UnknownError"
        message = error_message(error)
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


# --------------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------------


def find_job(bedrock: BedrockClient, job_name: str, custom_model_name: str | None = None) -> JobState | None:
    """The job named `job_name`, or None when Bedrock knows no such job. Raises JobRejected."""
    try:
        job = bedrock.get_model_customization_job(jobIdentifier=job_name)
    except ClientError as error:
        if is_not_found(error):
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

    Generations are tried in order; a Failed or Stopped one is passed over (it trained nothing), and so
    is a Completed one whose custom model was deleted since (a destroy environment deletes them).
    Raises JobRejected when every generation was tried, or Bedrock refuses a look-up.
    """
    for generation in range(1, MAX_GENERATION + 1):
        attempt = replace(request, generation=generation)
        found = find_job(bedrock, attempt.job_name, attempt.custom_model_name)
        if found is None:
            return None, attempt
        if not found.dead and (found.status != COMPLETED or model_exists(bedrock, attempt.custom_model_name)):
            return found, attempt
    raise JobRejected(
        request.job_name,
        "TooManyAttempts",
        f"all {MAX_GENERATION} attempts at this configuration and data Failed or were Stopped",
        "read the failure messages (python -m finetune status), then change the configuration or data",
    )


def model_exists(bedrock: Any, model_name: str) -> bool:
    try:
        bedrock.get_custom_model(modelIdentifier=model_name)
    except ClientError as error:
        if is_not_found(error):
            return False
        raise JobRejected.from_client_error(model_name, error, operation="GetCustomModel") from error
    return True


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
        if error_code(error) in NAME_TAKEN_CODES:
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
        if is_not_found(error):
            return False
        if error_code(error) in ("ValidationException", "ConflictException"):
            again = find_job(bedrock, job_name)
            if again is None or not again.running:
                return False
        raise JobRejected.from_client_error(job_name, error, operation="StopModelCustomizationJob") from error
    return True


# --------------------------------------------------------------------------------------------------
# The deployed job
# --------------------------------------------------------------------------------------------------

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
    value = parameters.get(ssm, environment, fine_tuning, DEPLOYED_JOB_PARAMETER)
    return None if value is None else DeployedJob.from_json(value)


def record_deployed_job(ssm: Any, environment: str, fine_tuning: str, job: DeployedJob) -> None:
    parameters.put(ssm, environment, fine_tuning, DEPLOYED_JOB_PARAMETER, job.to_json())
