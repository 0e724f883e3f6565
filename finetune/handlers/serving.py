"""The serving lifecycle Lambda: job state changes, a scheduled reconcile, and `Custom::ServingLifecycle`.

Events it handles (anything else is logged and ignored):
- EventBridge `source: aws.bedrock`, `detail-type: Model Customization Job State Change`, for jobs of
  this fine-tuning (`<env>-<ft>-<12 hex>`): `detail.jobStatus` Completed -> reconcile and tell people
  what serves now; Failed / Stopped -> tell people why; other states -> nothing.
- EventBridge `source: aws.events`, `detail-type: Scheduled Event` -> reconcile; people are told only
  when it changed something (a missed completion recovered, a replacement PT now serving).
- CloudFormation `Custom::ServingLifecycle`: Create/Update -> reconcile with the properties' settings;
  Delete -> teardown (committed PTs are reported, not a failure; what cannot be deleted in time is).

Environment: FINETUNE_SERVING (JSON of `ServingSpec` fields), FINETUNE_TOPIC_ARN (notification topic).
Custom resource properties (strings): Environment, FineTuning, Region, Mode, ModelUnits, Commitment,
IdleAlarmHours, TopicArn. Attribute: EndpointArn (NOT_SERVING when nothing serves: a stack output
cannot be empty).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from finetune import custom_resource, serving

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

JOB_STATE_CHANGE = "Model Customization Job State Change"
SCHEDULED_EVENT = "Scheduled Event"
FAILED_STATES = ("Failed", "Stopped")
# Leave the custom resource this much of the Lambda's time to answer CloudFormation.
RESPONSE_MARGIN_SECONDS = 60.0
MAX_SUBJECT_CHARS = 100  # SNS Subject limit
NOT_SERVING = "none"


@cache
def clients() -> serving.Clients:
    """Created on first use, not at import (cold starts), with adaptive retries for throttling."""
    config = Config(retries={"mode": "adaptive", "max_attempts": 8})
    return serving.Clients(
        bedrock=boto3.client("bedrock", config=config),
        ssm=boto3.client("ssm", config=config),
        cloudwatch=boto3.client("cloudwatch", config=config),
        sns=boto3.client("sns", config=config),
    )


def log(action: str, **fields: Any) -> None:
    LOG.info(json.dumps({"action": action, **fields}, default=str))


def configured_spec() -> serving.ServingSpec:
    values = json.loads(os.environ["FINETUNE_SERVING"])
    return serving.ServingSpec.from_mapping(values, topic_arn=_topic_from_env())


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" in event and "ResponseURL" in event:
        return custom_resource.respond(event, lambda request: lifecycle(request, context))
    source, detail_type = event.get("source"), event.get("detail-type")
    if source == "aws.bedrock" and detail_type == JOB_STATE_CHANGE:
        return on_job_state_change(event.get("detail") or {})
    if source == "aws.events" and detail_type == SCHEDULED_EVENT:
        return on_schedule()
    log("ignored", reason="unknown event shape", source=source, detailType=detail_type)
    return {"action": "ignored"}


def on_job_state_change(detail: Mapping[str, Any]) -> dict[str, Any]:
    spec = configured_spec()
    job, status = str(detail.get("jobName", "")), str(detail.get("jobStatus", ""))
    if not serving.owns_job(spec.environment, spec.fine_tuning, job):
        log("ignored", reason="job of another fine-tuning", job=job, status=status)
        return {"action": "ignored", "job": job}
    if status in FAILED_STATES:
        message = serving.describe_failure(detail)
        publish(spec.topic_arn, f"Fine-tuning {spec.fine_tuning} ({spec.environment}): job {status}", message)
        log("job-" + status.lower(), job=job, failureMessage=detail.get("failureMessage"))
        return {"action": "notified", "job": job, "status": status}
    if status != "Completed":
        log("ignored", reason="job still running", job=job, status=status)
        return {"action": "ignored", "job": job, "status": status}
    report = reconcile_and_tell(
        spec, always_publish=True, reason=f"job {job} completed", completed=serving.model_from_event(detail)
    )
    return {"action": "reconciled", "job": job, "endpointArn": report.endpoint_arn or ""}


def on_schedule() -> dict[str, Any]:
    spec = configured_spec()
    report = reconcile_and_tell(spec, always_publish=False, reason="scheduled reconcile")
    return {"action": "reconciled", "changed": report.changed, "endpointArn": report.endpoint_arn or ""}


def reconcile_and_tell(
    spec: serving.ServingSpec,
    *,
    always_publish: bool,
    reason: str,
    completed: serving.ModelRef | None = None,
) -> serving.ReconcileReport:
    """Reconcile; tell people what serves now, or why it could not be done (then raise)."""
    subject = f"Fine-tuning {spec.fine_tuning} ({spec.environment})"
    try:
        report = serving.reconcile(clients(), spec, completed=completed)
    except serving.ServingError as error:
        log("reconcile-failed", reason=reason, error=str(error))
        publish(
            spec.topic_arn, f"{subject}: serving failed", f"{reason}: serving could not be set up.\n{error}"
        )
        raise
    log("reconcile", reason=reason, **report.as_log())
    if always_publish or report.changed:
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


def lifecycle(event: Mapping[str, Any], context: Any) -> custom_resource.Outcome:
    """`Custom::ServingLifecycle`: Create/Update reconcile, Delete tears down."""
    if event["RequestType"] == "Delete":
        return tear_down(event, context)
    spec = serving.ServingSpec.from_properties(event["ResourceProperties"], topic_arn=_topic_from_env())
    report = serving.reconcile(clients(), spec)
    log("reconcile", reason=f"CloudFormation {event['RequestType']}", **report.as_log())
    if report.changed:
        subject = f"Fine-tuning {spec.fine_tuning} ({spec.environment}): serving"
        publish(spec.topic_arn, subject, report.summary())
    return custom_resource.Outcome(
        physical_id=f"{spec.environment}-{spec.fine_tuning}-serving",
        data={"EndpointArn": report.endpoint_arn or NOT_SERVING},
    )


def tear_down(event: Mapping[str, Any], context: Any) -> custom_resource.Outcome:
    """Delete: what bills by the hour goes (or the delete fails, loudly); committed PTs are reported."""
    physical_id = str(event.get("PhysicalResourceId", ""))
    if custom_resource.is_failed_create(physical_id):
        return custom_resource.Outcome(physical_id=physical_id)
    properties = event["ResourceProperties"]
    environment, fine_tuning = str(properties["Environment"]), str(properties["FineTuning"])
    report = serving.teardown(
        clients(), environment, fine_tuning, timeout_seconds=_time_left(context, default=600.0)
    )
    committed = [throughput.describe() for throughput in report.committed]
    log(
        "teardown",
        environment=environment,
        fineTuning=fine_tuning,
        deleted=report.deleted,
        committed=committed,
    )
    if report.committed or report.deleted:
        topic_arn = str(properties.get("TopicArn") or "") or _topic_from_env()
        publish(topic_arn, f"Fine-tuning {fine_tuning} ({environment}): serving torn down", report.summary())
    return custom_resource.Outcome(physical_id=physical_id)


def _topic_from_env() -> str | None:
    return os.environ.get("FINETUNE_TOPIC_ARN") or None


def _time_left(context: Any, *, default: float) -> float:
    """Seconds the teardown may wait: the Lambda's remaining time minus the margin to answer."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return default
    return max(float(remaining()) / 1000.0 - RESPONSE_MARGIN_SECONDS, 0.0)
