"""finetune.aws.serving: reconcile and teardown against moto (jobs, SSM, CloudWatch, SNS) and the fake."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from finetune.aws import endpoints, jobs, serving, teardown
from finetune.core import names
from finetune.core.contracts import ServingResource, ServingSettings
from tests.fakes import REGION, World, create_job, deploy_serving, job_model_arn, make_world, set_job_status

ENV, FT = "dev", "support-assistant"
T0 = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
MODEL_PARAMETER = names.ssm_parameter_name(ENV, FT, "custom-model-arn")
ENDPOINT_PARAMETER = names.ssm_parameter_name(ENV, FT, "endpoint-arn")


@pytest.fixture
def world(fake_aws_credentials: None) -> Iterator[World]:
    with mock_aws():
        built = make_world()
        deploy_serving(built, ENV, FT)
        yield built


SETTINGS = ("mode", "model_units", "commitment", "idle_alarm_hours")


def spec(world: World, **changes: Any) -> ServingResource:
    """The serving resource of ENV/FT, provisioned with one unit; `changes` of settings or of it."""
    settings = ServingSettings("provisioned", 1, "none", 12)
    settings = replace(settings, **{key: value for key, value in changes.items() if key in SETTINGS})
    base = ServingResource(
        environment=ENV, fine_tuning=FT, region=REGION, settings=settings, topic_arn=world.topic_arn
    )
    return replace(base, **{key: value for key, value in changes.items() if key not in SETTINGS})


def completed_job(world: World, digest: str, *, hours_after_t0: int = 0, fine_tuning: str = FT) -> str:
    """A Completed job of the fine-tuning; returns the custom model ARN it reports."""
    name = f"{ENV}-{fine_tuning}-{digest * 12}"[: len(f"{ENV}-{fine_tuning}-") + 12]
    create_job(world.jobs, name)
    set_job_status(name, "Completed", ended=T0 + timedelta(hours=hours_after_t0))
    return job_model_arn(name)


def parameter(world: World, name: str) -> str | None:
    try:
        return str(world.clients.ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except world.clients.ssm.exceptions.ParameterNotFound:
        return None


def alarms(world: World) -> list[dict[str, Any]]:
    return list(world.clients.cloudwatch.describe_alarms(AlarmNamePrefix=f"{ENV}-{FT}-")["MetricAlarms"])


def throughput_names(world: World) -> list[str]:
    return sorted(record["provisionedModelName"] for record in world.fake.throughputs.values())


# --------------------------------------------------------------------------------------------------
# Provisioned throughput
# --------------------------------------------------------------------------------------------------


def test_completed_job_gets_a_pt_with_its_units_tags_and_parameters(world: World) -> None:
    model = completed_job(world, "a")
    wanted = spec(world, model_units=2)

    report = serving.reconcile(world.clients, wanted)

    (create,) = world.fake.calls_of("create_provisioned_model_throughput")
    assert create["modelUnits"] == 2
    assert create["modelId"] == model
    assert "commitmentDuration" not in create
    assert create["provisionedModelName"] == serving.throughput_name(wanted)
    tags = {tag["key"]: tag["value"] for tag in create["tags"]}
    assert tags == {**names.resource_tags(ENV, FT), "finetune:custom-model-arn": model}
    assert parameter(world, MODEL_PARAMETER) == model
    # The PT is still Creating: the endpoint parameter waits until it serves.
    assert parameter(world, ENDPOINT_PARAMETER) is None
    assert report.endpoint_arn is not None and not report.endpoint_ready
    assert report.changed

    world.fake.settle()
    serving_report = serving.reconcile(world.clients, wanted)
    assert parameter(world, ENDPOINT_PARAMETER) == report.endpoint_arn
    assert serving_report.endpoint_ready
    assert serving_report.changes == [f"SSM parameter {ENDPOINT_PARAMETER} = {report.endpoint_arn}"]

    steady = serving.reconcile(world.clients, wanted)
    assert steady.changes == []
    assert len(world.fake.calls_of("create_provisioned_model_throughput")) == 1


def test_a_commitment_is_requested_only_when_configured(world: World) -> None:
    completed_job(world, "a")

    serving.reconcile(world.clients, spec(world, commitment="SixMonths"))

    (create,) = world.fake.calls_of("create_provisioned_model_throughput")
    assert create["commitmentDuration"] == "SixMonths"


def test_a_newer_model_is_swapped_into_the_existing_pt(world: World) -> None:
    first = completed_job(world, "a", hours_after_t0=0)
    serving.reconcile(world.clients, spec(world))
    world.fake.settle()
    serving.reconcile(world.clients, spec(world))
    second = completed_job(world, "b", hours_after_t0=5)

    report = serving.reconcile(world.clients, spec(world))

    assert len(world.fake.throughputs) == 1
    assert len(world.fake.calls_of("create_provisioned_model_throughput")) == 1
    (update,) = world.fake.calls_of("update_provisioned_model_throughput")
    (arn,) = world.fake.throughputs
    assert update == {"provisionedModelId": arn, "desiredModelId": second}
    assert world.fake.tags[arn]["finetune:custom-model-arn"] == second
    assert parameter(world, MODEL_PARAMETER) == second
    assert parameter(world, ENDPOINT_PARAMETER) == arn  # the same PT serves throughout: no gap
    assert any(first in change and second in change for change in report.changes)


def test_the_newest_model_wins_whatever_the_order_of_completion(world: World) -> None:
    newer = completed_job(world, "b", hours_after_t0=5)
    completed_job(world, "a", hours_after_t0=1)  # created later, but ended earlier

    ref = endpoints.latest_completed_model(world.fake, ENV, FT)

    assert ref is not None and ref.model_arn == newer


def test_the_same_event_five_times_makes_one_pt(world: World) -> None:
    completed_job(world, "a")

    reports = [serving.reconcile(world.clients, spec(world)) for _ in range(5)]

    assert len(world.fake.throughputs) == 1
    assert len(world.fake.calls_of("create_provisioned_model_throughput")) == 1
    assert len({report.endpoint_arn for report in reports}) == 1
    assert len(alarms(world)) == 1


def test_a_create_that_races_a_lagging_list_adopts_the_same_pt(world: World) -> None:
    completed_job(world, "a")
    # The list does not show the PT yet (eventual consistency): the name, which Bedrock keeps unique,
    # prevents a second one; the refused create adopts the first.
    world.fake.list_provisioned_model_throughputs = lambda **_: {"provisionedModelSummaries": []}  # type: ignore[method-assign]

    first_report = serving.reconcile(world.clients, spec(world))
    second_report = serving.reconcile(world.clients, spec(world))

    first, second = world.fake.calls_of("create_provisioned_model_throughput")
    assert first["clientRequestToken"] != second["clientRequestToken"]
    assert len(world.fake.throughputs) == 1
    assert second_report.endpoint_arn == first_report.endpoint_arn
    assert any("adopted" in note for note in second_report.notes)


def test_nothing_is_served_before_a_job_completes(world: World) -> None:
    create_job(world.jobs, f"{ENV}-{FT}-{'c' * 12}")  # InProgress

    report = serving.reconcile(world.clients, spec(world))

    assert report.model is None
    assert "nothing to serve" in report.summary()
    assert world.fake.calls_of("create_provisioned_model_throughput") == []
    assert parameter(world, MODEL_PARAMETER) is None


def test_jobs_of_a_fine_tuning_with_a_longer_name_are_not_ours(world: World) -> None:
    ours = completed_job(world, "a", hours_after_t0=0)
    completed_job(world, "b", hours_after_t0=9, fine_tuning=f"{FT}-bot")

    ref = endpoints.latest_completed_model(world.fake, ENV, FT)

    assert ref is not None and ref.model_arn == ours


def test_a_units_change_makes_a_new_pt_and_deletes_the_old_once_the_new_serves(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world, model_units=1))
    world.fake.settle()
    serving.reconcile(world.clients, spec(world, model_units=1))
    (old_arn,) = world.fake.throughputs

    switching = serving.reconcile(world.clients, spec(world, model_units=3))

    assert throughput_names(world) == sorted(
        [
            serving.throughput_name(spec(world, model_units=1)),
            serving.throughput_name(spec(world, model_units=3)),
        ]
    )
    assert parameter(world, ENDPOINT_PARAMETER) == old_arn  # the old PT serves until the new one does
    assert any("deleted once" in note for note in switching.notes)

    world.fake.settle()
    switched = serving.reconcile(world.clients, spec(world, model_units=3))

    (new_arn,) = world.fake.throughputs
    assert new_arn != old_arn
    assert world.fake.calls_of("delete_provisioned_model_throughput") == [{"provisionedModelId": old_arn}]
    assert parameter(world, ENDPOINT_PARAMETER) == new_arn
    assert [alarm["Dimensions"][0]["Value"] for alarm in alarms(world)] == [new_arn]
    assert any(old_arn in change and "deleted" in change for change in switched.changes)


def test_a_committed_pt_is_reported_and_never_deleted(world: World) -> None:
    completed_job(world, "a")
    committed = spec(world, model_units=1, commitment="OneMonth")
    serving.reconcile(world.clients, committed)
    world.fake.settle()
    (committed_arn,) = world.fake.throughputs

    serving.reconcile(world.clients, spec(world, model_units=2))
    world.fake.settle()
    report = serving.reconcile(world.clients, spec(world, model_units=2), now=world.fake.now)

    assert committed_arn in world.fake.throughputs
    assert world.fake.calls_of("delete_provisioned_model_throughput") == []
    (reported,) = report.committed
    assert reported.arn == committed_arn and reported.commitment == "OneMonth"
    assert reported.expires == world.fake.throughputs[committed_arn]["commitmentExpirationTime"]
    assert "keeps billing it until" in report.summary()
    # It still bills: its idle alarm stays too.
    assert committed_arn in {alarm["Dimensions"][0]["Value"] for alarm in alarms(world)}


def test_a_commitment_that_has_ended_is_deletable(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world, commitment="OneMonth"))
    world.fake.settle()
    (arn,) = world.fake.throughputs
    later = world.fake.now + timedelta(days=40)
    world.fake.now = later

    report = serving.reconcile(world.clients, spec(world, mode="none"), now=later)

    assert world.fake.throughputs == {}
    assert world.fake.calls_of("delete_provisioned_model_throughput") == [{"provisionedModelId": arn}]
    assert report.committed == []


def test_mode_none_deletes_the_no_commitment_pt_its_alarm_and_the_endpoint(world: World) -> None:
    model = completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    world.fake.settle()
    serving.reconcile(world.clients, spec(world))
    assert parameter(world, ENDPOINT_PARAMETER) is not None

    report = serving.reconcile(world.clients, spec(world, mode="none"))

    assert world.fake.throughputs == {}
    assert alarms(world) == []
    assert parameter(world, ENDPOINT_PARAMETER) is None
    assert parameter(world, MODEL_PARAMETER) == model
    assert report.endpoint_arn is None
    assert "not served" in report.summary()


def test_mode_none_keeps_and_reports_a_committed_pt(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world, commitment="SixMonths"))

    report = serving.reconcile(world.clients, spec(world, mode="none"), now=world.fake.now)

    assert len(world.fake.throughputs) == 1
    assert [committed.commitment for committed in report.committed] == ["SixMonths"]


def test_the_idle_alarm_watches_the_pt_and_goes_with_it(world: World) -> None:
    completed_job(world, "a")

    serving.reconcile(world.clients, spec(world, idle_alarm_hours=6))

    (arn,) = world.fake.throughputs
    (alarm,) = alarms(world)
    assert alarm["AlarmName"] == names.alarm_name(ENV, FT, arn)
    assert alarm["Namespace"] == "AWS/Bedrock"
    assert alarm["MetricName"] == "Invocations"
    assert alarm["Dimensions"] == [{"Name": "ModelId", "Value": arn}]
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] == 3600
    assert alarm["EvaluationPeriods"] == 6
    assert alarm["Threshold"] == 0.0
    assert alarm["ComparisonOperator"] == "LessThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"] == [world.topic_arn]

    world.fake.settle()
    serving.reconcile(world.clients, spec(world, mode="none"))

    assert alarms(world) == []


# --------------------------------------------------------------------------------------------------
# On-demand deployments
# --------------------------------------------------------------------------------------------------


def test_on_demand_creates_a_deployment_then_swaps_in_a_newer_model(world: World) -> None:
    first = completed_job(world, "a", hours_after_t0=0)
    on_demand = spec(world, mode="on_demand")

    serving.reconcile(world.clients, on_demand)

    (create,) = world.fake.calls_of("create_custom_model_deployment")
    assert create["modelDeploymentName"] == names.deployment_name(ENV, FT)
    assert create["modelArn"] == first
    assert {tag["key"]: tag["value"] for tag in create["tags"]}["finetune:fine-tuning"] == FT
    assert world.fake.throughputs == {}
    assert alarms(world) == []  # nothing bills by the hour

    world.fake.settle()
    serving.reconcile(world.clients, on_demand)
    (arn,) = world.fake.deployments
    assert parameter(world, ENDPOINT_PARAMETER) == arn

    second = completed_job(world, "b", hours_after_t0=3)
    serving.reconcile(world.clients, on_demand)
    serving.reconcile(world.clients, on_demand)  # while the update runs: no second update

    assert world.fake.calls_of("update_custom_model_deployment") == [
        {"customModelDeploymentIdentifier": arn, "modelArn": second}
    ]
    assert len(world.fake.deployments) == 1
    world.fake.settle()
    assert serving.reconcile(world.clients, on_demand).changes == []


def test_switching_to_on_demand_retires_the_pt_once_the_deployment_is_active(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    world.fake.settle()
    serving.reconcile(world.clients, spec(world))

    serving.reconcile(world.clients, spec(world, mode="on_demand"))
    assert len(world.fake.throughputs) == 1  # the deployment is still Creating

    world.fake.settle()
    serving.reconcile(world.clients, spec(world, mode="on_demand"))

    assert world.fake.throughputs == {}
    (deployment,) = world.fake.deployments
    assert parameter(world, ENDPOINT_PARAMETER) == deployment


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_quota_exceeded_says_model_units_start_at_zero(world: World) -> None:
    completed_job(world, "a")
    world.fake.fail_next(
        "create_provisioned_model_throughput", "ServiceQuotaExceededException", "Model units quota is 0"
    )

    with pytest.raises(endpoints.QuotaExceededError) as raised:
        serving.reconcile(world.clients, spec(world))

    message = str(raised.value)
    assert "start at 0 until AWS support raises them" in message
    assert "Model units quota is 0" in message
    assert world.fake.throughputs == {}


def test_throttling_surfaces_and_the_next_run_converges(world: World) -> None:
    completed_job(world, "a")
    world.fake.fail_next("create_provisioned_model_throughput", "ThrottlingException", "Rate exceeded")

    with pytest.raises(endpoints.ServingError, match="ThrottlingException: Rate exceeded"):
        serving.reconcile(world.clients, spec(world))
    serving.reconcile(world.clients, spec(world))

    assert len(world.fake.throughputs) == 1


def test_a_validation_error_carries_bedrocks_message(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    completed_job(world, "b", hours_after_t0=2)
    world.fake.fail_next("update_provisioned_model_throughput", "ValidationException", "model not compatible")

    with pytest.raises(
        endpoints.ServingError, match=r"updating provisioned throughput .*model not compatible"
    ):
        serving.reconcile(world.clients, spec(world))


def test_pts_without_our_tags_are_not_ours(world: World) -> None:
    completed_job(world, "a")
    name = serving.throughput_name(spec(world))
    world.fake.create_provisioned_model_throughput(
        modelUnits=1,
        provisionedModelName=f"{ENV}-{FT}-pt-0123abcd",
        modelId="arn:aws:bedrock:us-east-1:123456789012:custom-model/someone-else",
        tags=[{"key": "owner", "value": "someone-else"}],
    )

    serving.reconcile(world.clients, spec(world, mode="none"))
    report = teardown.teardown(world.clients, spec(world), sleep=lambda _: None)

    assert throughput_names(world) == [f"{ENV}-{FT}-pt-0123abcd"]
    assert name not in throughput_names(world)
    assert report.deleted == []


# --------------------------------------------------------------------------------------------------
# Teardown
# --------------------------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def served_everything(world: World) -> tuple[str, str, str]:
    """A committed PT, a no-commitment PT and a deployment of the fine-tuning; returns their ARNs."""
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world, commitment="OneMonth"))
    world.fake.settle()
    committed = next(iter(world.fake.throughputs))
    serving.reconcile(world.clients, spec(world, model_units=2))
    world.fake.settle()
    serving.reconcile(world.clients, spec(world, model_units=2))
    hourly = next(arn for arn in world.fake.throughputs if arn != committed)
    world.fake.create_custom_model_deployment(
        modelDeploymentName=names.deployment_name(ENV, FT),
        modelArn=job_model_arn(f"{ENV}-{FT}-{'a' * 12}"),
        tags=[{"key": key, "value": value} for key, value in names.resource_tags(ENV, FT).items()],
    )
    deployment = next(iter(world.fake.deployments))
    return committed, hourly, deployment


def test_teardown_deletes_what_bills_hourly_waits_and_reports_commitments(world: World) -> None:
    committed, hourly, deployment = served_everything(world)
    world.fake.delete_polls = 2
    fake_time = FakeTime()

    report = teardown.teardown(
        world.clients,
        spec(world),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        poll_seconds=10,
        now=world.fake.now,
    )

    assert list(world.fake.throughputs) == [committed]
    assert world.fake.deployments == {}
    assert fake_time.sleeps == [10, 10]  # waited until Get said ResourceNotFound
    assert [entry.arn for entry in report.committed] == [committed]
    assert any(hourly in line for line in report.deleted)
    assert any(deployment in line for line in report.deleted)
    assert alarms(world) == []
    assert parameter(world, ENDPOINT_PARAMETER) is None
    # Custom models and data are kept, and so is the pointer to the newest model.
    assert parameter(world, MODEL_PARAMETER) is not None
    assert world.jobs.get_custom_model(modelIdentifier=f"{ENV}-{FT}-{'a' * 12}")["modelName"]
    assert "keeps billing it until" in report.summary()


def test_a_teardown_that_never_finishes_raises(world: World) -> None:
    _, hourly, _ = served_everything(world)
    world.fake.delete_polls = None
    fake_time = FakeTime()

    with pytest.raises(endpoints.TeardownIncompleteError, match=re.escape(hourly)):
        teardown.teardown(
            world.clients,
            spec(world),
            timeout_seconds=60,
            poll_seconds=15,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            now=world.fake.now,
        )

    assert fake_time.now >= 60
    assert len(fake_time.sleeps) == 4


def test_teardown_retries_a_delete_that_conflicts(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    world.fake.fail_next("delete_provisioned_model_throughput", "ConflictException", "PT is Creating")
    fake_time = FakeTime()

    report = teardown.teardown(world.clients, spec(world), sleep=fake_time.sleep, clock=fake_time.clock)

    assert world.fake.throughputs == {}
    assert len(world.fake.calls_of("delete_provisioned_model_throughput")) == 2
    assert len(report.deleted) >= 1


def test_teardown_of_nothing_is_quiet(world: World) -> None:
    report = teardown.teardown(world.clients, spec(world), sleep=lambda _: pytest.fail("should not wait"))

    assert report.deleted == [] and report.committed == []


def test_teardown_surfaces_other_errors(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    world.fake.fail_next("delete_provisioned_model_throughput", "AccessDeniedException", "not allowed")

    with pytest.raises(endpoints.ServingError, match="AccessDeniedException: not allowed"):
        teardown.teardown(world.clients, spec(world), sleep=lambda _: None)


# --------------------------------------------------------------------------------------------------
# Request shapes against botocore's Bedrock service model (Stubber validates every request)
# --------------------------------------------------------------------------------------------------

ACCOUNT = "123456789012"
MODEL_A = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-micro-v1:0:128k/aaaaaaaaaaaa"
MODEL_B = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.nova-micro-v1:0:128k/bbbbbbbbbbbb"
PT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdefabcdef"
OLD_PT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/111111111111"
FOUNDATION = f"arn:aws:bedrock:{REGION}::foundation-model/amazon.nova-micro-v1:0"


def job_summaries(model: str) -> dict[str, Any]:
    return {
        "modelCustomizationJobSummaries": [
            {
                "jobArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/amazon.nova-micro-v1:0/x",
                "baseModelArn": FOUNDATION,
                "jobName": f"{ENV}-{FT}-{'b' * 12}",
                "status": "Completed",
                "creationTime": T0,
                "endTime": T0 + timedelta(hours=2),
                "customModelArn": model,
            }
        ]
    }


def pt_summary(name: str, arn: str, model: str, units: int = 1) -> dict[str, Any]:
    return {
        "provisionedModelName": name,
        "provisionedModelArn": arn,
        "modelArn": model,
        "desiredModelArn": model,
        "foundationModelArn": FOUNDATION,
        "modelUnits": units,
        "desiredModelUnits": units,
        "status": "InService",
        "creationTime": T0,
        "lastModifiedTime": T0,
    }


OUR_TAGS = {"tags": [{"key": key, "value": value} for key, value in names.resource_tags(ENV, FT).items()]}


@pytest.fixture
def stubbed(world: World) -> Iterator[tuple[World, Stubber]]:
    bedrock = boto3.client("bedrock", region_name=REGION)
    with Stubber(bedrock) as stubber:
        yield replace(world, clients=replace(world.clients, bedrock=bedrock)), stubber
        stubber.assert_no_pending_responses()


def test_create_request_matches_the_service_model(stubbed: tuple[World, Stubber]) -> None:
    world, stubber = stubbed
    wanted = spec(world, model_units=2, commitment="OneMonth")
    name = serving.throughput_name(wanted)
    stubber.add_response(
        "list_model_customization_jobs",
        job_summaries(MODEL_A),
        {"nameContains": f"{ENV}-{FT}-", "statusEquals": "Completed"},
    )
    stubber.add_response(
        "list_provisioned_model_throughputs",
        {"provisionedModelSummaries": []},
        {"nameContains": f"{ENV}-{FT}-pt-"},
    )
    stubber.add_response(
        "list_custom_model_deployments", {"modelDeploymentSummaries": []}, {"nameContains": f"{ENV}-{FT}-od"}
    )
    stubber.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": PT_ARN},
        {
            "modelUnits": 2,
            "provisionedModelName": name,
            "modelId": MODEL_A,
            "commitmentDuration": "OneMonth",
            "clientRequestToken": ANY,  # a fresh token per attempt (see test_each_creation_attempt_has_its_own_token)
            "tags": [
                {"key": key, "value": value}
                for key, value in sorted(
                    {**names.resource_tags(ENV, FT), "finetune:custom-model-arn": MODEL_A}.items()
                )
            ],
        },
    )

    stubber.add_response(
        "get_provisioned_model_throughput",
        pt_summary(name, PT_ARN, MODEL_A, units=2) | {"status": "Creating"},
        {"provisionedModelId": PT_ARN},
    )

    report = serving.reconcile(world.clients, wanted)

    assert report.endpoint_arn == PT_ARN


def test_update_request_matches_the_service_model(stubbed: tuple[World, Stubber]) -> None:
    world, stubber = stubbed
    name = serving.throughput_name(spec(world))
    stubber.add_response("list_model_customization_jobs", job_summaries(MODEL_B))
    stubber.add_response(
        "list_provisioned_model_throughputs",
        {"provisionedModelSummaries": [pt_summary(name, PT_ARN, MODEL_A)]},
    )
    stubber.add_response("list_tags_for_resource", OUR_TAGS, {"resourceARN": PT_ARN})
    stubber.add_response("list_custom_model_deployments", {"modelDeploymentSummaries": []})
    stubber.add_response(
        "update_provisioned_model_throughput", {}, {"provisionedModelId": PT_ARN, "desiredModelId": MODEL_B}
    )
    stubber.add_response(
        "tag_resource",
        {},
        {"resourceARN": PT_ARN, "tags": [{"key": "finetune:custom-model-arn", "value": MODEL_B}]},
    )

    report = serving.reconcile(world.clients, spec(world))

    assert report.endpoint_ready and report.endpoint_arn == PT_ARN


def test_delete_and_wait_requests_match_the_service_model(stubbed: tuple[World, Stubber]) -> None:
    world, stubber = stubbed
    stubber.add_response(
        "list_provisioned_model_throughputs",
        {"provisionedModelSummaries": [pt_summary(f"{ENV}-{FT}-pt-0123abcd", OLD_PT_ARN, MODEL_A)]},
    )
    stubber.add_response("list_tags_for_resource", OUR_TAGS, {"resourceARN": OLD_PT_ARN})
    stubber.add_response("list_custom_model_deployments", {"modelDeploymentSummaries": []})
    stubber.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": OLD_PT_ARN})
    stubber.add_response(
        "get_provisioned_model_throughput",
        {**pt_summary(f"{ENV}-{FT}-pt-0123abcd", OLD_PT_ARN, MODEL_A)},
        {"provisionedModelId": OLD_PT_ARN},
    )
    stubber.add_client_error(
        "get_provisioned_model_throughput",
        service_error_code="ResourceNotFoundException",
        service_message="not found",
        http_status_code=404,
        expected_params={"provisionedModelId": OLD_PT_ARN},
    )

    report = teardown.teardown(world.clients, spec(world), sleep=lambda _: None)

    assert report.deleted == [f"provisioned throughput {ENV}-{FT}-pt-0123abcd ({OLD_PT_ARN})"]


# --------------------------------------------------------------------------------------------------
# Lifecycle faults: what is served, recreated, and torn down
# --------------------------------------------------------------------------------------------------


def job_name(digest: str) -> str:
    return f"{ENV}-{FT}-{digest * 12}"


def deploy_job(world: World, digest: str, source: str = jobs.DEPLOY) -> None:
    """What the trigger records when a deploy (or an upload) asks for this job."""
    jobs.record_deployed_job(
        world.clients.ssm, ENV, FT, jobs.DeployedJob(job_name(digest), digest * 64, source)
    )


def test_the_deployed_job_is_served_not_a_superseded_one_that_ended_later(world: World) -> None:
    deployed = completed_job(world, "a", hours_after_t0=0)
    completed_job(world, "b", hours_after_t0=5)  # a superseded (or rolled-back) configuration's job
    deploy_job(world, "a")

    report = serving.reconcile(world.clients, spec(world))

    assert report.model is not None and report.model.model_arn == deployed
    assert report.deployed_job == job_name("a")
    (create,) = world.fake.calls_of("create_provisioned_model_throughput")
    assert create["modelId"] == deployed


def test_while_the_deployed_job_trains_the_model_served_so_far_stays(world: World) -> None:
    served = completed_job(world, "a")
    deploy_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    world.fake.settle()
    create_job(world.jobs, job_name("c"))  # the new deployed job, still InProgress
    completed_job(world, "b", hours_after_t0=5)  # stale, Completed later
    deploy_job(world, "c")

    report = serving.reconcile(world.clients, spec(world))

    assert report.model is not None and report.model.model_arn == served
    assert world.fake.calls_of("update_provisioned_model_throughput") == []
    assert any(f"{job_name('c')} is InProgress" in note for note in report.notes)


def test_switching_to_none_and_back_serves_again_with_a_fresh_token(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    world.fake.settle()
    serving.reconcile(world.clients, spec(world, mode="none"))
    assert world.fake.throughputs == {}

    back = serving.reconcile(world.clients, spec(world))

    first, second = world.fake.calls_of("create_provisioned_model_throughput")
    assert first["clientRequestToken"] != second["clientRequestToken"]
    (arn,) = world.fake.throughputs  # a real, new PT: not the deleted one Bedrock remembers
    assert back.endpoint_arn == arn


def test_a_create_answered_with_a_deleted_resource_is_an_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a token derived only from name and model did: Bedrock returns the deleted PT's ARN."""
    completed_job(world, "a")
    monkeypatch.setattr(serving, "creation_token", lambda name, model: "always-the-same")
    serving.reconcile(world.clients, spec(world))
    serving.reconcile(world.clients, spec(world, mode="none"))

    with pytest.raises(endpoints.ServingError, match="which does not exist"):
        serving.reconcile(world.clients, spec(world))


def test_a_failed_pt_is_reported_deleted_and_created_again(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    (failed,) = world.fake.throughputs
    world.fake.throughputs[failed]["status"] = "Failed"
    world.fake.throughputs[failed]["failureMessage"] = "Insufficient capacity"
    fake_time = FakeTime()

    report = serving.converge(
        world.clients,
        spec(world),
        wait_seconds=60,
        poll_seconds=15,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )

    assert report.failures == [
        f"provisioned throughput {serving.throughput_name(spec(world))} ({failed}) Failed: Insufficient "
        "capacity. It is deleted and created again."
    ]
    (replacement,) = world.fake.throughputs
    assert replacement != failed
    assert report.endpoint_arn == replacement
    assert report.changed and "Insufficient capacity" in report.summary()


def test_a_failed_deployment_is_replaced_too(world: World) -> None:
    completed_job(world, "a")
    on_demand = spec(world, mode="on_demand")
    serving.reconcile(world.clients, on_demand)
    (failed,) = world.fake.deployments
    world.fake.deployments[failed]["status"] = "Failed"

    report = serving.converge(world.clients, on_demand, wait_seconds=60, sleep=lambda _: world.fake.settle())

    (replacement,) = world.fake.deployments
    assert replacement != failed and report.endpoint_arn == replacement
    assert report.failures and failed in report.failures[0]


def test_a_units_change_retires_the_old_pt_within_the_same_run(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world, model_units=1))
    world.fake.settle()
    serving.reconcile(world.clients, spec(world, model_units=1))
    (old,) = world.fake.throughputs
    waited: list[float] = []

    def time_passes(seconds: float) -> None:
        waited.append(seconds)
        world.fake.settle()

    report = serving.converge(world.clients, spec(world, model_units=3), wait_seconds=600, sleep=time_passes)

    (new,) = world.fake.throughputs
    assert new != old and waited == [15.0]
    assert report.endpoint_ready and report.serving_arn == new
    assert any(old in change and "deleted" in change for change in report.changes)


def test_what_serves_while_the_replacement_comes_up_is_the_old_pt(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world, model_units=1))
    world.fake.settle()
    (old,) = world.fake.throughputs

    report = serving.converge(world.clients, spec(world, model_units=3), wait_seconds=0)

    assert report.pending and not report.endpoint_ready
    assert report.endpoint_arn != old and report.serving_arn == old


def test_a_commitment_is_not_bought_when_it_may_not_be(world: World) -> None:
    completed_job(world, "a")

    report = serving.reconcile(world.clients, spec(world, commitment="OneMonth"), may_commit=False)

    assert world.fake.calls_of("create_provisioned_model_throughput") == []
    assert any("can no longer roll back" in note for note in report.notes)
    assert report.endpoint_arn is None and not report.pending


def test_without_the_deploy_s_settings_no_run_creates_anything(world: World) -> None:
    completed_job(world, "a")
    world.clients.ssm.delete_parameter(Name=names.ssm_parameter_name(ENV, FT, names.SETTINGS_PARAMETER))

    report = serving.reconcile(world.clients, spec(world))

    assert report.disabled and world.fake.calls == []
    deploy = serving.reconcile(world.clients, spec(world), deploying=True)
    assert deploy.endpoint_arn is not None  # the deploy records them again, and serves
    assert parameter(world, names.ssm_parameter_name(ENV, FT, names.SETTINGS_PARAMETER)) == (
        '{"commitment": "none", "mode": "provisioned", "modelUnits": 1}'
    )


def test_teardown_stops_every_running_job_and_disables_serving_first(world: World) -> None:
    completed_job(world, "a")
    create_job(world.jobs, job_name("b"))  # a deploy's job, still running
    create_job(world.jobs, f"{ENV}-{FT}-{'c' * 9}r2")  # an upload's retry, running too
    serving.reconcile(world.clients, spec(world))

    report = teardown.teardown(world.clients, spec(world, stop_jobs_on_destroy=True), sleep=lambda _: None)

    assert report.stopped == sorted([job_name("b"), f"{ENV}-{FT}-{'c' * 9}r2"])
    for name in report.stopped:
        assert world.jobs.get_model_customization_job(jobIdentifier=name)["status"] == "Stopped"
    assert not serving.serving_deployed(world.clients.ssm, spec(world))
    # A completion that arrives now changes nothing.
    assert serving.reconcile(world.clients, spec(world)).disabled


def test_teardown_keeps_running_jobs_unless_asked(world: World) -> None:
    create_job(world.jobs, job_name("b"))

    report = teardown.teardown(world.clients, spec(world), sleep=lambda _: None)

    assert report.stopped == []
    assert world.jobs.get_model_customization_job(jobIdentifier=job_name("b"))["status"] == "InProgress"


def tag_model(world: World, name: str) -> None:
    arn = world.jobs.get_custom_model(modelIdentifier=name)["modelArn"]
    world.jobs.tag_resource(
        resourceARN=arn, tags=[{"key": k, "value": v} for k, v in names.resource_tags(ENV, FT).items()]
    )


def test_teardown_in_a_destroy_environment_deletes_the_models_and_their_parameters(world: World) -> None:
    completed_job(world, "a")
    tag_model(world, job_name("a"))
    create_job(world.jobs, f"{ENV}-{FT}-bot-{'d' * 12}"[:63])  # not ours: another fine-tuning's name
    deploy_job(world, "a")
    serving.reconcile(world.clients, spec(world))

    report = teardown.teardown(
        world.clients, spec(world, delete_models_on_destroy=True), sleep=lambda _: None
    )

    assert f"custom model {job_name('a')}" in report.deleted
    models = [m["modelName"] for m in world.jobs.list_custom_models()["modelSummaries"]]
    assert job_name("a") not in models and len(models) == 1
    assert parameter(world, MODEL_PARAMETER) is None
    assert parameter(world, names.ssm_parameter_name(ENV, FT, names.DEPLOYED_JOB_PARAMETER)) is None


def test_models_a_committed_pt_still_serves_are_kept_and_said_so(world: World) -> None:
    completed_job(world, "a")
    tag_model(world, job_name("a"))
    serving.reconcile(world.clients, spec(world, commitment="OneMonth"))

    report = teardown.teardown(
        world.clients, spec(world, delete_models_on_destroy=True), sleep=lambda _: None, now=world.fake.now
    )

    assert report.committed and not any("custom model" in line for line in report.deleted)
    assert "committed provisioned throughput still serves one" in report.summary()
    assert world.jobs.get_custom_model(modelIdentifier=job_name("a"))["modelName"] == job_name("a")
