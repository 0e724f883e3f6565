"""The `CustomizationJobTrigger` function: `Custom::CustomizationJob` requests, uploads under
incoming/ (S3 event notifications, or S3 events from EventBridge), and `{"finetune": "retry", "job":
NAME}` from `python -m finetune retry`. The operations are `finetune.aws.training`'s; the contracts
`finetune.core.contracts.JobResource` and `TriggerEnvironment`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from finetune.aws import training
from finetune.aws.jobs import JobState
from finetune.core.contracts import JobResource, ObjectUpload, TriggerEnvironment
from finetune.core.deadline import Deadline
from finetune.runtime import responder
from finetune.runtime.clients import client


def clients() -> training.TrainingClients:
    return training.TrainingClients(
        bedrock=client("bedrock"), s3=client("s3"), sns=client("sns"), ssm=client("ssm")
    )


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" in event:
        return responder.respond(event, customization_job, context=context)
    if training.is_retry_event(event):
        settings = TriggerEnvironment.from_environment(os.environ)
        return training.retry_job(clients(), settings, event, Deadline.from_context(context))
    uploads = ObjectUpload.from_event(event)
    if uploads is not None:
        return training.handle_uploads(clients(), TriggerEnvironment.from_environment(os.environ), uploads)
    raise ValueError(
        f"unrecognised event (keys {sorted(event)}): expected a CloudFormation custom resource request "
        f"({JobResource.RESOURCE_TYPE}), an S3 event notification, an S3 event from EventBridge or "
        f'{{"{training.EVENT_KEY}": "{training.RETRY_EVENT}", "job": "<job name>"}}'
    )


def customization_job(event: Mapping[str, Any], deadline: Deadline) -> responder.Outcome:
    """Create/Update: the job of the properties, found or started (`training.ensure_job`), recorded
    as the deployed job unless it is a candidate's. Delete: `training.on_delete`. Physical id: the job's name."""
    if event["RequestType"] == "Delete":
        physical_id = str(event.get("PhysicalResourceId") or "")
        training.on_delete(clients(), physical_id, event.get("ResourceProperties") or {})
        return responder.Outcome(physical_id=physical_id)
    resource = JobResource.from_properties(event.get("ResourceProperties") or {})
    request = resource.request()
    old_digest = (event.get("OldResourceProperties") or {}).get("JobDigest")
    state = training.ensure_job(clients(), request, deadline, resource.template.training_budget)
    if resource.is_candidate:
        return outcome(state)  # trained for the evaluation gate, which reads its name from its own contract
    training.record_deploy(
        clients(),
        request,
        state,
        job_changed=not (event["RequestType"] == "Update" and old_digest == request.spec.digest),
        stop_superseded=resource.template.stop_superseded,
    )
    return outcome(state)


def outcome(state: JobState) -> responder.Outcome:
    return responder.Outcome(
        physical_id=state.job_name,
        data={
            "JobArn": state.job_arn,
            "JobName": state.job_name,
            "CustomModelName": state.custom_model_name,
            "Status": state.status,
        },
    )
