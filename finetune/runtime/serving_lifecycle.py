"""The `ServingLifecycle` function: Bedrock's job state changes, the hourly schedule, and
`Custom::ServingLifecycle` (contract `finetune.core.contracts.ServingResource`, in the properties
and, the same, in FINETUNE_SERVING). What each event does: `finetune.aws.serving_events`.

The attribute EndpointArn names what serves when the answer is sent (NOT_SERVING when nothing
does: a stack output cannot be empty).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from finetune.aws import serving_events
from finetune.aws.endpoints import Clients
from finetune.aws.log import log
from finetune.core.contracts import JobStateChange, ServingResource
from finetune.core.deadline import Deadline
from finetune.runtime import responder
from finetune.runtime.clients import client

SCHEDULED_EVENT = "Scheduled Event"
NOT_SERVING = "none"
# Waits end this long before the deadline guard's answer, so a run's own outcome (a teardown that
# could not finish, naming what still bills) is what CloudFormation receives.
WORK_MARGIN_SECONDS = 10.0
# How a run waits between reconcile passes; the rehearsal replaces it (its fake has no clock).
pause: Callable[[float], None] = time.sleep


def clients() -> Clients:
    return Clients(
        bedrock=client("bedrock"),
        ssm=client("ssm"),
        cloudwatch=client("cloudwatch"),
        sns=client("sns"),
        cloudformation=client("cloudformation"),
        s3=client("s3"),
        runtime=client("bedrock-runtime"),
    )


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" in event and "ResponseURL" in event:
        return responder.respond(event, lifecycle, context=context, failure_id=physical_id)
    wait = Deadline.from_context(context).remaining() - WORK_MARGIN_SECONDS
    if JobStateChange.matches(event):
        spec = ServingResource.from_environment(os.environ)
        change = JobStateChange.from_event(event)
        return serving_events.on_job_state_change(clients(), spec, change, wait_seconds=wait, sleep=pause)
    if event.get("source") == "aws.events" and event.get("detail-type") == SCHEDULED_EVENT:
        spec = ServingResource.from_environment(os.environ)
        return serving_events.on_schedule(clients(), spec, wait_seconds=wait, sleep=pause)
    log(
        "ignored",
        reason="unknown event shape",
        source=event.get("source"),
        detailType=event.get("detail-type"),
    )
    return {"action": "ignored"}


def physical_id(event: Mapping[str, Any]) -> str:
    """One fixed id per fine-tuning, also for a Create that failed half way: its rollback Delete
    then tears down whatever that Create had made (a placeholder id would leave a PT billing)."""
    properties = event.get("ResourceProperties") or {}
    return f"{properties.get('Environment')}-{properties.get('FineTuning')}-serving"


def lifecycle(event: Mapping[str, Any], deadline: Deadline) -> responder.Outcome:
    """Create/Update: the deploy's reconcile. Delete (also after a Create that failed): the
    teardown; what cannot be deleted in time fails the delete, loudly."""
    spec = ServingResource.from_properties(event["ResourceProperties"])
    time_left = deadline.remaining() - WORK_MARGIN_SECONDS
    if event["RequestType"] == "Delete":
        serving_events.on_destroy(clients(), spec, timeout_seconds=time_left, sleep=pause)
        return responder.Outcome(physical_id=str(event.get("PhysicalResourceId") or physical_id(event)))
    report = serving_events.on_deploy(
        clients(), spec, event["RequestType"], wait_seconds=time_left, sleep=pause
    )
    return responder.Outcome(
        physical_id=physical_id(event), data={"EndpointArn": report.serving_arn or NOT_SERVING}
    )
