"""The AWS operations of the evaluation gate: start, find, stop and read Bedrock model evaluation
jobs, and generate a custom model's responses for a "bring your own inference" (BYOI) job.

The gate: a completed custom model is made invocable for a while (a provisioned throughput or an
on-demand deployment, done elsewhere), Bedrock evaluates it, the scores decide whether it is served.
The facts this module relies on (shapes, patterns, layouts) are those of botocore 1.44.8's service
models and the Bedrock user guide, collected in the project's evaluation research notes.

Decisions:
- Names. `evaluation_job_name(base, label)` is `<base>-<label>` when that is a valid evaluation job
  name (lowercase letters, digits and '-', at most 63 characters) and the label has no '-'; else the
  readable part is folded to that alphabet, cut, and followed by 10 hex of sha256(base, label). Both
  forms are injective up to a hash collision: a label without '-' is the part after the last '-'.
- Patterns are checked here, before any call: botocore checks only types, required members and
  minimum lengths, the service checks patterns and answers ValidationException, which would come
  late and, for a deployment ARN, say nothing about what to do instead. `EvaluationRequest` collects
  every problem in one ValueError. The constants below are botocore's; a test keeps them equal.
- One model per job: automated jobs take a single model (the API shape allows two, the request's
  documentation says one). Custom against base is two jobs.
- Which metrics go with which job: without a judge the metrics must be the programmatic ones
  (`Builtin.Accuracy|Robustness|Toxicity`); with a judge, none of them (the judge metrics are a
  different list). BYOI needs a judge: Bedrock cannot compute programmatic metrics on responses it
  did not produce. `inference_params` apply only when Bedrock invokes the model.
- Task type: a job without a judge takes a value of botocore's enum; a judge job any
  `[A-Za-z0-9]+`, because judge jobs use `General` (`JUDGE_TASK_TYPE`), which every example of the
  documentation uses and the enum lacks (botocore does not enforce enums).
- Idempotency. A job is looked up by its (deterministic) name first, then created with a
  `clientRequestToken` that is a digest of the whole request, so a retried Create is a no-op in
  Bedrock. A concurrent start that wins the race shows up as ConflictException (or a message saying
  "already exists"); the job of that name is then found and adopted. A found job is returned as it
  is, whatever its status and configuration: evaluation job names are unique per account and
  Region, so a re-run (after a failure) needs another label or base. Limitation: Bedrock answers a
  token it has seen with the job it created then, so after a BatchDeleteEvaluationJob the same
  request would be answered with the deleted job's ARN. This module never deletes jobs; whoever
  does must change the name. A name taken but not listed yet (the list lags) is left to the next
  attempt: the ClientError propagates.
- GetEvaluationJob and StopEvaluationJob take the job ARN only (unlike customization jobs): the ARN
  comes from Create or from ListEvaluationJobs(nameContains=...).
- Errors. ValidationException, AccessDeniedException, ResourceNotFoundException and
  ServiceQuotaExceededException become `EvaluationRejected` (retrying cannot help); throttling and
  internal errors propagate as botocore's ClientError, for the caller's retry or reconcile loop.
- Results. Bedrock writes `<output>/<job-name>/<job-id>/models/<model>/taskTypes/<task>/datasets/
  <dataset>/<uuid>_output.jsonl` (job id: the last part of the job ARN). How it spells a model ARN
  in `<model>` is not documented, so `read_results` lists everything under the job's prefix and
  reads every `*_output.jsonl`; one third-party report of a `<job-name>/<job-name>/<job-id>/` nesting
  is tried when the documented prefix holds none. Scores are not aggregated here.
- BYOI generation (`generate_responses`). Evaluation jobs cannot invoke a custom model deployment, so
  its responses are generated with Converse (the same messages and `inferenceConfig` as the
  `inferenceParams` of a `bedrockModel` job, for a fair comparison) and written as the BYOI dataset.
  Throttling, ModelNotReady, ModelTimeout, ServiceUnavailable and InternalServer errors are retried
  with jittered exponential backoff (on top of botocore's own retries) while the deadline allows.
  A prompt that still fails, or fails with another error, is a failure: counted, its first messages
  kept, and left out of the file (Bedrock scores only the prompts that have a response; the gate
  compares counts). AccessDenied and ResourceNotFound concern the model, not a prompt: they stop the
  run. Nothing is written when no prompt succeeded, or when the deadline passed (DeadlineError): a
  partial file would be evaluated as if it were the whole dataset.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from finetune.aws.endpoints import aware, pages, tag_list
from finetune.aws.errors import error_code, error_message, is_not_found
from finetune.core.deadline import Deadline, DeadlineError
from finetune.core.evaluation import MAX_PROMPTS as MAX_DATASET_PROMPTS
from finetune.core.evaluation import PROGRAMMATIC_METRICS
from finetune.core.names import parse_s3_object_uri, parse_s3_uri, s3_uri

# botocore 1.44.8, bedrock 2023-04-20 (a test compares them with the installed service model).
EVALUATION_JOB_NAME = re.compile(r"[a-z0-9](-*[a-z0-9]){0,62}")
MAX_EVALUATION_JOB_NAME_CHARS = 63
EVALUATION_JOB_ARN = re.compile(
    r"arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:evaluation-job/[a-z0-9]{12}"
)
S3_URI = re.compile(
    r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?"
)
MAX_S3_URI_CHARS = 1024
ROLE_ARN = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
KMS_KEY_ID = re.compile(
    r"(arn:aws(-[^:]+)?:kms:[a-zA-Z0-9-]*:[0-9]{12}:((key/[a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)))"
    r"|([a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)"
)
INFERENCE_SOURCE_IDENTIFIER = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9._-]){0,255}")
DATASET_OR_METRIC_NAME = re.compile(r"[0-9a-zA-Z-_.]+")
MAX_DATASET_OR_METRIC_NAME_CHARS = 63
TASK_TYPE = re.compile(r"[A-Za-z0-9]{1,63}")
EVALUATED_MODEL_IDENTIFIER = re.compile(
    r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:((:foundation-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}"
    r"([.:]?[a-z0-9-]{1,63}))|([0-9]{12}:provisioned-model/[a-z0-9]{12})|([0-9]{12}:imported-model/"
    r"[a-z0-9]{12})|([0-9]{12}:application-inference-profile/[a-z0-9]{12})|([0-9]{12}:inference-profile/"
    r"(([a-z-]{2,8}.)[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63})))|([0-9]{12}:"
    r"(default-prompt-router|prompt-router)/[a-zA-Z0-9-:.]+)))|(([a-z]{2,4}[.]{1})([a-z0-9-]{1,63}[.]{1}"
    r"[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63})))|([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63}))"
    r"|arn:aws(-[^:]+)?:sagemaker:[a-z0-9-]{1,20}:[0-9]{12}:endpoint/[a-z0-9-]{1,63}"
)
EVALUATOR_MODEL_IDENTIFIER = re.compile(
    r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:((:foundation-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}"
    r"([.:]?[a-z0-9-]{1,63}))|([0-9]{12}:inference-profile/(([a-z-]{2,8}.)[a-z0-9-]{1,63}[.]{1}"
    r"[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63})))))$|(^[a-z0-9-]+[.][a-z0-9-]+([.][a-z0-9-]+)*(:[a-z0-9-]+)?$)"
    r"|^[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([a-z0-9-]{1,63}[.]){0,2}[a-z0-9-]{1,63}([:][a-z0-9-]{1,63})"
    r"{0,2}(/[a-z0-9]{12}|)"
)
MAX_TAGS = 200

PROGRAMMATIC_TASK_TYPES = frozenset(
    {"Summarization", "Classification", "QuestionAndAnswer", "Generation", "Custom"}
)
MAX_METRICS = 25

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})
REJECTED_CODES = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
    }
)
CONFLICT = "ConflictException"
NAME_HASH_CHARS = 10

HINTS: Mapping[str, str] = {
    "AccessDeniedException": (
        "the caller needs bedrock:CreateEvaluationJob (and Get/List/Stop) and iam:PassRole on the service "
        "role; the role must trust bedrock.amazonaws.com, read the dataset, write the output prefix and "
        "invoke the evaluated model and the judge"
    ),
    "ServiceQuotaExceededException": "too many evaluation jobs run at once: wait for one to end, or raise the quota",
    "ValidationException": "Bedrock's message names the field it rejected",
    "ResourceNotFoundException": "check the evaluated model, the judge and the KMS key identifiers and the job ARN",
}

# generate_responses
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ServiceUnavailableException",
        "InternalServerException",
    }
)
FATAL_CODES = frozenset({"AccessDeniedException", "ResourceNotFoundException"})
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 20.0
KEPT_FAILURE_MESSAGES = 5
OUTPUT_SUFFIX = "_output.jsonl"


# --------------------------------------------------------------------------------------------------
# Clients (anything with boto3's method names and keyword arguments)
# --------------------------------------------------------------------------------------------------


class EvaluationClient(Protocol):
    def create_evaluation_job(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def get_evaluation_job(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def list_evaluation_jobs(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def stop_evaluation_job(self, **kwargs: Any) -> Mapping[str, Any]: ...


class RuntimeClient(Protocol):
    def converse(self, **kwargs: Any) -> Mapping[str, Any]: ...


class S3Client(Protocol):
    def get_object(self, **kwargs: Any) -> Any: ...

    def put_object(self, **kwargs: Any) -> Any: ...

    def list_objects_v2(self, **kwargs: Any) -> Any: ...


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class EvaluationRejected(Exception):  # noqa: N818 (the project's name for this outcome, as JobRejected)
    """Bedrock refused a call about an evaluation job; retrying the same call cannot help."""

    def __init__(self, code: str, message: str, *, job: str | None = None) -> None:
        self.code = code
        self.message = message
        self.job = job
        text = f"Bedrock rejected evaluation job {job}: {code}: {message}" if job else f"{code}: {message}"
        hint = HINTS.get(code)
        if hint:
            text += f" (what to do: {hint})"
        super().__init__(text)


class EvaluationResultsError(RuntimeError):
    """An evaluation job's output is missing or unreadable."""


class GenerationError(RuntimeError):
    """Responses for a BYOI evaluation could not be generated; nothing was written."""


def rejected_or_raise(error: ClientError, job: str) -> EvaluationRejected:
    """The EvaluationRejected for a final error; anything transient is re-raised as it is."""
    code = error_code(error)
    if code in REJECTED_CODES:
        return EvaluationRejected(code, error_message(error), job=job)
    raise error


# --------------------------------------------------------------------------------------------------
# Names and requests
# --------------------------------------------------------------------------------------------------


def evaluation_job_name(base: str, label: str) -> str:
    """A valid, deterministic EvaluationJobName for (base, label), e.g.
    `dev-support-assistant-1a2b3c4d5r1-custom`; see the module docstring for the long form."""
    if not base or not label:
        raise ValueError(f"an evaluation job name needs a base and a label, got {base!r} and {label!r}")
    readable = f"{base}-{label}"
    if "-" not in label and is_evaluation_job_name(readable):
        return readable
    digest = hashlib.sha256(f"{base}\n{label}".encode()).hexdigest()[:NAME_HASH_CHARS]
    folded = re.sub(r"[^a-z0-9]+", "-", readable.lower()).strip("-")
    head = folded[: MAX_EVALUATION_JOB_NAME_CHARS - NAME_HASH_CHARS - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def is_evaluation_job_name(name: str) -> bool:
    return len(name) <= MAX_EVALUATION_JOB_NAME_CHARS and EVALUATION_JOB_NAME.fullmatch(name) is not None


def job_id(job_arn: str) -> str:
    """The 12-character id at the end of an evaluation job ARN (the folder of its output)."""
    if not EVALUATION_JOB_ARN.fullmatch(job_arn):
        raise ValueError(
            f"not an evaluation job ARN: {job_arn!r}; expected arn:aws:bedrock:<region>:<account>:"
            "evaluation-job/<12 characters> (Get and Stop take the ARN, not the name)"
        )
    return job_arn.rsplit("/", 1)[-1]


def dataset_name_of(dataset_s3_uri: str) -> str:
    """The dataset's name in the job (and its output folder): its file name without `.jsonl`."""
    _, key = parse_s3_uri(dataset_s3_uri)
    stem = key.rstrip("/").rsplit("/", 1)[-1].removesuffix(".jsonl")
    name = re.sub(r"[^0-9a-zA-Z_.-]+", "-", stem)[:MAX_DATASET_OR_METRIC_NAME_CHARS]
    return name or "dataset"


def s3_uri_problem(field_name: str, uri: str) -> str | None:
    if len(uri) > MAX_S3_URI_CHARS or not S3_URI.fullmatch(uri):
        return (
            f"{field_name} {uri!r} is not an S3 URI Bedrock accepts: s3://<bucket>/<key>, key segments of "
            "letters, digits and -!_*'(). only (no '=', '+', ':', '%' or spaces)"
        )
    return None


@dataclass(frozen=True)
class InferenceParams:
    """The generation settings, spelled for Converse (`inferenceConfig`) and for a job's
    `bedrockModel.inferenceParams` (the same, as a JSON string)."""

    max_tokens: int
    temperature: float

    def problems(self) -> list[str]:
        found = []
        if self.max_tokens < 1:
            found.append(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 1.0:
            found.append(f"temperature must be between 0 and 1, got {self.temperature}")
        return found

    def converse_config(self) -> dict[str, Any]:
        return {"maxTokens": self.max_tokens, "temperature": self.temperature}

    def to_json(self) -> str:
        return json.dumps({"inferenceConfig": self.converse_config()}, separators=(",", ":"))


@dataclass(frozen=True)
class EvaluationRequest:
    """One automated evaluation job of one model on one dataset.

    Exactly one of `model_identifier` (a PT ARN, a foundation-model id or ARN, an inference profile:
    Bedrock invokes it) and `precomputed_label` (BYOI: the dataset carries the responses, labelled so)
    is given. `judge_model` makes it an LLM-as-judge job. `dataset_name` defaults to the dataset's
    file name. `tags` become the job's tags. Raises ValueError listing every problem.
    """

    job_name: str
    role_arn: str
    dataset_s3_uri: str
    output_s3_uri: str
    metrics: tuple[str, ...]
    task_type: str
    judge_model: str | None = None
    model_identifier: str | None = None
    precomputed_label: str | None = None
    inference_params: InferenceParams | None = None
    kms_key_arn: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    dataset_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        problems = self.problems()
        if problems:
            raise ValueError(
                f"evaluation job {self.job_name!r} cannot be requested:\n"
                + "\n".join(f"- {p}" for p in problems)
            )

    def problems(self) -> list[str]:
        found: list[str] = []
        if not is_evaluation_job_name(self.job_name):
            found.append(
                f"job_name {self.job_name!r} must match {EVALUATION_JOB_NAME.pattern} (lowercase letters, "
                f"digits, '-') and have at most {MAX_EVALUATION_JOB_NAME_CHARS} characters"
            )
        if not ROLE_ARN.fullmatch(self.role_arn):
            found.append(f"role_arn {self.role_arn!r} is not an IAM role ARN")
        for field_name, uri in (
            ("dataset_s3_uri", self.dataset_s3_uri),
            ("output_s3_uri", self.output_s3_uri),
        ):
            problem = s3_uri_problem(field_name, uri)
            if problem:
                found.append(problem)
        if not self.dataset_s3_uri.endswith(".jsonl"):
            found.append(f"dataset_s3_uri {self.dataset_s3_uri!r} must name a .jsonl file")
        found += self._model_problems()
        found += self._metric_problems()
        if not TASK_TYPE.fullmatch(self.task_type):
            found.append(f"task_type {self.task_type!r} must be 1-63 letters and digits")
        elif self.judge_model is None and self.task_type not in PROGRAMMATIC_TASK_TYPES:
            found.append(
                f"task_type {self.task_type!r}: a job without a judge takes one of "
                f"{', '.join(sorted(PROGRAMMATIC_TASK_TYPES))}"
            )
        if self.dataset_name is not None and not (
            DATASET_OR_METRIC_NAME.fullmatch(self.dataset_name)
            and len(self.dataset_name) <= MAX_DATASET_OR_METRIC_NAME_CHARS
        ):
            found.append(f"dataset_name {self.dataset_name!r} must be 1-63 of letters, digits and -_.")
        if self.kms_key_arn is not None and not KMS_KEY_ID.fullmatch(self.kms_key_arn):
            found.append(f"kms_key_arn {self.kms_key_arn!r} is not a KMS key or alias ARN, key id or alias")
        found += tag_problems(self.tags)
        return found

    def _model_problems(self) -> list[str]:
        found: list[str] = []
        if (self.model_identifier is None) == (self.precomputed_label is None):
            found.append(
                "give exactly one of model_identifier (Bedrock invokes the model) and precomputed_label "
                "(the dataset carries the model's responses)"
            )
        if self.model_identifier is not None and not EVALUATED_MODEL_IDENTIFIER.fullmatch(
            self.model_identifier
        ):
            found.append(
                f"model_identifier {self.model_identifier!r} is not a model an evaluation job can invoke (a "
                "foundation model, inference profile, provisioned throughput, imported model or prompt "
                "router); a custom model or an on-demand custom model deployment cannot be: generate its "
                "responses (generate_responses) and give precomputed_label instead"
            )
        if self.precomputed_label is not None:
            if not INFERENCE_SOURCE_IDENTIFIER.fullmatch(self.precomputed_label):
                found.append(
                    f"precomputed_label {self.precomputed_label!r} must match {INFERENCE_SOURCE_IDENTIFIER.pattern}"
                    " (no ':' or '/': not an ARN or a versioned model id)"
                )
            if self.judge_model is None:
                found.append("precomputed_label (bring your own inference) needs a judge_model")
            if self.inference_params is not None:
                found.append("inference_params apply only when Bedrock invokes the model (model_identifier)")
        if self.judge_model is not None and not EVALUATOR_MODEL_IDENTIFIER.fullmatch(self.judge_model):
            found.append(
                f"judge_model {self.judge_model!r} must be a foundation model id or ARN or a system inference "
                "profile (a judge runs on demand)"
            )
        if self.inference_params is not None:
            found += [f"inference_params: {problem}" for problem in self.inference_params.problems()]
        return found

    def _metric_problems(self) -> list[str]:
        found: list[str] = []
        if not 1 <= len(self.metrics) <= MAX_METRICS:
            found.append(f"metrics: 1 to {MAX_METRICS} metric names, got {len(self.metrics)}")
        if len(set(self.metrics)) != len(self.metrics):
            found.append(f"metrics {list(self.metrics)} name a metric twice")
        for metric in self.metrics:
            if not DATASET_OR_METRIC_NAME.fullmatch(metric) or len(metric) > MAX_DATASET_OR_METRIC_NAME_CHARS:
                found.append(f"metric {metric!r} must be 1-63 of letters, digits and -_.")
        programmatic = sorted(set(self.metrics) & PROGRAMMATIC_METRICS)
        if self.judge_model is None and len(programmatic) != len(self.metrics):
            others = sorted(set(self.metrics) - PROGRAMMATIC_METRICS)
            found.append(f"metrics {others} need a judge_model (without one: {sorted(PROGRAMMATIC_METRICS)})")
        if self.judge_model is not None and programmatic:
            found.append(
                f"metrics {programmatic} are computed without a judge: run them in a job without judge_model"
            )
        return found

    @property
    def evaluated_model(self) -> str:
        """The model identifier or BYOI label, as the job (and its output) names the model."""
        return self.precomputed_label or self.model_identifier or ""

    def create_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of boto3's `create_evaluation_job` for this request."""
        metric_config: dict[str, Any] = {
            "taskType": self.task_type,
            "dataset": {
                "name": self.dataset_name or dataset_name_of(self.dataset_s3_uri),
                "datasetLocation": {"s3Uri": self.dataset_s3_uri},
            },
            "metricNames": list(self.metrics),
        }
        automated: dict[str, Any] = {"datasetMetricConfigs": [metric_config]}
        if self.judge_model is not None:
            automated["evaluatorModelConfig"] = {
                "bedrockEvaluatorModels": [{"modelIdentifier": self.judge_model}]
            }
        model: dict[str, Any]
        if self.precomputed_label is not None:
            model = {"precomputedInferenceSource": {"inferenceSourceIdentifier": self.precomputed_label}}
        else:
            bedrock_model: dict[str, Any] = {"modelIdentifier": self.model_identifier}
            if self.inference_params is not None:
                bedrock_model["inferenceParams"] = self.inference_params.to_json()
            model = {"bedrockModel": bedrock_model}
        kwargs: dict[str, Any] = {
            "jobName": self.job_name,
            "roleArn": self.role_arn,
            "applicationType": "ModelEvaluation",
            "evaluationConfig": {"automated": automated},
            "inferenceConfig": {"models": [model]},
            "outputDataConfig": {"s3Uri": self.output_s3_uri},
        }
        if self.kms_key_arn is not None:
            kwargs["customerEncryptionKeyId"] = self.kms_key_arn
        if self.tags:
            kwargs["jobTags"] = tag_list(self.tags)
        canonical = json.dumps(kwargs, sort_keys=True, separators=(",", ":"))
        return {**kwargs, "clientRequestToken": hashlib.sha256(canonical.encode()).hexdigest()}


def tag_problems(tags: Mapping[str, str]) -> list[str]:
    found = []
    if len(tags) > MAX_TAGS:
        found.append(f"tags: at most {MAX_TAGS}, got {len(tags)}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            found.append(f"tag {key!r}: keys have 1-128 characters, values at most 256")
    return found


# --------------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationState:
    """An evaluation job as Bedrock reports it; `started` is True only for the call that created it."""

    job_name: str
    job_arn: str
    status: str
    failure_messages: tuple[str, ...] = ()
    creation_time: datetime | None = None
    started: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


def state_of(job: Mapping[str, Any], *, started: bool = False) -> EvaluationState:
    created = job.get("creationTime")
    return EvaluationState(
        job_name=str(job["jobName"]),
        job_arn=str(job["jobArn"]),
        status=str(job["status"]),
        failure_messages=tuple(str(message) for message in job.get("failureMessages") or ()),
        creation_time=aware(created) if isinstance(created, datetime) else None,
        started=started,
    )


def start_evaluation(bedrock: EvaluationClient, request: EvaluationRequest) -> EvaluationState:
    """The request's job: found by name, else created (or adopted after losing a creation race).

    Raises EvaluationRejected when Bedrock refuses for good; transient errors propagate.
    """
    found = find_evaluation(bedrock, request.job_name)
    if found is not None:
        return found
    try:
        created = bedrock.create_evaluation_job(**request.create_kwargs())
    except ClientError as error:
        if error_code(error) == CONFLICT or "already exists" in error_message(error).lower():
            adopted = find_evaluation(bedrock, request.job_name)
            if adopted is not None:
                return adopted
            raise  # the name is taken but not listed yet: transient, the next attempt adopts it
        raise rejected_or_raise(error, request.job_name) from error
    return EvaluationState(
        job_name=request.job_name, job_arn=str(created["jobArn"]), status=IN_PROGRESS, started=True
    )


def find_evaluation(bedrock: EvaluationClient, job_name: str) -> EvaluationState | None:
    """The evaluation job named exactly `job_name`, or None. A Failed job's failure messages are
    read from the job itself (the list does not carry them)."""
    try:
        matches = [
            summary
            for summary in pages(bedrock.list_evaluation_jobs, "jobSummaries", nameContains=job_name)
            if summary.get("jobName") == job_name
        ]
    except ClientError as error:
        raise rejected_or_raise(error, job_name) from error
    if not matches:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    newest = max(
        matches,
        key=lambda summary: (
            aware(summary["creationTime"]) if isinstance(summary.get("creationTime"), datetime) else epoch
        ),
    )
    if newest.get("status") == "Failed":
        return get_evaluation(bedrock, str(newest["jobArn"]))
    return state_of(newest)


def get_evaluation(bedrock: EvaluationClient, job_arn: str) -> EvaluationState:
    """The job of this ARN (Bedrock's GetEvaluationJob takes no name). Raises EvaluationRejected
    (ResourceNotFoundException when there is none)."""
    job_id(job_arn)
    try:
        job = bedrock.get_evaluation_job(jobIdentifier=job_arn)
    except ClientError as error:
        raise rejected_or_raise(error, job_arn) from error
    return state_of(job)


def stop_evaluation(bedrock: EvaluationClient, job_arn: str) -> bool:
    """Ask Bedrock to stop the job if it is InProgress: True when a stop was requested. A job that is
    gone, already ending or ended (also between the look-up and the stop) is False, not an error."""
    state = _state_or_none(bedrock, job_arn)
    if state is None or state.status != IN_PROGRESS:
        return False
    try:
        bedrock.stop_evaluation_job(jobIdentifier=job_arn)
    except ClientError as error:
        if is_not_found(error):
            return False
        if error_code(error) in (CONFLICT, "ValidationException"):
            again = _state_or_none(bedrock, job_arn)
            if again is None or again.status != IN_PROGRESS:
                return False
        raise rejected_or_raise(error, job_arn) from error
    return True


def _state_or_none(bedrock: EvaluationClient, job_arn: str) -> EvaluationState | None:
    try:
        return get_evaluation(bedrock, job_arn)
    except EvaluationRejected as rejected:
        if rejected.code == "ResourceNotFoundException":
            return None
        raise


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def object_keys(s3: S3Client, bucket: str, prefix: str, page_size: int = 1000) -> Iterator[str]:
    """Every key under `prefix`, across pages."""
    token: str | None = None
    while True:
        response = s3.list_objects_v2(
            Bucket=bucket, Prefix=prefix, MaxKeys=page_size, **({"ContinuationToken": token} if token else {})
        )
        for item in response.get("Contents") or []:
            yield str(item["Key"])
        token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        if not token:
            return


def read_results(
    s3: S3Client, output_s3_uri: str, job_name: str, job_arn: str, *, page_size: int = 1000
) -> list[dict[str, Any]]:
    """Every result line (one per prompt Bedrock scored) of every `*_output.jsonl` the job wrote,
    in key order. Raises EvaluationResultsError when there is none or one is not JSON objects."""
    bucket, prefix = parse_s3_uri(output_s3_uri)
    base = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
    identifier = job_id(job_arn)
    documented = f"{base}{job_name}/{identifier}/"
    keys: list[str] = []
    for job_prefix in (documented, f"{base}{job_name}/{job_name}/{identifier}/"):
        keys = sorted(
            key for key in object_keys(s3, bucket, job_prefix, page_size) if key.endswith(OUTPUT_SUFFIX)
        )
        if keys:
            break
    if not keys:
        raise EvaluationResultsError(
            f"evaluation job {job_name} ({job_arn}) left no *{OUTPUT_SUFFIX} under "
            f"{s3_uri(bucket, documented)}: Bedrock writes them when the job is Completed; a Completed job "
            "without them wrote elsewhere (check its outputDataConfig) or its output was deleted"
        )
    rows: list[dict[str, Any]] = []
    for key in keys:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise EvaluationResultsError(f"{s3_uri(bucket, key)}:{number}: not JSON ({error})") from error
            if not isinstance(row, dict):
                raise EvaluationResultsError(f"{s3_uri(bucket, key)}:{number}: not a JSON object")
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# Bring your own inference: the custom model's responses, generated with Converse
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """One dataset record: what the evaluation keeps of it."""

    prompt: str
    reference_response: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class GenerationResult:
    """What `generate_responses` wrote and what it cost (token totals, for cost reporting)."""

    responses_s3_uri: str
    label: str
    prompts: int
    succeeded: int
    failed: int
    failure_messages: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    retries: int


@dataclass(frozen=True)
class _Answer:
    response: str | None = None
    failure: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0


def read_prompts(s3: S3Client, dataset_s3_uri: str) -> list[Prompt]:
    """The dataset's records, in order; raises GenerationError listing the first problems."""
    bucket, key = parse_s3_object_uri(dataset_s3_uri)
    text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    prompts: list[Prompt] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            problems.append(f"{dataset_s3_uri}:{number}: not JSON ({error})")
            continue
        prompt = record.get("prompt") if isinstance(record, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(f'{dataset_s3_uri}:{number}: no "prompt" (a non-empty string)')
            continue
        reference, category = record.get("referenceResponse"), record.get("category")
        if reference is not None and not isinstance(reference, str):
            problems.append(f'{dataset_s3_uri}:{number}: "referenceResponse" must be a string')
            continue
        if category is not None and not isinstance(category, str):
            problems.append(f'{dataset_s3_uri}:{number}: "category" must be a string')
            continue
        prompts.append(Prompt(prompt, reference, category))
    if not prompts and not problems:
        problems.append(f"{dataset_s3_uri}: no records")
    if len(prompts) > MAX_DATASET_PROMPTS:
        problems.append(
            f"{dataset_s3_uri}: {len(prompts)} prompts; an evaluation job takes at most {MAX_DATASET_PROMPTS}"
        )
    if problems:
        raise GenerationError("the evaluation dataset cannot be used:\n" + "\n".join(problems[:10]))
    return prompts


def byoi_line(prompt: Prompt, response: str, label: str) -> str:
    """One line of a BYOI dataset: the record and the model's one response, labelled."""
    record: dict[str, Any] = {"prompt": prompt.prompt}
    if prompt.reference_response is not None:
        record["referenceResponse"] = prompt.reference_response
    if prompt.category is not None:
        record["category"] = prompt.category
    record["modelResponses"] = [{"response": response, "modelIdentifier": label}]
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential backoff: threads throttled together do not retry together."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0**attempt)


def generate_responses(
    runtime: RuntimeClient,
    s3: S3Client,
    *,
    model_id: str,
    dataset_s3_uri: str,
    responses_s3_uri: str,
    label: str,
    max_tokens: int,
    temperature: float,
    deadline: Deadline,
    workers: int = 4,
    kms_key_arn: str | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> GenerationResult:
    """Ask `model_id` (a deployment or PT ARN, a model id) for a response to every prompt of the
    dataset, and write them as the BYOI dataset of a judge job whose precomputed label is `label`.

    Raises DeadlineError when `deadline` passes first, GenerationError when the dataset is unusable,
    the model refuses (AccessDenied, ResourceNotFound) or no prompt succeeded; nothing is written then.
    """
    params = InferenceParams(max_tokens, temperature)
    problems = params.problems()
    if not INFERENCE_SOURCE_IDENTIFIER.fullmatch(label):
        problems.append(f"label {label!r} must match {INFERENCE_SOURCE_IDENTIFIER.pattern}")
    problems += [p for p in (s3_uri_problem("responses_s3_uri", responses_s3_uri),) if p]
    if not responses_s3_uri.endswith(".jsonl"):
        problems.append(f"responses_s3_uri {responses_s3_uri!r} must name a .jsonl file")
    if workers < 1 or max_attempts < 1:
        problems.append(f"workers ({workers}) and max_attempts ({max_attempts}) must be at least 1")
    if problems:
        raise ValueError("cannot generate responses:\n" + "\n".join(f"- {p}" for p in problems))
    out_bucket, out_key = parse_s3_object_uri(responses_s3_uri)

    check_deadline(deadline, f"reading {dataset_s3_uri}", responses_s3_uri)
    prompts = read_prompts(s3, dataset_s3_uri)
    generation = _Generation(runtime, model_id, params, deadline, max_attempts, sleep, responses_s3_uri)
    answers = generation.run([prompt.prompt for prompt in prompts], workers)

    lines = [
        byoi_line(prompt, answer.response, label)
        for prompt, answer in zip(prompts, answers, strict=True)
        if answer.response is not None
    ]
    failures = [answer.failure for answer in answers if answer.failure is not None]
    if not lines:
        raise GenerationError(
            f"no prompt of {dataset_s3_uri} got a response from {model_id}; nothing was written. First "
            "failures: " + "; ".join(failures[:KEPT_FAILURE_MESSAGES])
        )
    check_deadline(deadline, f"writing {responses_s3_uri}", responses_s3_uri)
    put: dict[str, Any] = {
        "Bucket": out_bucket,
        "Key": out_key,
        "Body": ("\n".join(lines) + "\n").encode("utf-8"),
        "ContentType": "application/jsonl",
    }
    if kms_key_arn:
        put.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_arn)
    s3.put_object(**put)
    return GenerationResult(
        responses_s3_uri=responses_s3_uri,
        label=label,
        prompts=len(prompts),
        succeeded=len(lines),
        failed=len(failures),
        failure_messages=tuple(failures[:KEPT_FAILURE_MESSAGES]),
        input_tokens=sum(answer.input_tokens for answer in answers),
        output_tokens=sum(answer.output_tokens for answer in answers),
        retries=sum(answer.retries for answer in answers),
    )


def check_deadline(deadline: Deadline, before: str, responses_s3_uri: str) -> None:
    if deadline.expired:
        raise DeadlineError(
            f"stopped before {before}: the deadline has passed; nothing was written to {responses_s3_uri}"
        )


class _Stopped(Exception):  # noqa: N818 (internal: another prompt ended the run)
    """Another prompt ended the run (deadline or a refusal); this one was not asked."""


@dataclass(frozen=True)
class _Generation:
    """One run of Converse calls over a dataset's prompts, in a thread pool."""

    runtime: RuntimeClient
    model_id: str
    params: InferenceParams
    deadline: Deadline
    max_attempts: int
    sleep: Callable[[float], None]
    responses_s3_uri: str
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, prompts: list[str], workers: int) -> list[_Answer]:
        """The answers in prompt order; the first error that ended the run is raised after every
        running call has returned (calls not started yet are not made)."""
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="byoi") as pool:
            futures = [
                pool.submit(self.ask, prompt, f"prompt {index + 1} of {len(prompts)}")
                for index, prompt in enumerate(prompts)
            ]
            wait(futures, return_when=FIRST_EXCEPTION)
            if self.stop.is_set():
                pool.shutdown(wait=True, cancel_futures=True)
        errors = [
            error
            for future in futures
            if not future.cancelled()
            and (error := future.exception()) is not None
            and not isinstance(error, _Stopped)
        ]
        if errors:
            raise errors[0]
        return [future.result() for future in futures]

    def ask(self, prompt: str, where: str) -> _Answer:
        try:
            return self._ask(prompt, where)
        except BaseException:
            self.stop.set()
            raise

    def _ask(self, prompt: str, where: str) -> _Answer:
        for attempt in range(self.max_attempts):
            if self.stop.is_set():
                raise _Stopped(where)
            check_deadline(self.deadline, f"asking {self.model_id} for {where}", self.responses_s3_uri)
            try:
                response = self.runtime.converse(
                    modelId=self.model_id,
                    messages=[{"role": "user", "content": [{"text": prompt}]}],
                    inferenceConfig=self.params.converse_config(),
                )
            except ClientError as error:
                code, message = error_code(error), error_message(error)
                if code in FATAL_CODES:
                    raise GenerationError(
                        f"{self.model_id} cannot be invoked ({code}: {message}); nothing was written"
                    ) from error
                if code in RETRYABLE_CODES and attempt + 1 < self.max_attempts:
                    delay = backoff_seconds(attempt)
                    if delay >= self.deadline.remaining():
                        raise DeadlineError(
                            f"stopped before retrying {where} ({code}): the deadline comes first; nothing "
                            f"was written to {self.responses_s3_uri}"
                        ) from error
                    self.sleep(delay)
                    continue
                tries = f" after {attempt + 1} attempts" if attempt else ""
                return _Answer(failure=f"{where}: {code}: {message}{tries}", retries=attempt)
            usage = response.get("usage") or {}
            input_tokens = int(usage.get("inputTokens") or 0)
            output_tokens = int(usage.get("outputTokens") or 0)
            text = response_text(response)
            failure = None
            if text is None:
                failure = f"{where}: no text in the response (stopReason {response.get('stopReason')})"
            return _Answer(text, failure, input_tokens, output_tokens, retries=attempt)
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover


def response_text(response: Mapping[str, Any]) -> str | None:
    """The text blocks of a Converse answer, joined; None when it has none."""
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    texts = [str(block["text"]) for block in content if isinstance(block, dict) and "text" in block]
    return "".join(texts) if texts else None
