"""finetune.runtime.serving_lifecycle: job events, the scheduled reconcile and Custom::ServingLifecycle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto import mock_aws

from finetune.aws import endpoints, jobs, serving
from finetune.core import names as identity
from finetune.core.contracts import ServingResource, ServingSettings
from finetune.runtime import responder as custom_resource
from finetune.runtime import serving_lifecycle as handler_module
from tests.fakes import (
    REGION,
    World,
    create_job,
    deploy_serving,
    make_world,
    sent_notifications,
    set_job_status,
)

ENV, FT = "dev", "support-assistant"
JOB = f"{ENV}-{FT}-{'a' * 12}"
T0 = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, fake_aws_credentials: None) -> Iterator[World]:
    with mock_aws():
        built = make_world()
        deploy_serving(built, ENV, FT)
        monkeypatch.setattr(handler_module, "clients", lambda: built.clients)
        # While a run waits for a PT, time passes: the fake's creations finish.
        monkeypatch.setattr(handler_module, "pause", lambda _seconds: built.fake.settle())
        configure(monkeypatch, built)
        yield built


def configure(monkeypatch: pytest.MonkeyPatch, world: World, **changes: Any) -> None:
    """FINETUNE_SERVING as ServingLifecycle writes it (the resource's properties); `changes` of the
    settings (mode, commitment, ...) or of the resource (stack_id, ...)."""
    settings = replace(
        ServingSettings("provisioned", 1, "none", 24),
        **{
            key: value
            for key, value in changes.items()
            if key in ("mode", "model_units", "commitment", "idle_alarm_hours")
        },
    )
    others = {key: value for key, value in changes.items() if key not in vars(settings)}
    resource = ServingResource(ENV, FT, REGION, settings, topic_arn=world.topic_arn, **others)
    monkeypatch.setenv(ServingResource.ENVIRONMENT_VARIABLE, json.dumps(resource.to_properties()))


def job_event(status: str, job: str = JOB, **detail: Any) -> dict[str, Any]:
    """The EventBridge event shape of the Bedrock user guide's sample (How EventBridge for Amazon Bedrock works)."""
    arn = f"arn:aws:bedrock:{REGION}:123456789012:model-customization-job/{job}"
    return {
        "version": "0",
        "id": "0d1c8e4e-1111-2222-3333-444455556666",
        "detail-type": "Model Customization Job State Change",
        "source": "aws.bedrock",
        "account": "123456789012",
        "time": "2026-08-01T11:00:00Z",
        "region": REGION,
        "resources": [arn],
        "detail": {"jobName": job, "jobArn": arn, "jobStatus": status, **detail},
    }


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def finish(world: World, status: str = "Completed", job: str = JOB, hours: int = 0) -> None:
    create_job(world.jobs, job)
    set_job_status(job, status, ended=T0 + timedelta(hours=hours))


class Responses:
    """Captures what the custom resource answers CloudFormation."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, url: str, body: bytes) -> None:
        self.bodies.append(json.loads(body))


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> Responses:
    captured = Responses()
    monkeypatch.setattr(custom_resource, "put_response", captured)
    return captured


class LambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def cfn_event(
    request_type: str, world: World, physical_id: str | None = None, **properties: str
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/put",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/dev-support-assistant/1",
        "RequestId": "request-1",
        "LogicalResourceId": "ServingLifecycle",
        "ResourceType": "Custom::ServingLifecycle",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:serving",
            "Environment": ENV,
            "FineTuning": FT,
            "Region": REGION,
            "Mode": "provisioned",
            "ModelUnits": "1",
            "Commitment": "none",
            "IdleAlarmHours": "24",
            "TopicArn": world.topic_arn,
            **properties,
        },
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


# --------------------------------------------------------------------------------------------------
# Job state changes
# --------------------------------------------------------------------------------------------------


def test_completed_job_is_served_and_people_are_told(world: World) -> None:
    finish(world)

    result = handler_module.handler(job_event("Completed"), None)

    (arn,) = world.fake.throughputs
    assert result == {"action": "reconciled", "job": JOB, "endpointArn": arn}
    ((subject, message),) = sent_notifications(world.topic_arn)
    assert subject is not None and "model ready" in subject
    assert f"job {JOB} completed" in message
    assert arn in message
    assert identity.ssm_parameter_name(ENV, FT, "custom-model-arn") in message


def test_the_same_completion_five_times_makes_one_pt(world: World) -> None:
    finish(world)

    for _ in range(5):
        handler_module.handler(job_event("Completed"), None)

    assert len(world.fake.throughputs) == 1
    assert len(world.fake.calls_of("create_provisioned_model_throughput")) == 1


def test_a_completion_the_job_list_does_not_show_yet_is_served(world: World) -> None:
    create_job(world.jobs, JOB)  # the list still says InProgress (eventual consistency)
    model = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abcabcabcabc"
    event = job_event("Completed", outputModelArn=model, endTime="2026-08-01T11:00:00Z")

    handler_module.handler(event, None)

    (create,) = world.fake.calls_of("create_provisioned_model_throughput")
    assert create["modelId"] == model


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_failed_or_stopped_job_tells_people_why(world: World, status: str) -> None:
    finish(world, status)
    event = job_event(status, failureMessage="Insufficient training records: 3 < 8")

    result = handler_module.handler(event, None)

    assert result["action"] == "notified"
    ((subject, message),) = sent_notifications(world.topic_arn)
    assert subject is not None and status in subject
    assert JOB in message
    assert "Insufficient training records: 3 < 8" in message
    assert world.fake.calls == []


def test_a_running_job_changes_nothing(world: World) -> None:
    result = handler_module.handler(job_event("InProgress"), None)

    assert result["action"] == "ignored"
    assert sent_notifications(world.topic_arn) == []
    assert world.fake.calls == []


def test_another_fine_tunings_job_is_ignored(world: World) -> None:
    other = f"{ENV}-{FT}-bot-{'b' * 12}"
    finish(world, job=other)

    result = handler_module.handler(job_event("Completed", job=other), None)

    assert result == {"action": "ignored", "job": other}
    assert world.fake.throughputs == {}
    assert sent_notifications(world.topic_arn) == []


def test_a_quota_refusal_is_told_and_raised(world: World) -> None:
    finish(world)
    world.fake.fail_next("create_provisioned_model_throughput", "ServiceQuotaExceededException", "quota 0")

    with pytest.raises(endpoints.QuotaExceededError):
        handler_module.handler(job_event("Completed"), None)

    ((subject, message),) = sent_notifications(world.topic_arn)
    assert subject is not None and "serving failed" in subject
    assert "start at 0 until AWS support raises them" in message


def test_on_demand_mode_from_the_environment(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, world, mode="on_demand")
    finish(world)

    handler_module.handler(job_event("Completed"), None)

    assert len(world.fake.deployments) == 1
    assert world.fake.throughputs == {}


def test_unknown_events_are_ignored(world: World) -> None:
    assert handler_module.handler({"source": "aws.s3", "detail-type": "Object Created"}, None) == {
        "action": "ignored"
    }
    assert world.fake.calls == []


# --------------------------------------------------------------------------------------------------
# Scheduled reconcile
# --------------------------------------------------------------------------------------------------


def test_a_missed_completion_is_recovered_by_the_schedule(world: World) -> None:
    finish(world)  # completed, but no event arrived

    first = handler_module.handler(SCHEDULED, None)

    (arn,) = world.fake.throughputs
    # The run waited while the PT came up: it serves, the endpoint is published, people are told once.
    assert first == {"action": "reconciled", "changed": True, "endpointArn": arn}
    assert world.fake.throughputs[arn]["status"] == "InService"
    (notice,) = sent_notifications(world.topic_arn)
    assert "model ready, serving" in str(notice[0])

    quiet = handler_module.handler(SCHEDULED, None)
    assert quiet["changed"] is False
    assert len(sent_notifications(world.topic_arn)) == 1


def test_a_run_with_no_time_left_answers_what_serves_and_leaves_the_rest_to_the_next(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish(world)
    monkeypatch.setattr(handler_module, "pause", lambda _seconds: pytest.fail("no time to wait"))

    first = handler_module.handler(SCHEDULED, LambdaContext(50_000))

    (arn,) = world.fake.throughputs
    assert first["endpointArn"] == ""  # created, not serving yet
    assert world.fake.throughputs[arn]["status"] == "Creating"
    world.fake.settle()
    assert handler_module.handler(SCHEDULED, LambdaContext(50_000))["endpointArn"] == arn


def test_the_schedule_before_any_completion_is_silent(world: World) -> None:
    result = handler_module.handler(SCHEDULED, None)

    assert result == {"action": "reconciled", "changed": False, "endpointArn": ""}
    assert sent_notifications(world.topic_arn) == []


# --------------------------------------------------------------------------------------------------
# Custom::ServingLifecycle
# --------------------------------------------------------------------------------------------------


def test_create_reconciles_with_the_properties(world: World, responses: Responses) -> None:
    finish(world)

    handler_module.handler(cfn_event("Create", world, ModelUnits="3"), LambdaContext(900_000))

    (body,) = responses.bodies
    (arn,) = world.fake.throughputs
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"{ENV}-{FT}-serving"
    assert body["Data"] == {"EndpointArn": arn}
    (create,) = world.fake.calls_of("create_provisioned_model_throughput")
    assert create["modelUnits"] == 3 and "commitmentDuration" not in create


class StackStatus:
    """CloudFormation's DescribeStacks for the stack, in a given state."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.asked: list[str] = []

    def describe_stacks(self, *, StackName: str) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        self.asked.append(StackName)
        return {"Stacks": [{"StackName": "dev-support-assistant", "StackStatus": self.status}]}


STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/dev-support-assistant/1"


def test_a_deploy_never_buys_a_commitment_the_first_run_after_it_does(
    world: World, responses: Responses, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish(world)
    stack = StackStatus("UPDATE_IN_PROGRESS")
    clients = replace(world.clients, cloudformation=stack)
    monkeypatch.setattr(handler_module, "clients", lambda: clients)
    configure(monkeypatch, world, commitment="OneMonth", stack_id=STACK_ID)

    handler_module.handler(
        cfn_event("Create", world, Commitment="OneMonth", StackId=STACK_ID), LambdaContext(900_000)
    )
    (body,) = responses.bodies
    assert body["Status"] == "SUCCESS" and body["Data"] == {"EndpointArn": "none"}
    assert world.fake.calls_of("create_provisioned_model_throughput") == []

    # A completion while the deploy still runs (it could roll back): still nothing bought.
    handler_module.handler(SCHEDULED, None)
    assert world.fake.calls_of("create_provisioned_model_throughput") == []
    assert stack.asked == [STACK_ID]

    stack.status = "UPDATE_COMPLETE"
    handler_module.handler(SCHEDULED, None)
    (create,) = world.fake.calls_of("create_provisioned_model_throughput")
    assert create["commitmentDuration"] == "OneMonth"


@pytest.mark.parametrize(
    ("status", "buys"),
    [
        ("CREATE_COMPLETE", True),
        ("UPDATE_COMPLETE", True),
        ("UPDATE_ROLLBACK_COMPLETE", True),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", False),
        ("UPDATE_ROLLBACK_IN_PROGRESS", False),
        ("DELETE_IN_PROGRESS", False),
    ],
)
def test_a_commitment_waits_for_a_stack_no_deploy_can_roll_back(status: str, buys: bool) -> None:
    assert serving.stack_is_stable(StackStatus(status), STACK_ID) is buys
    assert serving.stack_is_stable(None, STACK_ID) is False
    assert serving.stack_is_stable(StackStatus("UPDATE_COMPLETE"), None) is False


def test_create_before_any_job_completes_succeeds_with_no_endpoint(
    world: World, responses: Responses
) -> None:
    handler_module.handler(cfn_event("Create", world), LambdaContext(900_000))

    (body,) = responses.bodies
    assert body["Status"] == "SUCCESS"
    assert body["Data"] == {"EndpointArn": "none"}


def test_update_to_mode_none_removes_the_pt(world: World, responses: Responses) -> None:
    finish(world)
    physical_id = f"{ENV}-{FT}-serving"
    handler_module.handler(cfn_event("Create", world), LambdaContext(900_000))
    world.fake.settle()

    handler_module.handler(cfn_event("Update", world, physical_id, Mode="none"), LambdaContext(900_000))

    assert responses.bodies[-1]["Status"] == "SUCCESS"
    assert responses.bodies[-1]["Data"] == {"EndpointArn": "none"}
    assert world.fake.throughputs == {}


def test_invalid_properties_fail_with_a_clear_reason(world: World, responses: Responses) -> None:
    handler_module.handler(cfn_event("Create", world, Mode="always"), LambdaContext(900_000))

    (body,) = responses.bodies
    assert body["Status"] == "FAILED"
    assert "mode: got 'always'; accepted: 'provisioned' | 'on_demand' | 'none'" in body["Reason"]


def test_delete_tears_down_and_reports_committed_pts(world: World, responses: Responses) -> None:
    finish(world)
    physical_id = f"{ENV}-{FT}-serving"
    committed_spec = ServingResource(
        ENV, FT, REGION, ServingSettings("provisioned", 1, "OneMonth"), topic_arn=world.topic_arn
    )
    serving.reconcile(world.clients, committed_spec, may_commit=True)  # a scheduled run bought it
    world.fake.settle()
    handler_module.handler(cfn_event("Update", world, physical_id, ModelUnits="2"), LambdaContext(900_000))
    (committed,) = [arn for arn, record in world.fake.throughputs.items() if record.get("commitmentDuration")]

    handler_module.handler(cfn_event("Delete", world, physical_id, ModelUnits="2"), LambdaContext(900_000))

    body = responses.bodies[-1]
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == physical_id
    assert list(world.fake.throughputs) == [committed]
    subject, message = sent_notifications(world.topic_arn)[-1]
    assert subject is not None and "torn down" in subject
    assert committed in message and "keeps billing it until" in message


def test_a_delete_that_cannot_finish_fails_loudly(world: World, responses: Responses) -> None:
    finish(world)
    physical_id = f"{ENV}-{FT}-serving"
    handler_module.handler(cfn_event("Create", world), LambdaContext(900_000))
    world.fake.delete_polls = None  # Bedrock never finishes deleting
    (arn,) = world.fake.throughputs

    # A minute left: the teardown gives up before the deadline guard would, so its own error
    # (naming what still bills) reaches CloudFormation.
    handler_module.handler(cfn_event("Delete", world, physical_id), LambdaContext(56_000))

    body = responses.bodies[-1]
    assert body["Status"] == "FAILED"
    assert "TeardownIncompleteError" in body["Reason"] and arn in body["Reason"]


def test_a_create_that_fails_after_making_a_pt_is_rolled_back_to_nothing(
    world: World, responses: Responses
) -> None:
    finish(world)
    world.fake.fail_next("get_provisioned_model_throughput", "InternalServerException", "after the create")

    handler_module.handler(cfn_event("Create", world), LambdaContext(900_000))

    failed = responses.bodies[-1]
    assert failed["Status"] == "FAILED"
    assert len(world.fake.throughputs) == 1  # the PT was made before the failure
    # Not a placeholder: the rollback's Delete names the resource, and tears its PT down.
    assert failed["PhysicalResourceId"] == f"{ENV}-{FT}-serving"
    handler_module.handler(cfn_event("Delete", world, failed["PhysicalResourceId"]), LambdaContext(900_000))
    assert responses.bodies[-1]["Status"] == "SUCCESS"
    assert world.fake.throughputs == {}


def test_a_delete_with_nothing_served_succeeds_quietly(world: World, responses: Responses) -> None:
    physical_id = custom_resource.failed_create_id({"RequestId": "request-0"})  # made by older code

    handler_module.handler(cfn_event("Delete", world, physical_id), LambdaContext(900_000))

    (body,) = responses.bodies
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == physical_id
    assert sent_notifications(world.topic_arn) == []


def test_the_end_of_a_superseded_job_is_told_and_never_served(world: World) -> None:
    finish(world, job=JOB)
    deployed = f"{ENV}-{FT}-{'b' * 12}"
    create_job(world.jobs, deployed)
    jobs.record_deployed_job(world.clients.ssm, ENV, FT, jobs.DeployedJob(deployed, "b" * 64, jobs.DEPLOY))

    result = handler_module.handler(job_event("Completed", outputModelArn="arn:model/old"), None)

    assert result == {"action": "ignored", "job": JOB, "status": "Completed", "deployed": deployed}
    assert world.fake.calls == []
    ((subject, message),) = sent_notifications(world.topic_arn)
    assert subject is not None and "superseded job Completed" in subject
    assert "not the deployed configuration's job" in message and deployed in message


def test_a_failed_pt_found_by_the_schedule_is_told(world: World) -> None:
    finish(world)
    handler_module.handler(SCHEDULED, None)
    (failed,) = world.fake.throughputs
    world.fake.throughputs[failed].update(status="Failed", failureMessage="Capacity not available")

    handler_module.handler(SCHEDULED, None)

    subject, message = sent_notifications(world.topic_arn)[-1]
    assert subject is not None and subject.endswith("serving failed")
    assert "Capacity not available" in message and failed in message
    (replacement,) = world.fake.throughputs
    assert replacement != failed and world.fake.throughputs[replacement]["status"] == "InService"


def test_a_candidates_failed_job_is_told_as_the_gates_not_as_superseded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finetune.core.contracts import EvaluationGate, GateTrial
    from finetune.core.evaluation import EvaluationSettings, Gate

    deployed, candidate = f"{ENV}-{FT}-{'b' * 12}", JOB
    gate = EvaluationGate(
        EvaluationSettings(
            "x/e.jsonl", ("Builtin.Correctness",), Gate(beat_base=True), judge_model="amazon.nova-pro-v1:0"
        ),
        (
            GateTrial("main", deployed, "amazon.nova-micro-v1:0:128k"),
            GateTrial("slow", candidate, "amazon.nova-micro-v1:0:128k"),
        ),
        "arn:aws:iam::123456789012:role/evaluation",
        "bucket",
        "evaluation-data/x/e.jsonl",
    )
    configure(monkeypatch, world, gate=gate)
    create_job(world.jobs, deployed)
    finish(world, status="Failed", job=candidate)
    jobs.record_deployed_job(world.clients.ssm, ENV, FT, jobs.DeployedJob(deployed, "b" * 64, jobs.DEPLOY))

    result = handler_module.handler(job_event("Failed", job=candidate, failureMessage="quota"), None)

    assert result == {"action": "notified", "job": candidate, "status": "Failed"}
    ((subject, message),) = sent_notifications(world.topic_arn)
    assert subject is not None and "candidate job Failed" in subject
    assert "candidate of the evaluation gate" in message and "python -m finetune retry" not in message
