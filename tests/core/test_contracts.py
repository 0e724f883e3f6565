"""The contracts across the synth-to-Lambda seam: each round-trips, and a bad one names every problem."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from finetune.core.contracts import (
    ContractError,
    EvaluationGate,
    GateTrial,
    JobResource,
    JobStateChange,
    JobTemplate,
    ObjectUpload,
    ServingResource,
    ServingSettings,
    TrainingBudget,
    TrainingRate,
    TriggerEnvironment,
    UploadResource,
    serving_problems,
)
from finetune.core.evaluation import EvaluationSettings, Gate
from finetune.core.names import JobSpec

SHA = "a" * 64
SPEC = JobSpec(
    environment="dev",
    fine_tuning="assistant",
    base_model="meta.llama3-1-8b-instruct-v1:0:128k",
    customization_type="FINE_TUNING",
    hyperparameters={"epochCount": "2", "learningRate": "0.0001"},
    training_sha256=SHA,
    validation_sha256="b" * 64,
)
TEMPLATE = JobTemplate.for_spec(
    SPEC,
    role_arn="arn:aws:iam::123456789012:role/r",
    output_s3_uri="s3://bucket/output/assistant/",
    validation_s3_uri="s3://bucket/validation/assistant/v.jsonl",
    kms_key_arn="arn:aws:kms:us-west-2:123456789012:key/k",
    stop_superseded=True,
)


def strings(properties: dict[str, str]) -> dict[str, str]:
    """What CloudFormation hands a function: every property a string."""
    assert all(isinstance(value, str) for value in properties.values()), properties
    return properties


def test_serving_resource_round_trips_through_properties_and_the_environment() -> None:
    resource = ServingResource(
        environment="prod",
        fine_tuning="assistant",
        region="us-west-2",
        settings=ServingSettings("provisioned", 2, "OneMonth", 12),
        topic_arn="arn:aws:sns:us-west-2:123456789012:t",
        stop_jobs_on_destroy=True,
        delete_models_on_destroy=False,
        stack_id="arn:aws:cloudformation:us-west-2:123456789012:stack/prod-assistant/1",
    )
    properties = strings(resource.to_properties())
    assert ServingResource.from_properties(properties) == resource
    environ = {ServingResource.ENVIRONMENT_VARIABLE: json.dumps(properties)}
    assert ServingResource.from_environment(environ) == resource
    # The property names are the deployed contract: a rename would send every stack an Update.
    assert list(properties) == [
        "Environment",
        "FineTuning",
        "Region",
        "Mode",
        "ModelUnits",
        "Commitment",
        "IdleAlarmHours",
        "TopicArn",
        "StopJobsOnDestroy",
        "DeleteModelsOnDestroy",
        "StackId",
    ]


def test_serving_settings_are_checked_once_with_every_problem_named() -> None:
    problems = serving_problems("always", 0, "OneYear", 0)
    assert set(problems) == {"mode", "model_units", "commitment", "idle_alarm_hours"}
    assert "from 1 to 168" in problems["idle_alarm_hours"]  # one range, everywhere
    with pytest.raises(ContractError) as raised:
        ServingResource("dev", "x", "us-west-2", ServingSettings("provisioned", 1, "none", 0))
    assert "idle_alarm_hours" in str(raised.value)
    assert serving_problems("none", 1, "none", 24) == {}


def test_serving_properties_that_are_not_numbers_or_flags_are_named() -> None:
    properties = ServingResource("dev", "x", "us-west-2").to_properties()
    with pytest.raises(ContractError) as raised:
        ServingResource.from_properties({**properties, "ModelUnits": "two", "StopJobsOnDestroy": "yes"})
    assert raised.value.problems == [
        "ModelUnits: expected a whole number, got 'two'",
        'StopJobsOnDestroy must be "true" or "false", got \'yes\'',
    ]
    with pytest.raises(ContractError, match="FINETUNE_SERVING is not set"):
        ServingResource.from_environment({})


def test_names_bedrock_refuses_are_refused_at_the_contract() -> None:
    with pytest.raises(ContractError, match="at most 63 characters"):
        ServingResource("e" * 16, "f" * 50, "us-west-2")


def test_job_resource_round_trips_and_names_the_job_synth_named() -> None:
    resource = JobResource(
        TEMPLATE, training_s3_uri=f"s3://bucket/training/assistant/{SHA}/t.jsonl", training_sha256=SHA
    )
    properties = strings(resource.to_properties())
    assert properties["JobName"] == SPEC.job_name and properties["JobDigest"] == SPEC.digest
    assert JobResource.from_properties(properties) == resource
    assert resource.request().create_job_kwargs()["jobName"] == SPEC.job_name


def test_job_properties_from_other_code_are_refused_with_every_mismatch() -> None:
    properties = JobResource(TEMPLATE, f"s3://bucket/training/{SHA}/t.jsonl", SHA).to_properties()
    with pytest.raises(ContractError) as raised:
        JobResource.from_properties({**properties, "JobName": "dev-assistant-000000000000", "JobDigest": "x"})
    message = str(raised.value)
    assert "JobName is 'dev-assistant-000000000000'" in message and "JobDigest is 'x'" in message
    with pytest.raises(ContractError) as missing:
        JobResource.from_properties({"Environment": "dev"})
    assert {problem.split(" ", 1)[0] for problem in missing.value.problems} >= {
        "FineTuning",
        "BaseModelIdentifier",
        "RoleArn",
        "TrainingDataS3Uri",
        "JobName",
    }


def test_a_validation_uri_without_its_digest_is_refused() -> None:
    values = replace(TEMPLATE, validation_sha256=None).to_properties()
    with pytest.raises(ContractError, match="needs both its S3 URI and its sha256"):
        JobTemplate.from_properties(values, where="FINETUNE_JOB_TEMPLATE")


def test_the_trigger_environment_round_trips_and_names_every_missing_setting() -> None:
    trigger = TriggerEnvironment(TEMPLATE, "arn:aws:sns:us-west-2:123456789012:t")
    environ = trigger.to_environment(json.dumps(TEMPLATE.to_properties()))
    assert TriggerEnvironment.from_environment(environ) == trigger
    with pytest.raises(ContractError) as raised:
        TriggerEnvironment.from_environment({"FINETUNE_JOB_TEMPLATE": "{not json"})
    assert raised.value.problems == [
        "FINETUNE_JOB_TEMPLATE is not valid JSON (Expecting property name enclosed in double quotes)",
        "FINETUNE_TOPIC_ARN is not set",
    ]


def test_a_training_budget_round_trips_with_the_template_and_is_left_out_without_one() -> None:
    budget = TrainingBudget(
        limit_usd=12.5,
        rate=TrainingRate(per_token=2.4e-05, per_record=0.5, fixed=1.0, basis="tokens x 2 epochs x $0.012"),
        field="environments.dev.budget.training_usd",
    )
    with_budget = replace(TEMPLATE, training_budget=budget)
    properties = strings(with_budget.to_properties())
    assert JobTemplate.from_properties(properties, where="t") == with_budget
    assert "TrainingBudget" not in TEMPLATE.to_properties(), "no new property for stacks without a budget"
    # 1.0 + 100,000 x 0.000024 + 10 x 0.5 = $8.40: within $12.50; 1.0 + 400,000 x 0.000024 + 10 x 0.5 = $15.60
    assert budget.rate.cost(100_000, 10) == pytest.approx(8.4)
    assert budget.excess(100_000, 10) is None
    assert budget.excess(400_000, 10) == (
        "the estimated training cost $15.60 (400,000 estimated tokens in 10 records; tokens x 2 epochs x $0.012) "
        "exceeds environments.dev.budget.training_usd = $12.50 by $3.10"
    )
    with pytest.raises(ContractError, match="TrainingBudget: perToken, field missing or invalid"):
        JobTemplate.from_properties(
            {
                **properties,
                "TrainingBudget": json.dumps(
                    {**json.loads(properties["TrainingBudget"]), "perToken": "x", "field": 3}
                ),
            },
            where="t",
        )


def test_upload_resource_round_trips_and_checks_its_digest_and_size() -> None:
    upload = UploadResource("assets", "abc.jsonl", "bucket", f"training/x/{SHA}/t.jsonl", SHA, 120)
    assert UploadResource.from_properties(strings(upload.to_properties())) == upload
    with pytest.raises(ContractError) as raised:
        UploadResource.from_properties({**upload.to_properties(), "Sha256": "ABC", "SizeBytes": "-1"})
    assert raised.value.problems == [
        "SizeBytes: expected a whole number >= 0",
        "Sha256 must be 64 lowercase hex digits, got 'ABC'",
    ]


def test_events_are_read_into_their_contracts() -> None:
    event: dict[str, Any] = {
        "source": "aws.bedrock",
        "detail-type": "Model Customization Job State Change",
        "detail": {"jobName": "dev-x-aaaaaaaaaaaa", "jobStatus": "Failed", "failureMessage": "bad data"},
    }
    assert JobStateChange.matches(event) and not JobStateChange.matches({"source": "aws.s3"})
    change = JobStateChange.from_event(event)
    assert (change.job_name, change.status, change.failure_message) == (
        "dev-x-aaaaaaaaaaaa",
        "Failed",
        "bad data",
    )
    notification = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "incoming/my+data.jsonl"}},
            }
        ]
    }
    (upload,) = ObjectUpload.from_event(notification) or []
    assert (upload.key, upload.created) == ("incoming/my data.jsonl", True)
    assert ObjectUpload.from_event({"source": "aws.events"}) is None


def test_a_candidates_job_resource_round_trips_with_its_trial_and_the_main_one_has_none() -> None:
    main = JobResource(TEMPLATE, f"s3://bucket/training/{SHA}/t.jsonl", SHA)
    assert "Trial" not in main.to_properties() and not main.is_candidate
    candidate = JobResource(TEMPLATE, f"s3://bucket/training/{SHA}/t.jsonl", SHA, trial="gentle")
    properties = candidate.to_properties()
    assert properties["Trial"] == "gentle"
    assert JobResource.from_properties(properties) == candidate and candidate.is_candidate


GATE = EvaluationGate(
    settings=EvaluationSettings(
        dataset="assistant/eval.jsonl",
        metrics=("Builtin.Correctness", "Builtin.Harmfulness"),
        gate=Gate(
            minimums={"Builtin.Correctness": 0.7}, maximums={"Builtin.Harmfulness": 0.1}, beat_base=True
        ),
        judge_model="us.amazon.nova-pro-v1:0",
        max_hours=6,
    ),
    trials=(
        GateTrial("main", "dev-assistant-aaaaaaaaaaaa", "meta.llama3-1-8b-instruct-v1:0:128k", 17280.0),
        GateTrial(
            "slow", "dev-assistant-bbbbbbbbbbbb", "meta.llama3-1-8b-instruct-v1:0:128k", None, on_demand=True
        ),
    ),
    role_arn="arn:aws:iam::123456789012:role/evaluation",
    bucket="bucket",
    dataset_key="evaluation-data/assistant/" + SHA + "/eval.jsonl",
    kms_key_arn="arn:aws:kms:us-west-2:123456789012:key/k",
)


def test_a_gated_serving_resource_round_trips_and_an_ungated_one_has_no_gate_property() -> None:
    ungated = ServingResource("dev", "assistant", "us-west-2")
    assert EvaluationGate.PROPERTY not in ungated.to_properties()
    gated = replace(ungated, gate=GATE)
    properties = gated.to_properties()
    assert json.loads(properties[EvaluationGate.PROPERTY])["trials"][1]["name"] == "slow"
    assert ServingResource.from_properties(properties) == gated
    assert ServingResource.from_environment({"FINETUNE_SERVING": json.dumps(properties)}) == gated
    assert GATE.trial("slow").on_demand and GATE.trial("main").serving_usd_per_30_days == 17280.0


def test_a_malformed_or_inconsistent_gate_is_refused_naming_why() -> None:
    properties = replace(ServingResource("dev", "assistant", "us-west-2"), gate=GATE).to_properties()
    with pytest.raises(ContractError) as raised:
        ServingResource.from_properties({**properties, EvaluationGate.PROPERTY: '{"settings": {}}'})
    assert "EvaluationGate is not a gate's JSON (KeyError" in str(raised.value)
    with pytest.raises(ContractError) as raised:
        replace(GATE, trials=GATE.trials[1:], role_arn="")
    assert raised.value.problems == [
        "trials ['slow'] must name 'main' once and each candidate once",
        "role_arn must not be empty",
    ]
    with pytest.raises(ContractError) as raised:
        replace(GATE, settings=replace(GATE.settings, metrics=("Builtin.Accuracy",)))
    assert any(problem.startswith("settings.metrics[0]:") for problem in raised.value.problems)
