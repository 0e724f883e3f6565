"""The serving lifecycle Lambda: job state changes, a scheduled reconcile, and `Custom::ServingLifecycle`.

Events it handles (anything else is logged and ignored):
- EventBridge `source: aws.bedrock`, `detail-type: Model Customization Job State Change`, for jobs of
  this fine-tuning: for the deployed job (`finetune.aws.jobs.DeployedJob`), Completed -> reconcile and
  tell people what serves now; Failed / Stopped -> tell people why; a superseded job's end is
  reported and never served.
- EventBridge `source: aws.events`, `detail-type: Scheduled Event` -> reconcile; people are told only
  when it changed something or something failed (a Failed PT is reported every time it is replaced).
- CloudFormation `Custom::ServingLifecycle`: Create/Update -> reconcile with the properties' settings,
  waiting (while the Lambda's time allows) until a replaced PT can be deleted; never buys a
  commitment (the deploy could still roll back). Delete -> teardown (committed PTs are reported, not
  a failure; what cannot be deleted in time is).

Every run that may create serving waits for it while its time allows (`serving.converge`), so the
endpoint-arn parameter names a new PT as soon as it serves, not at the next hourly run. The
attribute EndpointArn names what serves when the answer is sent (NOT_SERVING when nothing does: a
stack output cannot be empty).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from finetune.aws import jobs, serving
from finetune.runtime import responder as custom_resource

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

JOB_STATE_CHANGE = "Model Customization Job State Change"
SCHEDULED_EVENT = "Scheduled Event"
FAILED_STATES = ("Failed", "Stopped")
MAX_SUBJECT_CHARS = 100  # SNS Subject limit
NOT_SERVING = "none"
POLL_SECONDS = 15.0
# Waits end this long before the deadline guard's answer, so a run's own outcome (a teardown that
# could not finish, naming what still bills) is what CloudFormation receives.
WORK_MARGIN_SECONDS = 10.0
# How a run waits between reconcile passes; the rehearsal replaces it (its fake has no clock).
pause: Callable[[float], None] = time.sleep


@cache
def clients() -> serving.Clients:
    """Created on first use, not at import (cold starts), with adaptive retries for throttling."""
    config = Config(retries={"mode": "adaptive", "max_attempts": 8})
    return serving.Clients(
        bedrock=boto3.client("bedrock", config=config),
        ssm=boto3.client("ssm", config=config),
        cloudwatch=boto3.client("cloudwatch", config=config),
        sns=boto3.client("sns", config=config),
        cloudformation=boto3.client("cloudformation", config=config),
    )


def log(action: str, **fields: Any) -> None:
    LOG.info(json.dumps({"action": action, **fields}, default=str))


def configured_spec() -> serving.ServingSpec:
    values = json.loads(os.environ["FINETUNE_SERVING"])
    return serving.ServingSpec.from_mapping(values, topic_arn=_topic_from_env())


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" in event and "ResponseURL" in event:
        return custom_resource.respond(event, lifecycle, context=context, failure_id=physical_id)
    source, detail_type = event.get("source"), event.get("detail-type")
    deadline = custom_resource.Deadline.from_context(context)
    if source == "aws.bedrock" and detail_type == JOB_STATE_CHANGE:
        return on_job_state_change(event.get("detail") or {}, deadline)
    if source == "aws.events" and detail_type == SCHEDULED_EVENT:
        return on_schedule(deadline)
    log("ignored", reason="unknown event shape", source=source, detailType=detail_type)
    return {"action": "ignored"}


def physical_id(event: Mapping[str, Any]) -> str:
    """One fixed id per fine-tuning, also for a Create that failed half way: its rollback Delete
    then tears down whatever that Create had made (a placeholder id would leave a PT billing)."""
    properties = event.get("ResourceProperties") or {}
    return f"{properties.get('Environment')}-{properties.get('FineTuning')}-serving"


def on_job_state_change(detail: Mapping[str, Any], deadline: custom_resource.Deadline) -> dict[str, Any]:
    spec = configured_spec()
    job, status = str(detail.get("jobName", "")), str(detail.get("jobStatus", ""))
    if not serving.owns_job(spec.environment, spec.fine_tuning, job):
        log("ignored", reason="job of another fine-tuning", job=job, status=status)
        return {"action": "ignored", "job": job}
    subject = f"Fine-tuning {spec.fine_tuning} ({spec.environment})"
    deployed = jobs.read_deployed_job(clients().ssm, spec.environment, spec.fine_tuning)
    if deployed is not None and deployed.job_name != job and status in (*FAILED_STATES, "Completed"):
        message = (
            f"Customization job {job} is {status}, but it is not the deployed configuration's job "
            f"({deployed.job_name}, from a {deployed.source}): its model is not served."
        )
        publish(spec.topic_arn, f"{subject}: superseded job {status}", message)
        log("superseded-job", job=job, status=status, deployed=deployed.job_name)
        return {"action": "ignored", "job": job, "status": status, "deployed": deployed.job_name}
    if status in FAILED_STATES:
        message = serving.describe_failure(detail)
        publish(spec.topic_arn, f"{subject}: job {status}", message)
        log("job-" + status.lower(), job=job, failureMessage=detail.get("failureMessage"))
        return {"action": "notified", "job": job, "status": status}
    if status != "Completed":
        log("ignored", reason="job still running", job=job, status=status)
        return {"action": "ignored", "job": job, "status": status}
    report = reconcile_and_tell(
        spec,
        deadline,
        always_publish=True,
        reason=f"job {job} completed",
        completed=serving.model_from_event(detail),
    )
    return {"action": "reconciled", "job": job, "endpointArn": report.serving_arn or ""}


def on_schedule(deadline: custom_resource.Deadline) -> dict[str, Any]:
    spec = configured_spec()
    report = reconcile_and_tell(spec, deadline, always_publish=False, reason="scheduled reconcile")
    return {"action": "reconciled", "changed": report.changed, "endpointArn": report.serving_arn or ""}


def reconcile_and_tell(
    spec: serving.ServingSpec,
    deadline: custom_resource.Deadline,
    *,
    always_publish: bool,
    reason: str,
    completed: serving.ModelRef | None = None,
) -> serving.ReconcileReport:
    """Reconcile (waiting while its time allows); tell people what serves now, what failed, or why
    it could not be done (then raise)."""
    subject = f"Fine-tuning {spec.fine_tuning} ({spec.environment})"
    # A commitment cannot be undone: bought only when no deploy of the stack can still roll back.
    may_commit = spec.commitment != "none" and serving.stack_is_stable(
        clients().cloudformation, spec.stack_id
    )
    try:
        report = serving.converge(
            clients(),
            spec,
            wait_seconds=deadline.remaining() - WORK_MARGIN_SECONDS,
            poll_seconds=POLL_SECONDS,
            sleep=pause,
            completed=completed,
            may_commit=may_commit,
        )
    except serving.ServingError as error:
        log("reconcile-failed", reason=reason, error=str(error))
        publish(
            spec.topic_arn, f"{subject}: serving failed", f"{reason}: serving could not be set up.\n{error}"
        )
        raise
    log("reconcile", reason=reason, **report.as_log())
    if report.failures:
        publish(spec.topic_arn, f"{subject}: serving failed", f"{reason}.\n{report.summary()}")
    elif always_publish or report.changed:
        ready = "model ready, serving" if report.endpoint_ready else "model ready"
        publish(spec.topic_arn, f"{subject}: {ready}", f"{reason}.\n{report.summary()}")
    return report


def publish(topic_arn: str | None, subject: str, message: str) -> bool:
    """Publish to the topic; a notification that cannot be sent is logged, never fatal."""
    if not topic_arn:
        log("not-notified", reason="no topic configured", subject=subject)
        return False
    try:
        clients().sns.publish(TopicArn=topic_arn, Subject=subject[:MAX_SUBJECT_CHARS], Message=message)
    except Exception as error:  # the work is done; a lost e-mail must not undo or fail it
        log("notify-failed", topic=topic_arn, error=f"{type(error).__name__}: {error}")
        return False
    return True


def lifecycle(event: Mapping[str, Any], deadline: custom_resource.Deadline) -> custom_resource.Outcome:
    """`Custom::ServingLifecycle`: Create/Update reconcile, Delete tears down."""
    spec = serving.ServingSpec.from_properties(event["ResourceProperties"], topic_arn=_topic_from_env())
    if event["RequestType"] == "Delete":
        return tear_down(event, spec, deadline)
    # A deploy never buys a commitment: it could still roll back, and a commitment cannot.
    report = serving.converge(
        clients(),
        spec,
        wait_seconds=deadline.remaining() - WORK_MARGIN_SECONDS,
        poll_seconds=POLL_SECONDS,
        sleep=pause,
        deploying=True,
        may_commit=False,
    )
    log("reconcile", reason=f"CloudFormation {event['RequestType']}", **report.as_log())
    if report.changed:
        subject = f"Fine-tuning {spec.fine_tuning} ({spec.environment}): serving"
        publish(spec.topic_arn, subject, report.summary())
    return custom_resource.Outcome(
        physical_id=physical_id(event), data={"EndpointArn": report.serving_arn or NOT_SERVING}
    )


def tear_down(
    event: Mapping[str, Any], spec: serving.ServingSpec, deadline: custom_resource.Deadline
) -> custom_resource.Outcome:
    """Delete (also after a Create that failed): what bills goes, or the delete fails, loudly;
    committed PTs are reported."""
    report = serving.teardown(
        clients(), spec, timeout_seconds=deadline.remaining() - WORK_MARGIN_SECONDS, sleep=pause
    )
    committed = [throughput.describe() for throughput in report.committed]
    log(
        "teardown",
        environment=spec.environment,
        fineTuning=spec.fine_tuning,
        stopped=report.stopped,
        deleted=report.deleted,
        committed=committed,
    )
    if report.committed or report.deleted or report.stopped:
        subject = f"Fine-tuning {spec.fine_tuning} ({spec.environment}): serving torn down"
        publish(spec.topic_arn, subject, report.summary())
    return custom_resource.Outcome(physical_id=str(event.get("PhysicalResourceId") or physical_id(event)))


def _topic_from_env() -> str | None:
    return os.environ.get("FINETUNE_TOPIC_ARN") or None
