"""Starting the training a deploy or an upload asks for, and stopping what nobody will serve.

The job trigger's operations, on injected clients (`TrainingClients`): the Lambda handler
(`finetune.runtime.customization_job_trigger`) parses the event and calls these, the rehearsal
calls the same handler.

Decisions:
- Data is validated in S3, where Bedrock will read it, before anything is paid for: the same
  validator synth used, in one streamed, hashed pass (`finetune.aws.data`).
- A deploy's job becomes the deployed job (the one served), except that a deploy that leaves the
  job unchanged keeps a newer upload's job. An upload's job becomes the deployed job.
- Superseded jobs: a deploy's old job is stopped by CloudFormation's Delete of its resource, which
  comes only once the deploy can no longer roll back; an upload's job has no resource, so the
  deploy or upload that supersedes it stops it. Both only where the template says StopSuperseded.
- Notifications and object tags are best effort: a failure to publish or tag is logged and not
  raised, because a retry could not undo what happened and would repeat a rejection notice. A
  job-started notice is sent only by the call that started it.
- Rejections (of the data, or Bedrock refusing the job) are final for an upload: reported, not
  raised. Bedrock's transient errors are raised, so that Lambda retries the event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from finetune.aws import data, jobs, staging
from finetune.aws.errors import FORBIDDEN_CODES, error_code, is_not_found
from finetune.aws.log import log, log_error
from finetune.aws.notify import publish
from finetune.core import names
from finetune.core.contracts import JobRequest, ObjectUpload, TrainingBudget, TriggerEnvironment
from finetune.core.deadline import Deadline, DeadlineError
from finetune.core.formats import batch_size_of

if TYPE_CHECKING:
    from finetune.core.formats import DatasetLimits

MAX_OBJECT_TAGS = 10  # S3's limit per object
# Bedrock errors worth another try of the same upload event (Lambda retries a raised error).
TRANSIENT_CODES = frozenset({"ThrottlingException", "InternalServerException", "ServiceUnavailableException"})


@dataclass(frozen=True)
class TrainingClients:
    """The AWS clients the trigger needs (anything with boto3's method names)."""

    bedrock: Any
    s3: Any
    sns: Any
    ssm: Any


def dataset_limits(base_model: str, customization_type: str) -> DatasetLimits:
    """The data rules of the model; ValueError when the catalog does not know it."""
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


# --------------------------------------------------------------------------------------------------
# The deploy's job (Custom::CustomizationJob)
# --------------------------------------------------------------------------------------------------


def ensure_job(
    clients: TrainingClients,
    request: JobRequest,
    deadline: Deadline,
    budget: TrainingBudget | None = None,
) -> jobs.JobState:
    """The request's live job: found (running or Completed), or its next generation started after its
    data in S3 passed validation and, with a `budget`, its estimated cost is within it
    (`jobs.DataRejected` if not). A Failed or Stopped job is never returned. Nothing is started once
    `deadline` has passed; a job whose start overran it is stopped."""
    existing, attempt = jobs.live_attempt(clients.bedrock, request)
    if existing is not None:
        _log_job("exists", attempt, existing)
        return existing
    spec = request.spec
    limits = dataset_limits(spec.base_model, spec.customization_type)
    problems = data.request_data_problems(
        clients.s3, attempt, limits, batch_size_of(spec.hyperparameters), budget
    )
    if problems:
        log(
            "data-rejected",
            job=attempt.job_name,
            digest=spec.digest,
            problems=len(problems),
            first=problems[:5],
        )
        raise jobs.DataRejected(problems)
    deadline.check(f"starting customization job {attempt.job_name}")
    state = jobs.start_job(clients.bedrock, attempt)
    if state.started and deadline.expired:
        # CloudFormation was answered FAILED while Bedrock was starting it: it would train for nobody.
        jobs.stop_job_if_running(clients.bedrock, state.job_name)
        log("stopped-late-start", job=state.job_name)
        raise DeadlineError(f"customization job {state.job_name} was stopped again")
    _log_job("started" if state.started else "exists", attempt, state)
    return state


def record_deploy(
    clients: TrainingClients,
    request: JobRequest,
    state: jobs.JobState,
    *,
    job_changed: bool,
    stop_superseded: bool,
) -> None:
    """Record the deploy's job as the one to serve, unless an upload's job (newer data) is recorded
    and this deploy did not change the job."""
    spec = request.spec
    previous = jobs.read_deployed_job(clients.ssm, spec.environment, spec.fine_tuning)
    if previous is not None and previous.job_name == state.job_name:
        return
    if previous is not None and previous.source == jobs.UPLOAD and not job_changed:
        log("deployed-job-kept", job=previous.job_name, deploy_job=state.job_name)
        return
    deployed = jobs.DeployedJob(state.job_name, spec.digest, jobs.DEPLOY)
    jobs.record_deployed_job(clients.ssm, spec.environment, spec.fine_tuning, deployed)
    log("deployed-job", job=state.job_name, previous=previous.job_name if previous else None)
    if previous is not None and previous.source == jobs.UPLOAD and stop_superseded:
        _stop(clients, previous.job_name, reason="superseded by a deploy")


def on_delete(clients: TrainingClients, physical_id: str, properties: Mapping[str, Any]) -> None:
    """What the deletion of a job resource stops (never data or models). Reads the properties
    leniently: a Delete must succeed even after a Create whose properties were refused.

    - A Create that failed or never answered (a placeholder or CloudFormation's own id): any running
      attempt at the properties' job is an orphan of a deploy that was undone: stopped.
    - The deployed job (the stack is being deleted): stopped when StopOnDelete is "true".
    - A job a newer deploy or upload replaced (CloudFormation's cleanup after an update or a
      rollback): stopped when StopSuperseded is "true".
    - A candidate's job (`Trial`): stopped when either rule is "true" (its stack is deleted, or
      the candidate was changed or removed: no gate will evaluate it).
    """
    environment, fine_tuning = str(properties.get("Environment", "")), str(properties.get("FineTuning", ""))
    if not names.owns_job(environment, fine_tuning, physical_id):
        digest = str(properties.get("JobDigest", ""))
        prefix = names.job_name_prefix(environment, fine_tuning) + digest[: names.RETRY_DIGEST]
        orphans = jobs.running_jobs(clients.bedrock, environment, fine_tuning, prefix) if digest else []
        for name in orphans:
            _stop(clients, name, reason="started by a Create that failed")
        log("delete-placeholder", physical_id=physical_id, stopped=orphans)
        return
    deployed = jobs.read_deployed_job(clients.ssm, environment, fine_tuning)
    if properties.get("Trial"):
        # A candidate's job: deleted with its stack, or replaced or removed by a deploy; either
        # way it trains for nobody once stopping is what the environment asks for.
        stop = _flag(properties.get("StopOnDelete")) or _flag(properties.get("StopSuperseded"))
        rule = f"candidate {properties.get('Trial')}: StopOnDelete or StopSuperseded"
    elif deployed is None or deployed.job_name == physical_id:
        stop, rule = _flag(properties.get("StopOnDelete")), "StopOnDelete"
    else:
        stop, rule = (
            _flag(properties.get("StopSuperseded")),
            f"StopSuperseded (deployed: {deployed.job_name})",
        )
    stopped = _stop(clients, physical_id, reason=rule) if stop else False
    log("delete", job=physical_id, digest=properties.get("JobDigest"), rule=rule, stop=stop, stopped=stopped)


def _flag(value: Any) -> bool:
    return str(value or "false").strip().lower() == "true"


def _stop(clients: TrainingClients, job_name: str, *, reason: str) -> bool:
    stopped = jobs.stop_job_if_running(clients.bedrock, job_name)
    log("job-stopped" if stopped else "job-not-running", job=job_name, reason=reason)
    return stopped


def _log_job(action: str, request: JobRequest, state: jobs.JobState) -> None:
    log(
        action,
        job=state.job_name,
        digest=request.spec.digest,
        arn=state.job_arn,
        status=state.status,
        training=request.training_s3_uri,
    )


# --------------------------------------------------------------------------------------------------
# Uploads under incoming/
# --------------------------------------------------------------------------------------------------


def handle_uploads(
    clients: TrainingClients, settings: TriggerEnvironment, uploads: list[ObjectUpload]
) -> dict[str, Any]:
    """Handle each object event; raises (after all of them) if any failed unexpectedly, so that
    Lambda retries the event (the handling is idempotent)."""
    results: list[dict[str, str]] = []
    failures: list[str] = []
    for upload in uploads:
        try:
            results.append(handle_upload(clients, settings, upload))
        except Exception as error:  # handled after the other uploads; re-raised below
            log_error("upload-failed", uri=upload.uri, error=f"{type(error).__name__}: {error}")
            failures.append(f"{upload.uri}: {type(error).__name__}: {error}")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(uploads)} upload(s) failed: " + " | ".join(failures))
    return {"results": results}


def handle_upload(
    clients: TrainingClients, settings: TriggerEnvironment, upload: ObjectUpload
) -> dict[str, str]:
    """One object event: ignore, reject, or stage and start; returns what happened ("outcome")."""
    bucket = upload.bucket
    if not upload.created:
        log("ignored", uri=upload.uri, reason=f"event {upload.event_name} is not an upload")
        return {"uri": upload.uri, "outcome": "ignored"}
    if not upload.key.startswith(settings.incoming_prefix) or upload.key.endswith("/"):
        # Never anything else: Bedrock's output/ and our own training/ copies must not start jobs.
        log("ignored", uri=upload.uri, reason=f"not a file under {settings.incoming_prefix}")
        return {"uri": upload.uri, "outcome": "ignored"}
    key = _existing_key(clients.s3, upload)
    if key is None:
        log("ignored", uri=upload.uri, reason="the object no longer exists")
        return {"uri": upload.uri, "outcome": "gone"}
    uri = names.s3_uri(bucket, key)

    template = settings.template
    try:
        check = data.check_object(
            clients.s3,
            bucket,
            key,
            limits=dataset_limits(template.base_model, template.customization_type),
            batch_size=batch_size_of(template.hyperparameters),
        )
    except ClientError as error:
        if is_not_found(error):
            log("ignored", uri=uri, reason="the object no longer exists")
            return {"uri": uri, "outcome": "gone"}
        raise
    problems = data.problem_lines(check.report)
    if not problems and (check.sha256 is None or check.size_bytes is None):
        problems = [f"{uri}: the object could not be read whole (a changing upload?); upload it again"]
    if problems or check.sha256 is None or check.size_bytes is None:
        _reject_upload(clients, settings, bucket, key, problems)
        return {"uri": uri, "outcome": "rejected"}
    over_budget = data.budget_problem(uri, check.report, template.training_budget)
    if over_budget:
        _reject_over_budget(clients, settings, bucket, key, over_budget)
        return {"uri": uri, "outcome": "over-budget"}

    staged = staging.StagingRequest(
        source_bucket=bucket,
        source_key=key,
        bucket=bucket,
        key=names.staged_key(
            settings.training_prefix, template.fine_tuning, check.sha256, safe_file_name(key)
        ),
        sha256=check.sha256,
        size_bytes=check.size_bytes,
        source_version_id=check.version_id,
    )
    copied = staging.stage(clients.s3, staged)
    log("staged", uri=uri, staged=staged.s3_uri, sha256=check.sha256, copied=copied)
    request = template.request(training_s3_uri=staged.s3_uri, training_sha256=check.sha256)
    try:
        existing, request = jobs.live_attempt(clients.bedrock, request)
        state = existing or jobs.start_job(clients.bedrock, request)
    except jobs.JobRejected as rejected:
        if rejected.code in TRANSIENT_CODES:
            # Raised, so that Lambda's retry of the event tries again (then its dead-letter queue).
            log_error("job-start-retried", uri=uri, job=request.job_name, code=rejected.code)
            raise
        log_error(
            "job-rejected", uri=uri, job=request.job_name, digest=request.spec.digest, code=rejected.code
        )
        publish(
            clients.sns,
            settings.topic_arn,
            f"Customization job not started: {template.label}",
            f"Bedrock did not start customization job {request.job_name} for {template.label} "
            f"on the data uploaded to {uri}.\n\n{rejected}\n\n"
            f"The data was valid and is staged at {staged.s3_uri}; the upload is tagged "
            f"{names.STATUS_TAG}=failed. Once the cause is fixed, upload the same file again: the same bytes "
            "name the same job.",
        )
        _tag(clients.s3, bucket, key, {names.STATUS_TAG: "failed", names.JOB_TAG: request.job_name})
        return {"uri": uri, "outcome": "failed", "job": request.job_name}

    _log_job("started" if state.started else "exists", request, state)
    _record_upload(clients, settings, request, state)
    if state.started:
        publish(
            clients.sns,
            settings.topic_arn,
            f"Customization job started: {template.label}",
            f"Customization job {state.job_name} started for {template.label}.\n\n"
            f"Uploaded data: {uri}\n"
            f"Training data: {staged.s3_uri} (sha256 {check.sha256})\n"
            f"Base model: {request.spec.base_model} ({request.spec.customization_type})\n"
            f"Job ARN: {state.job_arn}\n"
            f"Custom model: {state.custom_model_name}\n\n"
            f"Follow it with: aws bedrock get-model-customization-job --job-identifier {state.job_name}",
        )
    _tag(clients.s3, bucket, key, {names.STATUS_TAG: "started", names.JOB_TAG: state.job_name})
    return {"uri": uri, "outcome": "started" if state.started else "exists", "job": state.job_name}


def _record_upload(
    clients: TrainingClients, settings: TriggerEnvironment, request: JobRequest, state: jobs.JobState
) -> None:
    """The upload's job is the one to serve now; the job it replaces is stopped if the stack says so."""
    spec = request.spec
    previous = jobs.read_deployed_job(clients.ssm, spec.environment, spec.fine_tuning)
    if previous is not None and previous.job_name == state.job_name:
        return
    deployed = jobs.DeployedJob(state.job_name, spec.digest, jobs.UPLOAD)
    jobs.record_deployed_job(clients.ssm, spec.environment, spec.fine_tuning, deployed)
    log("deployed-job", job=state.job_name, previous=previous.job_name if previous else None)
    if previous is not None and settings.template.stop_superseded:
        _stop(clients, previous.job_name, reason="superseded by an upload")


def _existing_key(s3: Any, upload: ObjectUpload) -> str | None:
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
            if is_not_found(error) or error_code(error) in FORBIDDEN_CODES:
                continue
            raise
        return key
    return None


def _reject_upload(
    clients: TrainingClients, settings: TriggerEnvironment, bucket: str, key: str, problems: list[str]
) -> None:
    uri = names.s3_uri(bucket, key)
    log("data-rejected", uri=uri, problems=len(problems), first=problems[:5])
    publish(
        clients.sns,
        settings.topic_arn,
        f"Training data rejected: {settings.template.label}",
        f"The training data uploaded to {uri} was rejected for {settings.template.label}; "
        "no customization job was started.\n\n"
        f"{jobs.format_problems(problems)}\n\n"
        "What to do: fix the lines listed (line numbers count from 1), check the file locally with "
        f"`python -m finetune validate --model {settings.template.base_model} FILE`, and "
        f"upload the corrected file under s3://{bucket}/{settings.incoming_prefix}. The rejected object "
        f"is kept and tagged {names.STATUS_TAG}=rejected; delete it when you no longer need it.",
    )
    _tag(clients.s3, bucket, key, {names.STATUS_TAG: "rejected"})


def _reject_over_budget(
    clients: TrainingClients, settings: TriggerEnvironment, bucket: str, key: str, problem: str
) -> None:
    uri = names.s3_uri(bucket, key)
    budget = settings.template.training_budget
    assert budget is not None  # only called with a budget
    log("over-budget", uri=uri, problem=problem)
    publish(
        clients.sns,
        settings.topic_arn,
        f"Training data over budget: {settings.template.label}",
        f"The training data uploaded to {uri} is valid, but training {settings.template.label} on it would "
        f"cost more than its budget; no customization job was started.\n\n{problem}\n\n"
        f"What to do: upload less data (or lower epochCount and deploy), or raise {budget.field} in cdk.json "
        f"and deploy, then upload the file again. The object is kept and tagged "
        f"{names.STATUS_TAG}=rejected; delete it when you no longer need it.",
    )
    _tag(clients.s3, bucket, key, {names.STATUS_TAG: "rejected"})


def safe_file_name(key: str) -> str:
    """The key's last segment with only the characters Bedrock's S3 URI pattern allows in a key (the
    sha256 folder identifies the data, the name is only for people)."""
    name = re.sub(r"[^-!_*'().a-zA-Z0-9]", "-", key.rsplit("/", 1)[-1])
    return name if name.strip(".") else "data.jsonl"


def _tag(s3: Any, bucket: str, key: str, tags: Mapping[str, str]) -> None:
    """Set `tags` on the object, keeping its other tags (as many as S3's 10 per object allow)."""
    try:
        existing = s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        kept = [tag for tag in existing if tag["Key"] not in tags][: MAX_OBJECT_TAGS - len(tags)]
        tag_set = [*kept, *({"Key": name, "Value": value} for name, value in tags.items())]
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})
    except ClientError as error:
        log_error("tag-failed", uri=names.s3_uri(bucket, key), tags=dict(tags), error=str(error))


# --------------------------------------------------------------------------------------------------
# Retrying a job that trained nothing (`python -m finetune retry`)
# --------------------------------------------------------------------------------------------------

# The event `python -m finetune retry` invokes the trigger function with: {"finetune": "retry", "job": NAME}.
EVENT_KEY = "finetune"
RETRY_EVENT = "retry"
RETRYABLE_STATES = ("Failed", "Stopped")
NOT_RETRYABLE = {
    jobs.COMPLETED: "it Completed: there is nothing to retry (a Completed job is never trained again)",
    jobs.RUNNING: "it is still InProgress: there is nothing to retry; wait until it ends "
    "(python -m finetune status {environment} {fine_tuning} --watch)",
    "Stopping": "it is Stopping: wait until it is Stopped, then retry it",
}


def retry_event(job_name: str) -> dict[str, str]:
    return {EVENT_KEY: RETRY_EVENT, "job": job_name}


def is_retry_event(event: Mapping[str, Any]) -> bool:
    return event.get(EVENT_KEY) == RETRY_EVENT


class RetryRefused(Exception):  # noqa: N818 (an answer to the caller, not a fault)
    """Why a job is not retried: the message says what is wrong and what to do instead."""


def retry_job(
    clients: TrainingClients, settings: TriggerEnvironment, event: Mapping[str, Any], deadline: Deadline
) -> dict[str, Any]:
    """Train a Failed or Stopped job of this fine-tuning again, as its next generation.

    The job must be one of the deployed configuration's (the function's template: model, type,
    hyperparameters, validation data) and, when a deployed job is recorded, on the deployed job's
    data: a retry trains what was deployed, never something older. Its data is validated again
    (`ensure_job`), the new generation becomes the deployed job (keeping the record's source) and
    the topic is told. Returns {"outcome": "started" | "exists" | "refused" | "rejected", ...}:
    refusals and Bedrock's or the validator's rejections are answers, not errors.
    """
    job_name = event.get("job")
    template = settings.template
    try:
        if not isinstance(job_name, str) or not job_name:
            raise RetryRefused(
                f'the event names no job: expected {{"{EVENT_KEY}": "{RETRY_EVENT}", "job": "<job name>"}}'
            )
        request = _retry_request(clients, settings, job_name)
        deployed = jobs.read_deployed_job(clients.ssm, template.environment, template.fine_tuning)
        if deployed is not None and deployed.digest != request.spec.digest:
            raise RetryRefused(
                f"{job_name} trained other data than the deployed job {deployed.job_name} (recorded by "
                f"the last {deployed.source}); retrying it would replace what is served with it. Deploy, or "
                f"upload that data under {settings.incoming_prefix}, to train it."
            )
        state = ensure_job(clients, request, deadline)
    except RetryRefused as refused:
        log("retry-refused", job=job_name, reason=str(refused))
        return {"outcome": "refused", "job": str(job_name), "reason": str(refused)}
    except (jobs.DataRejected, jobs.JobRejected) as rejected:
        log_error("retry-rejected", job=job_name, error=str(rejected))
        return {"outcome": "rejected", "job": job_name, "reason": str(rejected)}
    source = deployed.source if deployed is not None else jobs.DEPLOY
    if deployed is None or deployed.job_name != state.job_name:
        record = jobs.DeployedJob(state.job_name, request.spec.digest, source)
        jobs.record_deployed_job(clients.ssm, template.environment, template.fine_tuning, record)
        log("deployed-job", job=state.job_name, previous=deployed.job_name if deployed else None)
    _log_job("retried" if state.started else "exists", request, state)
    if state.started:
        publish(
            clients.sns,
            settings.topic_arn,
            f"Customization job retried: {template.label}",
            f"Customization job {state.job_name} started for {template.label}: the next generation of "
            f"{job_name}, which trained nothing, on the same configuration and data.\n\n"
            f"Training data: {request.training_s3_uri} (sha256 {request.spec.training_sha256})\n"
            f"Base model: {request.spec.base_model} ({request.spec.customization_type})\n"
            f"Job ARN: {state.job_arn}\n"
            f"Custom model: {state.custom_model_name}\n\n"
            "It is the deployed job now: its model is served once it completes.\n"
            f"Follow it with: python -m finetune status {template.environment} {template.fine_tuning} --watch",
        )
    return {
        "outcome": "started" if state.started else "exists",
        "job": job_name,
        "newJob": state.job_name,
        "jobArn": state.job_arn,
        "status": state.status,
        "customModelName": state.custom_model_name,
    }


def _retry_request(clients: TrainingClients, settings: TriggerEnvironment, job_name: str) -> JobRequest:
    """The request of the job's configuration and data, or RetryRefused saying why it is not retried."""
    template = settings.template
    prefix = names.job_name_prefix(template.environment, template.fine_tuning)
    if not names.owns_job(template.environment, template.fine_tuning, job_name):
        raise RetryRefused(
            f"{job_name} is not a job of {template.label}: its jobs are named {prefix}<12 hex> (retries "
            f"{prefix}<9 hex>r<N>)"
        )
    try:
        job = clients.bedrock.get_model_customization_job(jobIdentifier=job_name)
    except ClientError as error:
        if is_not_found(error):
            raise RetryRefused(
                f"Bedrock knows no customization job {job_name} in this account and region"
            ) from None
        raise
    status = str(job.get("status", ""))
    if status not in RETRYABLE_STATES:
        reason = NOT_RETRYABLE.get(
            status, f"its status is {status!r}; only a Failed or Stopped job is retried"
        )
        raise RetryRefused(
            f"{job_name} is not retried: "
            + reason.format(environment=template.environment, fine_tuning=template.fine_tuning)
        )
    uri = str((job.get("trainingDataConfig") or {}).get("s3Uri", ""))
    sha256 = _trained_sha256(clients.bedrock, settings, job, uri)
    try:
        request = template.request(training_s3_uri=uri, training_sha256=sha256)
    except ValueError as error:
        raise RetryRefused(f"{job_name}'s training data {uri!r} cannot be trained again: {error}") from None
    spec = request.spec
    suffix = job_name[len(prefix) :]
    if suffix != spec.digest[: names.SHORT_DIGEST] and not suffix.startswith(
        f"{spec.digest[: names.RETRY_DIGEST]}r"
    ):
        raise RetryRefused(
            f"{job_name} was started with another configuration than the deployed one (the model, "
            "customization type, hyperparameters or validation data changed since), so retrying it would "
            "train what is no longer deployed. To train a configuration, deploy it."
        )
    return request


def _trained_sha256(bedrock: Any, settings: TriggerEnvironment, job: Mapping[str, Any], uri: str) -> str:
    """The sha256 of the data the job trained on: from its staged key `training/<ft>/<sha256>/<file>`,
    else from its `finetune:data-sha256` tag."""
    template = settings.template
    try:
        _bucket, key = names.parse_s3_object_uri(uri)
    except ValueError:
        key = ""
    staged = f"{settings.training_prefix}{template.fine_tuning}/"
    digest, _, file_name = key.removeprefix(staged).partition("/") if key.startswith(staged) else ("", "", "")
    if names.is_sha256(digest) and file_name:
        return digest
    try:
        tags = bedrock.list_tags_for_resource(resourceARN=str(job.get("jobArn", ""))).get("tags", [])
    except ClientError as error:
        raise RetryRefused(
            f"{job.get('jobName')}'s training data {uri} is not staged under {staged}<sha256>/ and its "
            f"{names.DATA_SHA256_TAG} tag cannot be read ({error_code(error)}): which data it trained on is "
            "unknown"
        ) from None
    tagged = next((str(tag.get("value")) for tag in tags if tag.get("key") == names.DATA_SHA256_TAG), "")
    if not names.is_sha256(tagged):
        raise RetryRefused(
            f"{job.get('jobName')}'s training data {uri} is not staged under {staged}<sha256>/ and it has no "
            f"{names.DATA_SHA256_TAG} tag: which data it trained on is unknown"
        )
    return tagged
