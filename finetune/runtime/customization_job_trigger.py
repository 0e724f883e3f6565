"""Starting customization jobs: on deploy (custom resource) and on an upload of new training data (S3).

1. Custom resource `Custom::CustomizationJob` (CloudFormation sends every property as a string).
   Properties: Environment, FineTuning, BaseModelIdentifier, CustomizationType, TeacherModel ("" for
   none), Hyperparameters (a JSON object of string -> string), TrainingDataS3Uri, TrainingSha256,
   ValidationDataS3Uri and ValidationSha256 ("" for none), RoleArn, OutputS3Uri, KmsKeyArn ("" for
   none), JobName, CustomModelName, JobDigest, StopOnDelete ("true" | "false").
   Attributes: JobArn, JobName, CustomModelName, Status. Physical id: the job name.
   - Create/Update: the job of the properties' spec is found if it runs or Completed; otherwise
     (none yet, or it Failed or was Stopped) its next generation is started once the data in S3
     passed validation (and its sha256 check). The JobSpec is rebuilt from the properties and must
     name the same job and digest as JobName/JobDigest (synth and Lambda must agree). The job is
     recorded as the deployed job (serving serves its model), except that an Update that leaves the
     job unchanged keeps a newer upload's job recorded.
   - Delete: see `_delete`; never deletes data or models.
2. Object events for objects under FINETUNE_INCOMING_PREFIX (default "incoming/"): S3 event
   notifications (`Records`, keys URL-encoded) or S3 events from EventBridge (`source` "aws.s3",
   `detail-type` "Object Created", keys as stored); other keys and event types are ignored. Settings:
   FINETUNE_JOB_TEMPLATE (JSON with the custom resource's keys except TrainingDataS3Uri,
   TrainingSha256, JobName, CustomModelName, JobDigest, StopOnDelete), FINETUNE_TOPIC_ARN,
   FINETUNE_TRAINING_PREFIX (default "training/"). A valid upload is staged (content-addressed) under
   `<training prefix><fine-tuning>/<sha256>/<file name>` and its job started; an invalid one is
   reported to the topic and tagged finetune:status=rejected. Nothing is deleted. Rejections (of the
   data or by Bedrock) do not raise: an S3 retry would only repeat them; Bedrock's transient errors
   (throttling, internal errors) do, so that Lambda retries the event.

Decisions:
- Notifications and object tags are best effort: a failure to publish or tag is logged (level ERROR,
  action "notify-failed"/"tag-failed") and not raised, because a retry could not undo what happened
  and would repeat a rejection notice. A job-started notice is sent only by the call that started it.
- Unexpected errors of one record (S3 access, a missing setting) are raised after every record of the
  event was handled, so Lambda's retry replays the event; the handling is idempotent.
- The staged file name keeps only the characters Bedrock's S3 URI pattern accepts in a key (others
  become "-"): the sha256 folder identifies the data, the name is only for people.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from finetune.aws import jobs, staging
from finetune.core import names as identity
from finetune.core.names import JobSpec
from finetune.runtime import responder as custom_resource

if TYPE_CHECKING:
    from finetune.core.formats import DatasetLimits

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

RESOURCE_TYPE = "Custom::CustomizationJob"
ATTRIBUTE_NAMES = ("JobArn", "JobName", "CustomModelName", "Status")
DEFAULT_INCOMING_PREFIX = "incoming/"
DEFAULT_TRAINING_PREFIX = "training/"
STATUS_TAG = "finetune:status"
JOB_TAG = "finetune:job"
MAX_OBJECT_TAGS = 10  # S3's limit per object
MAX_SUBJECT_CHARS = 100  # SNS's limit
BATCH_SIZE_KEY = "batchSize"
TEMPLATE_REQUIRED = (
    "Environment",
    "FineTuning",
    "BaseModelIdentifier",
    "CustomizationType",
    "RoleArn",
    "OutputS3Uri",
)
PROPERTIES_REQUIRED = (*TEMPLATE_REQUIRED, "TrainingDataS3Uri", "TrainingSha256", "JobName", "JobDigest")
NOT_FOUND_CODES = ("NoSuchKey", "404", "NotFound")
# Bedrock errors worth another try of the same upload event (Lambda retries a raised error).
TRANSIENT_CODES = frozenset({"ThrottlingException", "InternalServerException", "ServiceUnavailableException"})


def _client_config() -> Config:
    return Config(retries={"mode": "adaptive", "max_attempts": 8})


# Created on first use, not at import: keeps cold starts low and lets tests point them at moto.
@cache
def bedrock_client() -> Any:
    return boto3.client("bedrock", config=_client_config())


@cache
def s3_client() -> Any:
    return boto3.client("s3", config=_client_config())


@cache
def sns_client() -> Any:
    return boto3.client("sns", config=_client_config())


@cache
def ssm_client() -> Any:
    return boto3.client("ssm", config=_client_config())


def _log(action: str, **fields: Any) -> None:
    LOG.info(json.dumps({"action": action, **fields}, default=str, sort_keys=True))


def _log_error(action: str, **fields: Any) -> None:
    LOG.error(json.dumps({"action": action, **fields}, default=str, sort_keys=True))


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" in event:
        return custom_resource.respond(event, customization_job, context=context)
    uploads = uploads_in(event)
    if uploads is not None:
        return handle_uploads(uploads)
    raise ValueError(
        f"unrecognised event (keys {sorted(event)}): expected a CloudFormation custom resource request "
        f"({RESOURCE_TYPE}), an S3 event notification or an S3 event from EventBridge"
    )


@dataclass(frozen=True)
class Upload:
    """One object event: the object, whether it was created, and another spelling of its key to try.

    S3 event notifications URL-encode the key ("my data.jsonl" -> "my+data.jsonl"): it is decoded.
    EventBridge's S3 events carry the key as stored (AWS's examples show ":" unencoded); should one
    arrive encoded after all, its decoded spelling is tried when the key as given does not exist.
    """

    bucket: str
    key: str
    created: bool
    event_name: str
    alternative_key: str | None = None

    @property
    def uri(self) -> str:
        return jobs.s3_uri(self.bucket, self.key)


def uploads_in(event: Mapping[str, Any]) -> list[Upload] | None:
    """The object events an S3 notification or an EventBridge S3 event holds; None for other events."""
    records = event.get("Records")
    if isinstance(records, list) and any(_is_s3_record(record) for record in records):
        uploads = []
        for record in records:
            if not _is_s3_record(record):
                _log("ignored", reason="not an S3 record", source=str(record)[:200])
                continue
            name = str(record.get("eventName", ""))
            uploads.append(
                Upload(
                    bucket=str(record["s3"]["bucket"]["name"]),
                    key=unquote_plus(str(record["s3"]["object"]["key"])),
                    created=name.startswith("ObjectCreated:"),
                    event_name=name,
                )
            )
        return uploads
    detail = event.get("detail")
    if event.get("source") == "aws.s3" and isinstance(detail, Mapping):
        key = str(detail["object"]["key"])
        decoded = unquote_plus(key)
        detail_type = str(event.get("detail-type", ""))
        return [
            Upload(
                bucket=str(detail["bucket"]["name"]),
                key=key,
                created=detail_type == "Object Created",
                event_name=detail_type,
                alternative_key=decoded if decoded != key else None,
            )
        ]
    return None


def _is_s3_record(record: Any) -> bool:
    return isinstance(record, Mapping) and record.get("eventSource") == "aws:s3"


# --------------------------------------------------------------------------------------------------
# Settings -> JobRequest
# --------------------------------------------------------------------------------------------------


class _Settings:
    """Reads string settings, collecting every problem so one error names them all."""

    def __init__(self, values: Mapping[str, Any], where: str) -> None:
        self.values = values
        self.where = where
        self.problems: list[str] = []

    def required(self, name: str) -> str:
        value = self.values.get(name)
        if not isinstance(value, str) or not value:
            self.problems.append(f"{name} is required (a non-empty string), got {value!r}")
            return ""
        return value

    def optional(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.problems.append(f"{name} must be a string, got {value!r}")
            return None
        return value

    def hyperparameters(self, name: str = "Hyperparameters") -> dict[str, str]:
        value = self.values.get(name)
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                self.problems.append(f"{name} is not valid JSON ({error.msg}): {value!r}")
                return {}
        if not isinstance(value, Mapping):
            self.problems.append(f"{name} must be a JSON object of string -> string, got {value!r}")
            return {}
        wrong = sorted(str(key) for key, item in value.items() if not isinstance(item, str))
        if wrong:
            self.problems.append(
                f"{name}: every value must be a string (Bedrock's hyperParameters map); not a string: "
                + ", ".join(wrong)
            )
            return {}
        return {str(key): str(item) for key, item in value.items()}

    def raise_problems(self) -> None:
        if self.problems:
            raise ValueError(f"invalid {self.where}: " + "; ".join(self.problems))


def job_request(
    settings: Mapping[str, Any], *, training_s3_uri: str, training_sha256: str, where: str
) -> jobs.JobRequest:
    """The JobRequest the settings (custom resource properties or the upload template) describe."""
    read = _Settings(settings, where)
    spec = JobSpec(
        environment=read.required("Environment"),
        fine_tuning=read.required("FineTuning"),
        base_model=read.required("BaseModelIdentifier"),
        customization_type=read.required("CustomizationType"),
        hyperparameters=read.hyperparameters(),
        training_sha256=training_sha256,
        validation_sha256=read.optional("ValidationSha256"),
        teacher_model=read.optional("TeacherModel"),
    )
    role_arn = read.required("RoleArn")
    output_s3_uri = read.required("OutputS3Uri")
    validation_s3_uri = read.optional("ValidationDataS3Uri")
    kms_key_arn = read.optional("KmsKeyArn")
    read.raise_problems()
    try:
        return jobs.JobRequest(
            spec=spec,
            role_arn=role_arn,
            training_s3_uri=training_s3_uri,
            validation_s3_uri=validation_s3_uri,
            output_s3_uri=output_s3_uri,
            kms_key_arn=kms_key_arn,
        )
    except ValueError as error:
        raise ValueError(f"invalid {where}: {error}") from error


def request_from_properties(properties: Mapping[str, Any]) -> jobs.JobRequest:
    """The custom resource's JobRequest; ValueError unless it names the job synth named.

    The JobSpec is rebuilt from the properties: its job name, digest and custom model name must equal
    the JobName, JobDigest and CustomModelName properties, or synth and this function disagree about
    what the job is (a different version of the code or a property it does not know).
    """
    where = f"{RESOURCE_TYPE} properties"
    read = _Settings(properties, where)
    training_s3_uri = read.required("TrainingDataS3Uri")
    training_sha256 = read.required("TrainingSha256")
    job_name = read.required("JobName")
    job_digest = read.required("JobDigest")
    read.raise_problems()
    request = job_request(
        properties, training_s3_uri=training_s3_uri, training_sha256=training_sha256, where=where
    )
    spec = request.spec
    mismatches = [
        f"{name} is {given!r} but the properties define {derived!r}"
        for name, given, derived in (
            ("JobName", job_name, spec.job_name),
            ("JobDigest", job_digest, spec.digest),
            (
                "CustomModelName",
                properties.get("CustomModelName") or spec.custom_model_name,
                spec.custom_model_name,
            ),
        )
        if given != derived
    ]
    if mismatches:
        raise ValueError(
            f"the {RESOURCE_TYPE} properties do not describe the job synth named: "
            + "; ".join(mismatches)
            + " (the template and this function were built from different code or settings: deploy "
            "the function and the template of the same version)"
        )
    return request


def dataset_limits(base_model: str, customization_type: str) -> DatasetLimits:
    # Imported when data is checked: the catalog's table would cost every cold start (Delete,
    # an unchanged Update, an ignored S3 event) about 25 ms for nothing.
    from finetune.core.catalog import find_model

    model = find_model(base_model)
    if model is None:
        raise ValueError(f"base model {base_model!r} is not in the catalog: its data rules are unknown")
    limits = model.dataset_limits(customization_type)
    if limits is None:
        raise ValueError(
            f"{base_model} does not support {customization_type} (it supports "
            f"{', '.join(model.customization_types)})"
        )
    return limits


def batch_size(hyperparameters: Mapping[str, str]) -> int | None:
    """The batch size the per-record token limit depends on; None when not set (or not an integer)."""
    try:
        return int(hyperparameters[BATCH_SIZE_KEY])
    except (KeyError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------
# Custom resource
# --------------------------------------------------------------------------------------------------


def customization_job(
    event: Mapping[str, Any], deadline: custom_resource.Deadline
) -> custom_resource.Outcome:
    """The custom resource's action (see the module docstring); runs inside custom_resource.respond."""
    request_type = event["RequestType"]
    if request_type == "Delete":
        return _delete(event)
    request = request_from_properties(event.get("ResourceProperties") or {})
    old_digest = (event.get("OldResourceProperties") or {}).get("JobDigest")
    unchanged = request_type == "Update" and old_digest == request.spec.digest
    state = ensure_job(request, deadline)
    stop_superseded = _flag((event.get("ResourceProperties") or {}).get("StopSuperseded"))
    _record_deployed(request, state, replace_upload=not unchanged, stop_superseded=stop_superseded)
    return _outcome(state)


def ensure_job(request: jobs.JobRequest, deadline: custom_resource.Deadline) -> jobs.JobState:
    """The request's live job: found (running or Completed), or its next generation started after its
    data in S3 passed validation (DataRejected if not). A Failed or Stopped job is never returned."""
    bedrock = bedrock_client()
    existing, attempt = jobs.live_attempt(bedrock, request)
    if existing is not None:
        _log_job("exists", attempt, existing)
        return existing
    spec = request.spec
    problems = jobs.validate_data_in_s3(
        s3_client(),
        attempt,
        dataset_limits(spec.base_model, spec.customization_type),
        batch_size(spec.hyperparameters),
    )
    if problems:
        _log(
            "data-rejected",
            job=attempt.job_name,
            digest=spec.digest,
            problems=len(problems),
            first=problems[:5],
        )
        raise jobs.DataRejected(problems)
    deadline.check(f"starting customization job {attempt.job_name}")
    state = jobs.start_job(bedrock, attempt)
    if state.started and deadline.expired:
        # CloudFormation was answered FAILED while Bedrock was starting it: it would train for nobody.
        jobs.stop_job_if_running(bedrock, state.job_name)
        _log("stopped-late-start", job=state.job_name)
        raise custom_resource.DeadlineError(f"customization job {state.job_name} was stopped again")
    _log_job("started" if state.started else "exists", attempt, state)
    return state


def _record_deployed(
    request: jobs.JobRequest, state: jobs.JobState, *, replace_upload: bool, stop_superseded: bool
) -> None:
    """Record the deploy's job as the one to serve, unless an upload's job (newer data) is recorded
    and this deploy did not change the job (`replace_upload` False)."""
    spec = request.spec
    ssm = ssm_client()
    previous = jobs.read_deployed_job(ssm, spec.environment, spec.fine_tuning)
    if previous is not None and previous.job_name == state.job_name:
        return
    if previous is not None and previous.source == jobs.UPLOAD and not replace_upload:
        _log("deployed-job-kept", job=previous.job_name, deploy_job=state.job_name)
        return
    jobs.record_deployed_job(
        ssm, spec.environment, spec.fine_tuning, jobs.DeployedJob(state.job_name, spec.digest, jobs.DEPLOY)
    )
    _log("deployed-job", job=state.job_name, previous=previous.job_name if previous else None)
    # A superseded deploy job is stopped by CloudFormation's Delete of its resource once the deploy
    # can no longer roll back; an upload's job has no resource, so it is stopped here.
    if previous is not None and previous.source == jobs.UPLOAD and stop_superseded:
        _stop(previous.job_name, reason="superseded by a deploy")


def _delete(event: Mapping[str, Any]) -> custom_resource.Outcome:
    """Stop what the resource's job would leave billing for nobody; never delete data or models.

    - A Create that failed or never answered (a placeholder or CloudFormation's own id): any running
      attempt at the properties' job is an orphan of a deploy that was undone: stopped.
    - The deployed job (the stack is being deleted): stopped when StopOnDelete is "true".
    - A job a newer deploy or upload replaced (CloudFormation's cleanup after an update or a
      rollback): stopped when StopSuperseded is "true".
    """
    physical_id = str(event.get("PhysicalResourceId") or "")
    properties = event.get("ResourceProperties") or {}
    environment, fine_tuning = str(properties.get("Environment", "")), str(properties.get("FineTuning", ""))
    if not identity.owns_job(environment, fine_tuning, physical_id):
        digest = str(properties.get("JobDigest", ""))
        prefix = identity.job_name_prefix(environment, fine_tuning) + digest[: identity.RETRY_DIGEST]
        orphans = jobs.running_jobs(bedrock_client(), environment, fine_tuning, prefix) if digest else []
        for name in orphans:
            _stop(name, reason="started by a Create that failed")
        _log("delete-placeholder", physical_id=physical_id, stopped=orphans)
        return custom_resource.Outcome(physical_id=physical_id)
    deployed = jobs.read_deployed_job(ssm_client(), environment, fine_tuning)
    if deployed is None or deployed.job_name == physical_id:
        stop, why = _flag(properties.get("StopOnDelete")), "StopOnDelete"
    else:
        stop, why = _flag(properties.get("StopSuperseded")), f"StopSuperseded (deployed: {deployed.job_name})"
    stopped = _stop(physical_id, reason=why) if stop else False
    _log("delete", job=physical_id, digest=properties.get("JobDigest"), rule=why, stop=stop, stopped=stopped)
    return custom_resource.Outcome(physical_id=physical_id)


def _flag(value: Any) -> bool:
    return str(value or "false").strip().lower() == "true"


def _stop(job_name: str, *, reason: str) -> bool:
    stopped = jobs.stop_job_if_running(bedrock_client(), job_name)
    _log("job-stopped" if stopped else "job-not-running", job=job_name, reason=reason)
    return stopped


def _outcome(state: jobs.JobState) -> custom_resource.Outcome:
    return custom_resource.Outcome(
        physical_id=state.job_name,
        data={
            "JobArn": state.job_arn,
            "JobName": state.job_name,
            "CustomModelName": state.custom_model_name,
            "Status": state.status,
        },
    )


def _log_job(action: str, request: jobs.JobRequest, state: jobs.JobState) -> None:
    _log(
        action,
        job=state.job_name,
        digest=request.spec.digest,
        arn=state.job_arn,
        status=state.status,
        training=request.training_s3_uri,
    )


# --------------------------------------------------------------------------------------------------
# S3 uploads
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadSettings:
    """The upload path's configuration, from the function's environment variables."""

    template: Mapping[str, Any]
    topic_arn: str
    incoming_prefix: str = DEFAULT_INCOMING_PREFIX
    training_prefix: str = DEFAULT_TRAINING_PREFIX

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> UploadSettings:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        template: Any = {}
        raw = env.get("FINETUNE_JOB_TEMPLATE", "")
        try:
            template = json.loads(raw) if raw else None
        except json.JSONDecodeError as error:
            problems.append(f"FINETUNE_JOB_TEMPLATE is not valid JSON ({error.msg})")
        if not problems and not isinstance(template, dict):
            problems.append("FINETUNE_JOB_TEMPLATE must be a JSON object of the job's settings")
        elif isinstance(template, dict):
            missing = [name for name in TEMPLATE_REQUIRED if not template.get(name)]
            if missing:
                problems.append(f"FINETUNE_JOB_TEMPLATE lacks {', '.join(missing)}")
        topic_arn = env.get("FINETUNE_TOPIC_ARN", "")
        if not topic_arn:
            problems.append("FINETUNE_TOPIC_ARN is not set")
        if problems:
            raise ValueError("the function is misconfigured: " + "; ".join(problems))
        return cls(
            template=template,
            topic_arn=topic_arn,
            incoming_prefix=env.get("FINETUNE_INCOMING_PREFIX") or DEFAULT_INCOMING_PREFIX,
            training_prefix=env.get("FINETUNE_TRAINING_PREFIX") or DEFAULT_TRAINING_PREFIX,
        )

    @property
    def label(self) -> str:
        """`dev/support-assistant`, for messages."""
        return f"{self.template.get('Environment')}/{self.template.get('FineTuning')}"


def handle_uploads(uploads: list[Upload]) -> dict[str, Any]:
    """Handle each object event; raises (after all of them) if any failed unexpectedly, so Lambda retries."""
    settings = UploadSettings.from_environment()
    results: list[dict[str, str]] = []
    failures: list[str] = []
    for upload in uploads:
        try:
            results.append(handle_upload(upload, settings))
        except Exception as error:  # handled after the other uploads; re-raised below
            LOG.exception("upload handling failed")
            failures.append(f"{upload.uri}: {type(error).__name__}: {error}")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(uploads)} upload(s) failed: " + " | ".join(failures))
    return {"results": results}


def handle_upload(upload: Upload, settings: UploadSettings) -> dict[str, str]:
    """One object event: ignore, reject, or stage and start; returns what happened ("outcome")."""
    bucket = upload.bucket
    if not upload.created:
        _log("ignored", uri=upload.uri, reason=f"event {upload.event_name} is not an upload")
        return {"uri": upload.uri, "outcome": "ignored"}
    if not upload.key.startswith(settings.incoming_prefix) or upload.key.endswith("/"):
        # Never anything else: Bedrock's output/ and our own training/ copies must not start jobs.
        _log("ignored", uri=upload.uri, reason=f"not a file under {settings.incoming_prefix}")
        return {"uri": upload.uri, "outcome": "ignored"}
    s3 = s3_client()
    key = _existing_key(s3, upload)
    if key is None:
        _log("ignored", uri=upload.uri, reason="the object no longer exists")
        return {"uri": upload.uri, "outcome": "gone"}
    uri = jobs.s3_uri(bucket, key)

    template = settings.template
    read = _Settings(template, "FINETUNE_JOB_TEMPLATE")
    hyperparameters = read.hyperparameters()
    read.raise_problems()
    try:
        check = jobs.validate_and_hash_s3_object(
            s3,
            bucket,
            key,
            limits=dataset_limits(str(template["BaseModelIdentifier"]), str(template["CustomizationType"])),
            batch_size=batch_size(hyperparameters),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
            _log("ignored", uri=uri, reason="the object no longer exists")
            return {"uri": uri, "outcome": "gone"}
        raise
    problems = jobs.problem_lines(check.report)
    if problems:
        _reject_upload(settings, bucket, key, problems)
        return {"uri": uri, "outcome": "rejected"}

    sha256 = check.sha256 or jobs.sha256_of_s3_object(s3, bucket, key)
    size = check.size_bytes
    if size is None:
        size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    staged = staging.StagingRequest(
        source_bucket=bucket,
        source_key=key,
        bucket=bucket,
        key=staging.staged_key(
            settings.training_prefix, str(template["FineTuning"]), sha256, safe_file_name(key)
        ),
        sha256=sha256,
        size_bytes=size,
        source_version_id=check.version_id,
    )
    copied = staging.stage(s3, staged)
    _log("staged", uri=uri, staged=staged.s3_uri, sha256=sha256, copied=copied)
    request = job_request(
        template, training_s3_uri=staged.s3_uri, training_sha256=sha256, where="FINETUNE_JOB_TEMPLATE"
    )
    try:
        existing, request = jobs.live_attempt(bedrock_client(), request)
        state = existing or jobs.start_job(bedrock_client(), request)
    except jobs.JobRejected as rejected:
        if rejected.code in TRANSIENT_CODES:
            # Raised, so that Lambda's retry of the event tries again (then its dead-letter queue).
            _log_error("job-start-retried", uri=uri, job=request.job_name, code=rejected.code)
            raise
        _log_error(
            "job-rejected", uri=uri, job=request.job_name, digest=request.spec.digest, code=rejected.code
        )
        _notify(
            settings,
            f"Customization job not started: {settings.label}",
            f"Bedrock did not start customization job {request.job_name} for {settings.label} "
            f"on the data uploaded to {uri}.\n\n{rejected}\n\n"
            f"The data was valid and is staged at {staged.s3_uri}; the upload is tagged "
            f"{STATUS_TAG}=failed. Once the cause is fixed, upload the same file again: the same bytes "
            "name the same job.",
        )
        _tag(s3, bucket, key, {STATUS_TAG: "failed", JOB_TAG: request.job_name})
        return {"uri": uri, "outcome": "failed", "job": request.job_name}

    _log_job("started" if state.started else "exists", request, state)
    _record_upload(settings, request, state)
    if state.started:
        _notify(
            settings,
            f"Customization job started: {settings.label}",
            f"Customization job {state.job_name} started for {settings.label}.\n\n"
            f"Uploaded data: {uri}\n"
            f"Training data: {staged.s3_uri} (sha256 {sha256})\n"
            f"Base model: {request.spec.base_model} ({request.spec.customization_type})\n"
            f"Job ARN: {state.job_arn}\n"
            f"Custom model: {state.custom_model_name}\n\n"
            f"Follow it with: aws bedrock get-model-customization-job --job-identifier {state.job_name}",
        )
    _tag(s3, bucket, key, {STATUS_TAG: "started", JOB_TAG: state.job_name})
    return {"uri": uri, "outcome": "started" if state.started else "exists", "job": state.job_name}


def _record_upload(settings: UploadSettings, request: jobs.JobRequest, state: jobs.JobState) -> None:
    """The upload's job is the one to serve now; the job it replaces is stopped if the stack says so."""
    spec = request.spec
    ssm = ssm_client()
    previous = jobs.read_deployed_job(ssm, spec.environment, spec.fine_tuning)
    if previous is not None and previous.job_name == state.job_name:
        return
    jobs.record_deployed_job(
        ssm, spec.environment, spec.fine_tuning, jobs.DeployedJob(state.job_name, spec.digest, jobs.UPLOAD)
    )
    _log("deployed-job", job=state.job_name, previous=previous.job_name if previous else None)
    if previous is not None and _flag(settings.template.get("StopSuperseded")):
        _stop(previous.job_name, reason="superseded by an upload")


def _existing_key(s3: Any, upload: Upload) -> str | None:
    """The event's key, or its alternative spelling when only that exists; None when neither does.

    Only an event with an alternative spelling costs a look-up here; otherwise a missing object shows
    when it is read.
    """
    if upload.alternative_key is None:
        return upload.key
    for key in (upload.key, upload.alternative_key):
        try:
            s3.head_object(Bucket=upload.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
                continue
            raise
        return key
    return None


def _reject_upload(settings: UploadSettings, bucket: str, key: str, problems: list[str]) -> None:
    uri = jobs.s3_uri(bucket, key)
    _log("data-rejected", uri=uri, problems=len(problems), first=problems[:5])
    _notify(
        settings,
        f"Training data rejected: {settings.label}",
        f"The training data uploaded to {uri} was rejected for {settings.label}; "
        "no customization job was started.\n\n"
        f"{jobs.format_problems(problems)}\n\n"
        "What to do: fix the lines listed (line numbers count from 1), check the file locally with "
        f"`python -m finetune validate --model {settings.template.get('BaseModelIdentifier')} FILE`, and "
        f"upload the corrected file under s3://{bucket}/{settings.incoming_prefix}. The rejected object "
        f"is kept and tagged {STATUS_TAG}=rejected; delete it when you no longer need it.",
    )
    _tag(s3_client(), bucket, key, {STATUS_TAG: "rejected"})


def safe_file_name(key: str) -> str:
    """The key's last segment with only the characters Bedrock's S3 URI pattern allows in a key."""
    name = re.sub(r"[^-!_*'().a-zA-Z0-9]", "-", key.rsplit("/", 1)[-1])
    return name if name.strip(".") else "data.jsonl"


def _subject(text: str) -> str:
    """An SNS subject: printable ASCII, at most 100 characters."""
    return re.sub(r"[^\x20-\x7e]", "?", text)[:MAX_SUBJECT_CHARS]


def _notify(settings: UploadSettings, subject: str, message: str) -> None:
    try:
        sns_client().publish(TopicArn=settings.topic_arn, Subject=_subject(subject), Message=message)
    except ClientError as error:
        _log_error("notify-failed", topic=settings.topic_arn, subject=subject, error=str(error))


def _tag(s3: Any, bucket: str, key: str, tags: Mapping[str, str]) -> None:
    """Set `tags` on the object, keeping its other tags (as many as S3's 10 per object allow)."""
    try:
        existing = s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        kept = [tag for tag in existing if tag["Key"] not in tags][: MAX_OBJECT_TAGS - len(tags)]
        tag_set = [*kept, *({"Key": name, "Value": value} for name, value in tags.items())]
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})
    except ClientError as error:
        _log_error("tag-failed", uri=jobs.s3_uri(bucket, key), tags=dict(tags), error=str(error))
