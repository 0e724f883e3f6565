"""`Custom::CustomizationJob` as CloudFormation drives it, the job's completion (set in moto's
backend: moto never finishes a job), and, with bad data, the rejection paths on deploy and upload."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from finetune.cli.rehearsal.sandbox import LambdaContext
from finetune.cli.rehearsal.stack import asset_bytes
from finetune.cli.rehearsal.state import RehearsalState
from finetune.cli.rehearsal.timeline import Deviation
from finetune.core import names
from finetune.core.contracts import JobResource, TriggerEnvironment
from finetune.runtime import customization_job_trigger, responder


def job_event(state: RehearsalState, request_type: str, physical_id: str | None = None) -> dict[str, Any]:
    if not state.job_properties:
        state.job_properties = state.job_resource().to_properties()
    return state.cfn_event(
        request_type,
        JobResource.RESOURCE_TYPE,
        "CustomizationJobTriggerJob",
        "CustomizationJobTrigger",
        state.job_properties,
        physical_id,
    )


def create_job_answer(state: RehearsalState, generation: int = 1) -> dict[str, Any]:
    response = state.invoke_custom_resource(
        customization_job_trigger.handler, job_event(state, "Create"), "CustomizationJobTrigger"
    )
    if response["Status"] != "SUCCESS":
        raise Deviation(
            f"Custom::CustomizationJob Create answered {response['Status']}: {response['Reason']}"
        )
    expected = state.spec.generation_name(generation)
    if response["PhysicalResourceId"] != expected:
        raise Deviation(f"physical id {response['PhysicalResourceId']!r}, expected the job name {expected}")
    return response


def create_job(state: RehearsalState) -> str:
    response = create_job_answer(state)
    state.job_physical_id = str(response["PhysicalResourceId"])
    data = response["Data"]
    return f"{state.job_physical_id} {data['Status']} (digest {state.spec.digest[:12]}, SUCCESS)"


def expect_jobs(state: RehearsalState, count: int) -> str:
    found = state.jobs()
    job_names = [str(summary["jobName"]) for summary in found]
    if len(found) != count:
        prefix = names.job_name_prefix(state.environment, state.fine_tuning)
        raise Deviation(f"{len(found)} job(s) of {prefix}*, expected {count}: {job_names}")
    if count == 1 and job_names != [state.spec.job_name]:
        raise Deviation(f"the job is {job_names[0]}, expected the plan's {state.spec.job_name}")
    return f"{count} job(s)" + (f": {job_names[0]} {found[0]['status']}" if found else "")


def create_job_again(state: RehearsalState) -> str:
    response = create_job_answer(state)
    expect_jobs(state, 1)
    return f"same physical id {response['PhysicalResourceId']}; still one job"


def complete_job(state: RehearsalState, job_name: str | None = None) -> str:
    from moto.bedrock.models import bedrock_backends

    name = job_name or state.spec.job_name
    job = bedrock_backends[state.account][state.region].model_customization_jobs[name]
    job.status = "Completed"
    job.end_time = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    status = state.clients["bedrock"].get_model_customization_job(jobIdentifier=name)["status"]
    if status != "Completed":
        raise Deviation(f"GetModelCustomizationJob says {status}")
    return f"{name} Completed (set in moto's backend: moto never finishes a job)"


def create_candidate_jobs(state: RehearsalState) -> str:
    """Each candidate's `Custom::CustomizationJob` (a `Trial` property): its own job, never recorded
    as the deployed one."""
    started = []
    for candidate in state.plan.candidates:
        name = candidate.config.trial_name
        event = state.cfn_event(
            "Create",
            JobResource.RESOURCE_TYPE,
            f"CustomizationJobTriggerCandidate{name}",
            "CustomizationJobTrigger",
            state.job_resource(candidate).to_properties(),
        )
        response = state.invoke_custom_resource(
            customization_job_trigger.handler, event, "CustomizationJobTrigger"
        )
        if response["Status"] != "SUCCESS":
            raise Deviation(f"candidate {name}'s Create answered {response['Status']}: {response['Reason']}")
        expected = state.candidate_spec(candidate).job_name
        if response["PhysicalResourceId"] != expected:
            raise Deviation(
                f"candidate {name}: physical id {response['PhysicalResourceId']!r}, expected {expected}"
            )
        state.candidate_jobs[name] = expected
        started.append(f"{name}: {expected}")
    deployed = state.parameter(names.DEPLOYED_JOB_PARAMETER) or ""
    if state.spec.job_name not in deployed:
        raise Deviation(
            f"the deployed-job record is {deployed!r}: a candidate must not replace {state.spec.job_name}"
        )
    total = len(state.jobs())
    if total != 1 + len(state.plan.candidates):
        raise Deviation(f"{total} jobs, expected the main one and {len(state.plan.candidates)} candidate(s)")
    return "; ".join(started) + f" ({total} jobs; the deployed job is still {state.spec.job_name})"


def complete_candidates(state: RehearsalState) -> str:
    return "; ".join(complete_job(state, job) for job in state.candidate_jobs.values())


def redeploy_job(state: RehearsalState) -> str:
    """The stack deployed again after its destroy: in a `destroy` environment the teardown deleted
    the custom model, so the Completed job no longer counts and its next generation trains."""
    if state.config.environment.removal_policy == "destroy":
        response = create_job_answer(state, generation=2)
        name = str(response["PhysicalResourceId"])
        complete_job(state, name)
        return f"the model was deleted with the stack: {name} trained again (and completes)"
    response = create_job_answer(state)
    return f"the job resource's Create finds {response['PhysicalResourceId']} {response['Data']['Status']}"


def delete_job(state: RehearsalState) -> str:
    event = job_event(state, "Delete", state.job_physical_id)
    response = state.invoke_custom_resource(
        customization_job_trigger.handler, event, "CustomizationJobTrigger"
    )
    if response["Status"] != "SUCCESS":
        raise Deviation(
            f"Custom::CustomizationJob Delete answered {response['Status']}: {response['Reason']}"
        )
    throughputs, deployments = state.endpoints()
    if throughputs or deployments:
        raise Deviation("a provisioned throughput or deployment exists after the delete")
    status = state.clients["bedrock"].get_model_customization_job(jobIdentifier=state.job_physical_id)[
        "status"
    ]
    return f"SUCCESS; job {status}; nothing serving"


def create_job_rejected(state: RehearsalState) -> str:
    response = state.invoke_custom_resource(
        customization_job_trigger.handler, job_event(state, "Create"), "CustomizationJobTrigger"
    )
    state.job_physical_id = str(response["PhysicalResourceId"])
    if response["Status"] != "FAILED":
        raise Deviation(f"Custom::CustomizationJob Create answered {response['Status']} on corrupted data")
    location = f"{state.staged['training'][0]}:{state.bad_line}"
    if location not in response["Reason"]:
        raise Deviation(f"the reason does not name {location}: {response['Reason']}")
    first = next((line for line in response["Reason"].splitlines() if location in line), location)
    return f"FAILED as expected: {first}"


def rollback_delete(state: RehearsalState) -> str:
    if not responder.is_failed_create(state.job_physical_id):
        raise Deviation(f"the failed Create's physical id {state.job_physical_id!r} is not a placeholder")
    event = job_event(state, "Delete", state.job_physical_id)
    response = state.invoke_custom_resource(
        customization_job_trigger.handler, event, "CustomizationJobTrigger"
    )
    if response["Status"] != "SUCCESS":
        raise Deviation(f"the rollback's Delete answered {response['Status']}: {response['Reason']}")
    return f"SUCCESS for placeholder {state.job_physical_id}: nothing to delete"


def incoming_key(state: RehearsalState) -> str:
    return f"{names.INCOMING_PREFIX}{state.config.training_data.path.name}"


def upload(state: RehearsalState, key: str, content: bytes) -> list[dict[str, Any]]:
    """Put `content` under incoming/ and deliver S3's EventBridge event to the trigger function,
    with its environment as CustomizationJobTrigger sets it; the results it answers."""
    template = state.job_template()
    trigger = TriggerEnvironment(template, state.topic_arn)
    os.environ.update(trigger.to_environment(json.dumps(template.to_properties())))
    put = state.clients["s3"].put_object(Bucket=state.bucket, Key=key, Body=content)
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": state.account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": state.region,
        "resources": [f"arn:aws:s3:::{state.bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": state.bucket},
            "object": {
                "key": key,
                "size": len(content),
                "etag": str(put.get("ETag", "")).strip('"'),
                "version-id": put.get("VersionId", ""),
                "sequencer": "0",
            },
            "request-id": "rehearsal",
            "requester": state.account,
            "reason": "PutObject",
        },
    }
    answer = customization_job_trigger.handler(event, LambdaContext(function_name="CustomizationJobTrigger"))
    return list(answer.get("results", []))


def upload_rejected(state: RehearsalState) -> str:
    outcomes = [
        result.get("outcome") for result in upload(state, incoming_key(state), asset_bytes(state, "training"))
    ]
    if outcomes != ["rejected"]:
        raise Deviation(f"the upload's outcome is {outcomes}, expected ['rejected']")
    return f"s3://{state.bucket}/{incoming_key(state)}: rejected"


def upload_accepted(state: RehearsalState) -> str:
    """New valid data (the training records in another order) under incoming/: validated, staged
    as a managed copy, its job started and recorded as the deployed job."""
    lines = asset_bytes(state, "training").splitlines(keepends=True)
    content = b"".join(reversed([line if line.endswith(b"\n") else line + b"\n" for line in lines]))
    key = f"{names.INCOMING_PREFIX}reordered-{state.config.training_data.path.name}"
    results = upload(state, key, content)
    if [result.get("outcome") for result in results] != ["started"]:
        raise Deviation(f"the upload's outcome is {results}, expected one job started")
    job = results[0]["job"]
    status = state.clients["bedrock"].get_model_customization_job(jobIdentifier=job)["status"]
    deployed = json.loads(state.parameter(names.DEPLOYED_JOB_PARAMETER) or "{}")
    if deployed.get("jobName") != job or deployed.get("source") != "upload":
        raise Deviation(f"the deployed-job parameter is {deployed}, expected the upload's job {job}")
    return f"s3://{state.bucket}/{key}: job {job} {status}, now the deployed job"


def upload_tagged(state: RehearsalState) -> str:

    tags = {
        tag["Key"]: tag["Value"]
        for tag in state.clients["s3"].get_object_tagging(Bucket=state.bucket, Key=incoming_key(state))[
            "TagSet"
        ]
    }
    if tags.get(names.STATUS_TAG) != "rejected":
        raise Deviation(f"the upload's tags are {tags}, expected {names.STATUS_TAG}=rejected")
    return f"{names.STATUS_TAG}=rejected"


def upload_notified(state: RehearsalState) -> str:
    received = state.read_mailbox()
    location = f"s3://{state.bucket}/{incoming_key(state)}:{state.bad_line}"
    naming = [(subject, message) for subject, message in received if location in message]
    if not naming:
        raise Deviation(f"no notification names {location}; got {[subject for subject, _ in received]}")
    subject, message = naming[0]
    line = next(line for line in message.splitlines() if location in line)
    return f"{subject!r}: {line}"
