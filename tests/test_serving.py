"""finetune.serving: reconcile and teardown against moto (jobs, SSM, CloudWatch, SNS) and the fake."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from finetune import identity, serving
from finetune.serving import ServingSpec
from tests.fakes import REGION, World, create_job, job_model_arn, make_world, set_job_status

ENV, FT = "dev", "support-assistant"
T0 = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
MODEL_PARAMETER = identity.ssm_parameter_name(ENV, FT, "custom-model-arn")
ENDPOINT_PARAMETER = identity.ssm_parameter_name(ENV, FT, "endpoint-arn")


@pytest.fixture
def world(fake_aws_credentials: None) -> Iterator[World]:
    with mock_aws():
        yield make_world()


def spec(world: World, **changes: Any) -> ServingSpec:
    base = ServingSpec(
        environment=ENV,
        fine_tuning=FT,
        region=REGION,
        mode="provisioned",
        model_units=1,
        commitment="none",
        idle_alarm_hours=12,
        topic_arn=world.topic_arn,
    )
    return replace(base, **changes)


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
    assert tags == {**identity.resource_tags(ENV, FT), "finetune:custom-model-arn": model}
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

    ref = serving.latest_completed_model(world.fake, ENV, FT)

    assert ref is not None and ref.model_arn == newer


def test_the_same_event_five_times_makes_one_pt(world: World) -> None:
    completed_job(world, "a")

    reports = [serving.reconcile(world.clients, spec(world)) for _ in range(5)]

    assert len(world.fake.throughputs) == 1
    assert len(world.fake.calls_of("create_provisioned_model_throughput")) == 1
    assert len({report.endpoint_arn for report in reports}) == 1
    assert len(alarms(world)) == 1


def test_a_create_that_races_a_lagging_list_returns_the_same_pt(world: World) -> None:
    completed_job(world, "a")
    # The list does not show the PT yet (eventual consistency): only the token prevents a second one.
    world.fake.list_provisioned_model_throughputs = lambda **_: {"provisionedModelSummaries": []}  # type: ignore[method-assign]

    serving.reconcile(world.clients, spec(world))
    serving.reconcile(world.clients, spec(world))

    first, second = world.fake.calls_of("create_provisioned_model_throughput")
    assert first["clientRequestToken"] == second["clientRequestToken"]
    assert len(world.fake.throughputs) == 1


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

    ref = serving.latest_completed_model(world.fake, ENV, FT)

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
    assert alarm["AlarmName"] == serving.alarm_name(ENV, FT, arn)
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


def test_idle_alarm_hours_zero_means_no_alarm(world: World) -> None:
    completed_job(world, "a")

    serving.reconcile(world.clients, spec(world, idle_alarm_hours=0))

    assert len(world.fake.throughputs) == 1
    assert alarms(world) == []


# --------------------------------------------------------------------------------------------------
# On-demand deployments
# --------------------------------------------------------------------------------------------------


def test_on_demand_creates_a_deployment_then_swaps_in_a_newer_model(world: World) -> None:
    first = completed_job(world, "a", hours_after_t0=0)
    on_demand = spec(world, mode="on_demand")

    serving.reconcile(world.clients, on_demand)

    (create,) = world.fake.calls_of("create_custom_model_deployment")
    assert create["modelDeploymentName"] == serving.deployment_name(ENV, FT)
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

    with pytest.raises(serving.QuotaExceededError) as raised:
        serving.reconcile(world.clients, spec(world))

    message = str(raised.value)
    assert "start at 0 until AWS support raises them" in message
    assert "Model units quota is 0" in message
    assert world.fake.throughputs == {}


def test_throttling_surfaces_and_the_next_run_converges(world: World) -> None:
    completed_job(world, "a")
    world.fake.fail_next("create_provisioned_model_throughput", "ThrottlingException", "Rate exceeded")

    with pytest.raises(serving.ServingError, match="ThrottlingException: Rate exceeded"):
        serving.reconcile(world.clients, spec(world))
    serving.reconcile(world.clients, spec(world))

    assert len(world.fake.throughputs) == 1


def test_a_validation_error_carries_bedrocks_message(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    completed_job(world, "b", hours_after_t0=2)
    world.fake.fail_next("update_provisioned_model_throughput", "ValidationException", "model not compatible")

    with pytest.raises(serving.ServingError, match=r"updating provisioned throughput .*model not compatible"):
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
    report = serving.teardown(world.clients, ENV, FT, sleep=lambda _: None)

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
        modelDeploymentName=serving.deployment_name(ENV, FT),
        modelArn=job_model_arn(f"{ENV}-{FT}-{'a' * 12}"),
        tags=[{"key": key, "value": value} for key, value in identity.resource_tags(ENV, FT).items()],
    )
    deployment = next(iter(world.fake.deployments))
    return committed, hourly, deployment


def test_teardown_deletes_what_bills_hourly_waits_and_reports_commitments(world: World) -> None:
    committed, hourly, deployment = served_everything(world)
    world.fake.delete_polls = 2
    fake_time = FakeTime()

    report = serving.teardown(
        world.clients,
        ENV,
        FT,
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

    with pytest.raises(serving.TeardownIncompleteError, match=re.escape(hourly)):
        serving.teardown(
            world.clients,
            ENV,
            FT,
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

    report = serving.teardown(world.clients, ENV, FT, sleep=fake_time.sleep, clock=fake_time.clock)

    assert world.fake.throughputs == {}
    assert len(world.fake.calls_of("delete_provisioned_model_throughput")) == 2
    assert len(report.deleted) >= 1


def test_teardown_of_nothing_is_quiet(world: World) -> None:
    report = serving.teardown(world.clients, ENV, FT, sleep=lambda _: pytest.fail("should not wait"))

    assert report.deleted == [] and report.committed == []


def test_teardown_surfaces_other_errors(world: World) -> None:
    completed_job(world, "a")
    serving.reconcile(world.clients, spec(world))
    world.fake.fail_next("delete_provisioned_model_throughput", "AccessDeniedException", "not allowed")

    with pytest.raises(serving.ServingError, match="AccessDeniedException: not allowed"):
        serving.teardown(world.clients, ENV, FT, sleep=lambda _: None)


# --------------------------------------------------------------------------------------------------
# Settings, names, messages
# --------------------------------------------------------------------------------------------------


def test_invalid_settings_are_all_reported_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        ServingSpec(ENV, FT, REGION, mode="always", model_units=0, commitment="OneYear", idle_alarm_hours=500)  # type: ignore[arg-type]

    message = str(raised.value)
    for field in ("mode", "model_units", "commitment", "idle_alarm_hours"):
        assert field in message


def test_custom_resource_properties_arrive_as_strings() -> None:
    parsed = ServingSpec.from_properties(
        {
            "Environment": ENV,
            "FineTuning": FT,
            "Region": REGION,
            "Mode": "provisioned",
            "ModelUnits": "2",
            "Commitment": "none",
            "IdleAlarmHours": "8",
            "TopicArn": "",
        },
        topic_arn="arn:aws:sns:us-east-1:123456789012:fallback",
    )

    assert parsed == ServingSpec(
        ENV, FT, REGION, "provisioned", 2, "none", 8, "arn:aws:sns:us-east-1:123456789012:fallback"
    )
    with pytest.raises(ValueError, match="ModelUnits"):
        ServingSpec.from_properties(
            {"Environment": ENV, "FineTuning": FT, "Region": REGION, "ModelUnits": "two"}
        )


def test_units_or_commitment_change_the_pt_name() -> None:
    base = ServingSpec(ENV, FT, REGION, "provisioned", 1, "none")
    names = {
        serving.throughput_name(base),
        serving.throughput_name(replace(base, model_units=2)),
        serving.throughput_name(replace(base, commitment="OneMonth")),
    }
    assert len(names) == 3
    assert serving.throughput_name(base) == serving.throughput_name(replace(base, idle_alarm_hours=3))


NAME = r"[a-z](?:-?[a-z0-9])*"  # finetune.config's rule for environment and fine-tuning names


@given(
    environment=st.from_regex(rf"\A{NAME}\Z").filter(lambda name: len(name) <= 16),
    fine_tuning=st.from_regex(rf"\A{NAME}\Z").filter(lambda name: len(name) <= 32),
    units=st.integers(min_value=1, max_value=10_000),
    commitment=st.sampled_from(serving.COMMITMENTS),
)
def test_every_valid_configuration_names_resources_bedrock_accepts(
    environment: str, fine_tuning: str, units: int, commitment: Any
) -> None:
    wanted = ServingSpec(environment, fine_tuning, REGION, "provisioned", units, commitment)
    for name in (serving.throughput_name(wanted), serving.deployment_name(environment, fine_tuning)):
        assert len(name) <= 63
        assert serving.BEDROCK_NAME.fullmatch(name)


def test_describe_failure_names_the_job_and_the_reason() -> None:
    message = serving.describe_failure(
        {
            "jobName": f"{ENV}-{FT}-{'a' * 12}",
            "jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/x",
            "jobStatus": "Failed",
            "failureMessage": "Training data has 3 records; at least 8 are required",
        }
    )

    assert f"{ENV}-{FT}-{'a' * 12} is Failed" in message
    assert "at least 8 are required" in message
    assert "Stopped" in serving.describe_failure({"jobName": "x", "jobStatus": "Stopped"})


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


OUR_TAGS = {"tags": [{"key": key, "value": value} for key, value in identity.resource_tags(ENV, FT).items()]}


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
            "clientRequestToken": serving._token(name, MODEL_A),
            "tags": [
                {"key": key, "value": value}
                for key, value in sorted(
                    {**identity.resource_tags(ENV, FT), "finetune:custom-model-arn": MODEL_A}.items()
                )
            ],
        },
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

    report = serving.teardown(world.clients, ENV, FT, sleep=lambda _: None)

    assert report.deleted == [f"provisioned throughput {ENV}-{FT}-pt-0123abcd ({OLD_PT_ARN})"]
