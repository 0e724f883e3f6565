"""finetune.aws.trials: the evaluation gate's reconciler against moto (jobs, S3, SSM, SNS,
CloudWatch) and the serving, evaluation and Converse fakes. Time is the explicit `now` only."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from finetune.aws import jobs, serving, teardown, trials
from finetune.aws.endpoints import Clients
from finetune.aws.evaluation import evaluation_job_name
from finetune.aws.trials import GateClients, GateReport, GateSpec, reconcile_gate, teardown_gate
from finetune.cli.local_evaluation import FakeBedrockEvaluation, FakeBedrockRuntime
from finetune.core import names
from finetune.core.contracts import EvaluationGate, GateTrial, ServingResource, ServingSettings
from finetune.core.evaluation import EvaluationSettings, Gate
from tests.fakes import (
    ACCOUNT,
    EVALUATION_PROMPTS,
    EVALUATION_ROLE,
    JUDGE,
    REGION,
    FakeBedrockServing,
    create_job,
    job_model_arn,
    sent_notifications,
    set_job_status,
)

ENV, FT = "dev", "support-assistant"
BUCKET = "stack-bucket"
DATASET_KEY = "evaluation-data/support/eval.jsonl"
BASE_MODEL = "amazon.nova-micro-v1:0:128k"
BASE_ID = "amazon.nova-micro-v1:0"
T0 = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
ACCURACY, ROBUSTNESS = "Builtin.Accuracy", "Builtin.Robustness"
CORRECTNESS, HELPFULNESS = "Builtin.Correctness", "Builtin.Helpfulness"
PROGRAMMATIC = EvaluationSettings(
    dataset="support/eval.jsonl",
    metrics=(ACCURACY, ROBUSTNESS),
    gate=Gate(minimums={ACCURACY: 0.7}),
    task_type="QuestionAndAnswer",
)
JUDGED = EvaluationSettings(
    dataset="support/eval.jsonl",
    metrics=(CORRECTNESS, HELPFULNESS),
    gate=Gate(minimums={CORRECTNESS: 0.7}),
    judge_model=JUDGE,
)


@dataclass
class Lab:
    gate: GateClients
    serving_clients: Clients
    serving: FakeBedrockServing
    bedrock: FakeBedrockEvaluation
    runtime: FakeBedrockRuntime
    jobs: Any
    topic_arn: str

    def settle(self) -> None:
        self.bedrock.settle()


@pytest.fixture
def lab(fake_aws_credentials: None) -> Iterator[Lab]:
    with mock_aws():
        moto_bedrock = boto3.client("bedrock", region_name=REGION)
        fake_serving = FakeBedrockServing(moto_bedrock, region=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        body = "".join(
            json.dumps({**record, "referenceResponse": "ok"}) + "\n" for record in EVALUATION_PROMPTS
        )
        s3.put_object(Bucket=BUCKET, Key=DATASET_KEY, Body=body)
        evaluation = FakeBedrockEvaluation(fake_serving, s3=s3, region=REGION)
        runtime = FakeBedrockRuntime(fake_serving)
        ssm = boto3.client("ssm", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = str(sns.create_topic(Name="gate")["TopicArn"])
        clients = Clients(
            bedrock=evaluation, ssm=ssm, cloudwatch=boto3.client("cloudwatch", region_name=REGION), sns=sns
        )
        yield Lab(
            gate=GateClients.of(clients, s3=s3, runtime=runtime),
            serving_clients=clients,
            serving=fake_serving,
            bedrock=evaluation,
            runtime=runtime,
            jobs=moto_bedrock,
            topic_arn=topic_arn,
        )


def job_name(digest: str) -> str:
    return f"{ENV}-{FT}-{digest * 12}"


def trial(name: str = "main", digest: str = "a", **changes: Any) -> GateTrial:
    fields: dict[str, Any] = {
        "name": name,
        "job_name": job_name(digest),
        "base_model": BASE_MODEL,
        "serving_usd_per_30_days": 100.0,
        **changes,
    }
    return GateTrial(**fields)


def gate_spec(lab: Lab, *trial_specs: GateTrial, settings: EvaluationSettings = PROGRAMMATIC) -> GateSpec:
    return GateSpec(
        environment=ENV,
        fine_tuning=FT,
        region=REGION,
        settings=settings,
        trials=trial_specs or (trial(),),
        role_arn=EVALUATION_ROLE,
        bucket=BUCKET,
        dataset_key=DATASET_KEY,
        topic_arn=lab.topic_arn,
    )


def complete(lab: Lab, *trial_specs: GateTrial, status: str = "Completed") -> None:
    for each in trial_specs:
        create_job(lab.jobs, each.job_name)
        set_job_status(each.job_name, status, ended=T0)


def endpoint_name(name: str = "main") -> str:
    return names.temporary_endpoint_name(ENV, FT, name)


def pt_arn(lab: Lab, name: str = "main") -> str:
    return next(
        arn
        for arn, record in lab.serving.throughputs.items()
        if record["provisionedModelName"] == endpoint_name(name)
    )


def parameter(lab: Lab, name: str) -> Any:
    try:
        value = lab.gate.ssm.get_parameter(Name=names.ssm_parameter_name(ENV, FT, name))["Parameter"]["Value"]
    except lab.gate.ssm.exceptions.ParameterNotFound:
        return None
    return json.loads(value)


def evaluation_jobs(lab: Lab) -> list[str]:
    return [params["jobName"] for params in lab.bedrock.calls_of("create_evaluation_job")]


def run_gate(
    lab: Lab,
    spec: GateSpec,
    scores: Mapping[str, Mapping[str, float | None]],
    *,
    base: Mapping[str, float | None] | None = None,
    start: datetime = T0,
) -> GateReport:
    """Endpoints up, evaluations started, scored and read: three runs, time settling in between."""
    if base is not None:
        lab.bedrock.set_scores(BASE_ID, base)
    for name, values in scores.items():
        lab.bedrock.set_scores(name, values)  # the BYOI label
    reconcile_gate(lab.gate, spec, now=start)
    for arn in lab.serving.throughputs:
        owner = lab.serving.tags[arn].get(names.TRIAL_TAG, "")
        if owner in scores:
            lab.bedrock.set_scores(arn, scores[owner])  # a PT is evaluated under its ARN
    lab.settle()
    reconcile_gate(lab.gate, spec, now=start + timedelta(minutes=30))
    lab.settle()
    return reconcile_gate(lab.gate, spec, now=start + timedelta(hours=1))


def billing(lab: Lab) -> list[str]:
    """What still bills: PTs, deployments, running evaluation jobs."""
    running = [
        job["jobName"] for job in lab.bedrock.jobs.values() if job["status"] in ("InProgress", "Stopping")
    ]
    return [*lab.serving.throughputs, *lab.serving.deployments, *running]


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------

SEGMENT = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,2}", fullmatch=True)


@given(environment=SEGMENT, fine_tuning=SEGMENT, name=SEGMENT)
def test_a_temporary_name_is_never_a_serving_name_of_any_fine_tuning(
    environment: str, fine_tuning: str, name: str
) -> None:
    temporary = names.temporary_endpoint_name(environment, fine_tuning, name)
    assert names.bedrock_name_problem(temporary) is None
    assert names.is_temporary_endpoint_name(temporary)
    parts = temporary.split("-")
    # Every way of reading it as `<env>-<ft>-...`: never a PT or deployment name of that fine-tuning.
    for cut in range(1, len(parts)):
        for end in range(cut + 1, len(parts) + 1):
            env, ft = "-".join(parts[:cut]), "-".join(parts[cut:end])
            assert not names.owns_throughput_name(env, ft, temporary)
            assert temporary != names.deployment_name(env, ft)
            for units, commitment in ((1, "none"), (2, "OneMonth"), (1, "SixMonths")):
                serving_name = names.throughput_name(env, ft, units, commitment)
                assert not names.is_temporary_endpoint_name(serving_name)
    assert not names.is_temporary_endpoint_name(names.deployment_name(environment, fine_tuning))


def test_temporary_names_differ_per_trial_and_fit_bedrock() -> None:
    long_ft = "f" * 32
    long_name = names.temporary_endpoint_name("e" * 16, long_ft, "candidate-with-a-long-name")
    assert len(long_name) <= names.MAX_BEDROCK_NAME_CHARS
    assert names.is_temporary_endpoint_name(long_name)
    assert names.temporary_endpoint_name("dev", "a", "b-c") != names.temporary_endpoint_name(
        "dev", "a-b", "c"
    )
    assert endpoint_name("main").startswith(f"{ENV}-{FT}-main-eval")


# --------------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------------


def test_a_trial_that_passes_wins_and_its_pt_is_gone(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)

    first = reconcile_gate(lab.gate, spec, now=T0)

    (create,) = lab.serving.calls_of("create_provisioned_model_throughput")
    assert create["modelUnits"] == 1 and "commitmentDuration" not in create
    assert create["provisionedModelName"] == endpoint_name()
    assert create["modelId"] == job_model_arn(main.job_name)
    tags = {tag["key"]: tag["value"] for tag in create["tags"]}
    assert tags[names.TEMPORARY_TAG] == "evaluation" and tags[names.TRIAL_TAG] == "main"
    assert tags.items() >= names.resource_tags(ENV, FT).items()
    assert first.states == {"main": "preparing"}
    assert parameter(lab, "trial-main")["started_at"] == T0.isoformat()

    report = run_gate(lab, spec, {"main": {ACCURACY: 0.9, ROBUSTNESS: 0.1}})

    (job,) = lab.bedrock.jobs.values()
    assert job["jobName"] == evaluation_job_name(main.job_name, "eval")
    assert job["inferenceConfig"]["models"][0]["bedrockModel"]["modelIdentifier"].startswith(
        f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/"
    )
    assert job["outputDataConfig"]["s3Uri"] == f"s3://{BUCKET}/evaluation/"
    assert report.finished and report.winner is not None and report.winner.name == "main"
    assert report.winner_model_arn == job_model_arn(main.job_name)
    assert parameter(lab, "gate-winner") == {
        "trial": "main",
        "job_name": main.job_name,
        "model_arn": job_model_arn(main.job_name),
    }
    record = parameter(lab, "trial-main")
    assert record["state"] == "passed" and record["verdict"] == {"passed": True, "misses": []}
    assert record["scores"]["scores"][ACCURACY] == pytest.approx(0.9)
    assert billing(lab) == []
    (subject, message), *_ = report.messages
    assert "main" in subject and "1. main: Builtin.Accuracy 0.9000" in message
    assert trials.publish_messages(lab.gate.sns, report) == 1
    assert sent_notifications(lab.topic_arn)[-1][1] == message


def test_a_trial_below_a_minimum_fails_and_the_message_says_by_how_much(lab: Lab) -> None:
    main = trial()
    complete(lab, main)

    report = run_gate(lab, gate_spec(lab, main), {"main": {ACCURACY: 0.6, ROBUSTNESS: 0.1}})

    assert report.finished and report.winner is None and report.ranking == []
    assert parameter(lab, "gate-winner") == {"trial": None, "reason": "no trial passed the evaluation gate"}
    assert parameter(lab, "trial-main")["state"] == "failed"
    ((subject, message),) = report.messages
    assert "no trial passed" in subject
    assert "Builtin.Accuracy: 0.60 < minimum 0.70 (missed by 0.10)" in message
    assert billing(lab) == []


def test_beat_base_lost_evaluates_the_base_model_once_for_all_its_trials(lab: Lab) -> None:
    main, other = trial("main", "a"), trial("lr-low", "b")
    complete(lab, main, other)
    settings = replace(PROGRAMMATIC, gate=Gate(beat_base=True))
    scores = {ACCURACY: 0.8, ROBUSTNESS: 0.1}

    report = run_gate(
        lab,
        gate_spec(lab, main, other, settings=settings),
        {"main": scores, "lr-low": scores},
        base={ACCURACY: 0.85, ROBUSTNESS: 0.1},
    )

    base_jobs = [
        job
        for job in lab.bedrock.jobs.values()
        if job["jobName"].endswith("-base") or "base" in job["jobName"]
    ]
    assert len(base_jobs) == 1
    assert base_jobs[0]["inferenceConfig"]["models"][0]["bedrockModel"]["modelIdentifier"] == BASE_ID
    assert len(lab.bedrock.jobs) == 3
    assert report.finished and report.winner is None
    message = report.messages[0][1]
    assert "beat_base: Builtin.Accuracy: 0.80 < base model 0.85 (by 0.05)" in message
    assert message.count("failed the gate") == 2
    assert billing(lab) == []


def test_two_trials_with_equal_scores_are_ranked_by_serving_cost(lab: Lab) -> None:
    main = trial("main", "a", serving_usd_per_30_days=500.0)
    cheap = trial("micro", "b", serving_usd_per_30_days=120.0)
    complete(lab, main, cheap)
    scores = {ACCURACY: 0.85, ROBUSTNESS: 0.1}

    report = run_gate(lab, gate_spec(lab, main, cheap), {"main": scores, "micro": scores})

    assert [outcome.name for outcome in report.ranking] == ["micro", "main"]
    assert report.winner is not None and report.winner.name == "micro"
    assert parameter(lab, "gate-winner")["job_name"] == cheap.job_name
    assert "1. micro" in report.messages[0][1] and "2. main" in report.messages[0][1]


def test_a_better_score_beats_a_lower_cost(lab: Lab) -> None:
    main = trial("main", "a", serving_usd_per_30_days=500.0)
    cheap = trial("micro", "b", serving_usd_per_30_days=120.0)
    complete(lab, main, cheap)

    report = run_gate(
        lab,
        gate_spec(lab, main, cheap),
        {"main": {ACCURACY: 0.9, ROBUSTNESS: 0.1}, "micro": {ACCURACY: 0.8, ROBUSTNESS: 0.1}},
    )

    assert report.winner is not None and report.winner.name == "main"


def test_a_failed_evaluation_fails_the_trial_and_tears_its_pt_down(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    lab.bedrock.fail_evaluation(evaluation_job_name(main.job_name, "eval"), "The judge is unavailable")

    report = run_gate(lab, gate_spec(lab, main), {"main": {ACCURACY: 0.9}})

    assert parameter(lab, "trial-main")["state"] == "failed"
    assert "The judge is unavailable" in parameter(lab, "trial-main")["reason"]
    assert report.finished and report.winner is None
    assert billing(lab) == []
    assert lab.serving.calls_of("delete_provisioned_model_throughput")


def test_a_hanging_evaluation_is_stopped_at_max_hours_and_its_pt_deleted(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    lab.bedrock.hang(evaluation_job_name(main.job_name, "eval"))
    run_gate(lab, spec, {"main": {ACCURACY: 0.9}})
    assert parameter(lab, "trial-main")["state"] == "evaluating"

    still = reconcile_gate(lab.gate, spec, now=T0 + timedelta(hours=PROGRAMMATIC.max_hours))
    assert still.states == {"main": "evaluating"} and len(lab.serving.throughputs) == 1

    report = reconcile_gate(lab.gate, spec, now=T0 + timedelta(hours=PROGRAMMATIC.max_hours, minutes=1))

    assert parameter(lab, "trial-main")["reason"].startswith("timed out after 8 h")
    assert len(lab.bedrock.calls_of("stop_evaluation_job")) == 1
    assert lab.serving.throughputs == {}
    lab.settle()
    assert billing(lab) == []
    assert report.finished and report.winner is None


def test_an_endpoint_that_cannot_be_created_is_retried_until_max_hours(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    lab.serving.fail_next(
        "create_provisioned_model_throughput", "ServiceQuotaExceededException", "no model units", times=2
    )

    first = reconcile_gate(lab.gate, spec, now=T0)
    assert any("model units start at 0" in failure for failure in first.failures)
    assert first.states == {"main": "preparing"}

    report = reconcile_gate(lab.gate, spec, now=T0 + timedelta(hours=9))

    assert report.states == {"main": "failed"} and report.finished
    assert billing(lab) == []
    assert len(lab.serving.calls_of("create_provisioned_model_throughput")) == 1


def test_unreadable_results_fail_the_trial_and_tear_down(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    reconcile_gate(lab.gate, spec, now=T0)
    lab.settle()
    reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=30))
    lab.settle()
    for item in lab.gate.s3.list_objects_v2(Bucket=BUCKET, Prefix="evaluation/")["Contents"]:
        if item["Key"].endswith("_output.jsonl"):
            lab.gate.s3.delete_object(Bucket=BUCKET, Key=item["Key"])

    report = reconcile_gate(lab.gate, spec, now=T0 + timedelta(hours=1))

    assert report.states == {"main": "failed"}
    assert "cannot be read" in parameter(lab, "trial-main")["reason"]
    assert billing(lab) == []


def test_a_failed_job_decides_its_trial_without_an_endpoint(lab: Lab) -> None:
    main = trial()
    complete(lab, main, status="Failed")

    report = reconcile_gate(lab.gate, gate_spec(lab, main), now=T0)

    assert report.states == {"main": "failed"}
    assert parameter(lab, "trial-main")["reason"].startswith(f"job {main.job_name} ended Failed")
    assert lab.serving.calls_of("create_provisioned_model_throughput") == []
    assert report.finished


def test_a_running_job_waits_and_the_gate_is_not_finished(lab: Lab) -> None:
    main, other = trial("main", "a"), trial("micro", "b")
    complete(lab, main)
    create_job(lab.jobs, other.job_name)  # InProgress

    report = run_gate(lab, gate_spec(lab, main, other), {"main": {ACCURACY: 0.9}})

    assert report.states == {"main": "passed", "micro": "waiting"}
    assert not report.finished and report.winner is None and report.messages == []
    assert parameter(lab, "gate-winner") is None


def test_duplicate_runs_make_one_endpoint_and_one_evaluation(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)

    for _ in range(3):
        reconcile_gate(lab.gate, spec, now=T0)
    lab.settle()
    for _ in range(3):
        reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=5))
    lab.settle()
    reports = [reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=10)) for _ in range(3)]

    assert len(lab.serving.calls_of("create_provisioned_model_throughput")) == 1
    assert evaluation_jobs(lab) == [evaluation_job_name(main.job_name, "eval")]
    assert [len(report.messages) for report in reports] == [1, 0, 0]
    assert reports[-1].changes == []


def test_a_create_that_races_a_lagging_list_adopts_the_endpoint(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    lab.serving.list_provisioned_model_throughputs = lambda **_: {"provisionedModelSummaries": []}  # type: ignore[method-assign]

    reconcile_gate(lab.gate, spec, now=T0)
    second = reconcile_gate(lab.gate, spec, now=T0)

    assert len(lab.serving.calls_of("create_provisioned_model_throughput")) == 2
    assert len(lab.serving.throughputs) == 1
    assert any("adopted" in note for note in second.notes)


def test_a_recorded_verdict_is_final_for_its_job(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    run_gate(lab, spec, {"main": {ACCURACY: 0.6}})
    lab.bedrock.set_scores("anything", {ACCURACY: 1.0})

    again = run_gate(lab, spec, {"main": {ACCURACY: 0.99}}, start=T0 + timedelta(days=1))

    assert again.states == {"main": "failed"}
    assert len(lab.bedrock.jobs) == 1
    assert len(lab.serving.calls_of("create_provisioned_model_throughput")) == 1


# --------------------------------------------------------------------------------------------------
# BYOI and PT paths
# --------------------------------------------------------------------------------------------------


def test_on_demand_with_a_judge_deploys_generates_and_judges_precomputed_responses(lab: Lab) -> None:
    main = trial(on_demand=True)
    complete(lab, main)
    spec = gate_spec(lab, main, settings=JUDGED)

    report = run_gate(lab, spec, {"main": {CORRECTNESS: 0.9, HELPFULNESS: 0.8}})

    assert lab.serving.calls_of("create_provisioned_model_throughput") == []
    (deployment,) = lab.serving.calls_of("create_custom_model_deployment")
    assert deployment["modelDeploymentName"] == endpoint_name()
    conversed = {params["modelId"] for params in lab.runtime.calls_of("converse")}
    assert len(conversed) == 1 and "custom-model-deployment/" in conversed.pop()
    (job,) = lab.bedrock.jobs.values()
    assert job["inferenceConfig"]["models"] == [
        {"precomputedInferenceSource": {"inferenceSourceIdentifier": "main"}}
    ]
    dataset = job["evaluationConfig"]["automated"]["datasetMetricConfigs"][0]["dataset"]["datasetLocation"][
        "s3Uri"
    ]
    assert dataset.startswith(f"s3://{BUCKET}/evaluation/responses/")
    assert job["evaluationConfig"]["automated"]["datasetMetricConfigs"][0]["taskType"] == "General"
    assert report.winner is not None and report.winner.name == "main"
    assert billing(lab) == []


def test_responses_already_written_are_not_generated_again(lab: Lab) -> None:
    main = trial(on_demand=True)
    complete(lab, main)
    spec = gate_spec(lab, main, settings=JUDGED)
    reconcile_gate(lab.gate, spec, now=T0)
    lab.settle()
    lab.bedrock.fail_next("create_evaluation_job", "ThrottlingException", "slow down")
    failed = reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=5))
    assert failed.failures and failed.states == {"main": "preparing"}
    calls = len(lab.runtime.calls_of("converse"))

    reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=10))

    assert len(lab.runtime.calls_of("converse")) == calls
    assert len(lab.bedrock.jobs) == 1


@pytest.mark.parametrize(
    ("on_demand", "settings"), [(True, PROGRAMMATIC), (False, JUDGED), (False, PROGRAMMATIC)]
)
def test_otherwise_a_one_unit_pt_is_evaluated_by_bedrock(
    lab: Lab, on_demand: bool, settings: EvaluationSettings
) -> None:
    main = trial(on_demand=on_demand)
    complete(lab, main)
    metric = settings.metrics[0]

    report = run_gate(lab, gate_spec(lab, main, settings=settings), {"main": {metric: 0.9}})

    assert lab.serving.calls_of("create_custom_model_deployment") == []
    assert len(lab.serving.calls_of("create_provisioned_model_throughput")) == 1
    assert lab.runtime.calls_of("converse") == []
    (job,) = lab.bedrock.jobs.values()
    assert "bedrockModel" in job["inferenceConfig"]["models"][0]
    assert report.winner is not None
    assert billing(lab) == []


# --------------------------------------------------------------------------------------------------
# Serving and the gate keep to their own endpoints
# --------------------------------------------------------------------------------------------------


def serving_spec(lab: Lab, mode: str) -> ServingResource:
    return ServingResource(
        environment=ENV,
        fine_tuning=FT,
        region=REGION,
        settings=ServingSettings(mode, 1, "none", 12),  # type: ignore[arg-type]
        topic_arn=lab.topic_arn,
    )


def test_serving_never_touches_a_temporary_endpoint_and_the_gate_never_touches_serving(lab: Lab) -> None:
    main, micro = trial("main", "a"), trial("micro", "b", on_demand=True)
    complete(lab, main, micro)
    spec = gate_spec(lab, main, micro, settings=JUDGED)
    reconcile_gate(lab.gate, spec, now=T0)  # a temporary PT and a temporary deployment
    temporary = set(lab.serving.throughputs) | set(lab.serving.deployments)
    assert len(temporary) == 2
    world = lab.serving_clients
    lab.gate.ssm.put_parameter(  # what a deploy leaves (tests.fakes.deploy_serving)
        Name=names.ssm_parameter_name(ENV, FT, names.SETTINGS_PARAMETER), Value="{}", Type="String"
    )

    for mode in ("provisioned", "on_demand", "none"):
        serving.reconcile(world, serving_spec(lab, mode))
        lab.settle()
        serving.reconcile(world, serving_spec(lab, mode))
        assert temporary <= set(lab.serving.throughputs) | set(lab.serving.deployments)
    teardown.teardown(world, serving_spec(lab, "provisioned"), sleep=lambda _: None)
    assert temporary == set(lab.serving.throughputs) | set(lab.serving.deployments)

    serving.reconcile(world, serving_spec(lab, "provisioned"), deploying=True)
    lab.settle()
    serving.reconcile(world, serving_spec(lab, "provisioned"))
    serving_pt = next(arn for arn in lab.serving.throughputs if arn not in temporary)
    run_gate(lab, spec, {"main": {CORRECTNESS: 0.9}, "micro": {CORRECTNESS: 0.9}}, start=T0)
    teardown_gate(lab.gate, spec)

    assert set(lab.serving.throughputs) == {serving_pt}
    assert lab.serving.deployments == {}


def test_an_endpoint_with_our_name_but_not_our_tags_is_not_ours(lab: Lab) -> None:
    main = trial()
    lab.serving.create_provisioned_model_throughput(
        modelUnits=1,
        provisionedModelName=endpoint_name(),
        modelId="arn:aws:bedrock:us-east-1:123456789012:custom-model/someone-else",
        tags=[{"key": "owner", "value": "someone-else"}],
    )
    lab.serving.settle()

    teardown_gate(lab.gate, gate_spec(lab, main))
    complete(lab, main)
    report = reconcile_gate(lab.gate, gate_spec(lab, main), now=T0)

    assert len(lab.serving.throughputs) == 1
    assert report.states == {"main": "failed"}  # the name is taken by someone else's PT


def test_teardown_gate_stops_evaluations_and_deletes_every_temporary_endpoint(lab: Lab) -> None:
    main, micro = trial("main", "a"), trial("micro", "b", on_demand=True)
    complete(lab, main, micro)
    settings = replace(JUDGED, gate=Gate(beat_base=True))
    spec = gate_spec(lab, main, micro, settings=settings)
    reconcile_gate(lab.gate, spec, now=T0)
    lab.serving.settle()
    reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=5))
    assert {job["status"] for job in lab.bedrock.jobs.values()} == {"InProgress"}
    assert len(lab.bedrock.jobs) == 3  # two trials and the base model

    report = teardown_gate(lab.gate, spec)

    assert lab.serving.throughputs == {} and lab.serving.deployments == {}
    assert len(lab.bedrock.calls_of("stop_evaluation_job")) == 3
    assert len([change for change in report.changes if "deleted" in change]) == 2
    lab.settle()
    assert billing(lab) == []
    assert teardown_gate(lab.gate, spec).changes == []


def test_an_endpoint_with_our_tags_but_another_name_is_not_ours(lab: Lab) -> None:
    main = trial()
    tags = names.temporary_tags(ENV, FT, "main")
    lab.serving.create_provisioned_model_throughput(
        modelUnits=1,
        provisionedModelName=f"{ENV}-{FT}-main-eval0123abcd",
        modelId="arn:aws:bedrock:us-east-1:123456789012:custom-model/someone-else",
        tags=[{"key": key, "value": value} for key, value in tags.items()],
    )

    teardown_gate(lab.gate, gate_spec(lab, main))

    assert len(lab.serving.throughputs) == 1
    assert trials.find_temporary_endpoints(lab.bedrock, ENV, FT) == []


def test_a_failed_pt_fails_the_trial_and_is_deleted(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    reconcile_gate(lab.gate, spec, now=T0)
    record = lab.serving.throughputs[pt_arn(lab)]
    record["status"], record["failureMessage"] = "Failed", "Insufficient capacity"

    report = reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=5))

    assert report.states == {"main": "failed"}
    assert "Insufficient capacity" in parameter(lab, "trial-main")["reason"]
    assert billing(lab) == []
    assert lab.bedrock.jobs == {}


def test_prompts_the_model_did_not_answer_fail_the_gate(lab: Lab) -> None:
    main = trial(on_demand=True)
    complete(lab, main)
    lab.runtime.fail_prompt("refund", "ValidationException", "the input is too long")

    report = run_gate(lab, gate_spec(lab, main, settings=JUDGED), {"main": {CORRECTNESS: 0.9}})

    assert report.states == {"main": "failed"}
    assert "1 of 3 prompts were not scored" in report.messages[0][1]
    assert billing(lab) == []


def test_a_new_job_of_a_decided_trial_is_evaluated_anew(lab: Lab) -> None:
    first = trial("main", "a")
    complete(lab, first)
    run_gate(lab, gate_spec(lab, first), {"main": {ACCURACY: 0.6}})
    second = trial("main", "b")
    complete(lab, second)

    report = run_gate(lab, gate_spec(lab, second), {"main": {ACCURACY: 0.9}}, start=T0 + timedelta(days=1))

    assert report.winner is not None and parameter(lab, "gate-winner")["job_name"] == second.job_name
    assert evaluation_jobs(lab) == [
        evaluation_job_name(first.job_name, "eval"),
        evaluation_job_name(second.job_name, "eval"),
    ]
    assert billing(lab) == []


def test_a_stop_that_fails_at_max_hours_still_deletes_the_endpoint(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    lab.bedrock.hang(evaluation_job_name(main.job_name, "eval"))
    run_gate(lab, spec, {"main": {ACCURACY: 0.9}})
    lab.bedrock.fail_next("stop_evaluation_job", "InternalServerException", "try again")

    report = reconcile_gate(lab.gate, spec, now=T0 + timedelta(hours=9))

    assert report.states == {"main": "failed"}
    assert any("stopping evaluation job" in failure for failure in report.failures)
    assert lab.serving.throughputs == {}


def test_an_evaluation_start_that_races_a_lagging_list_is_the_same_job(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main)
    reconcile_gate(lab.gate, spec, now=T0)
    lab.settle()
    reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=5))
    listed = lab.bedrock.list_evaluation_jobs
    lab.bedrock.list_evaluation_jobs = lambda **_: {"jobSummaries": []}  # type: ignore[method-assign]

    report = reconcile_gate(lab.gate, spec, now=T0 + timedelta(minutes=10))

    lab.bedrock.list_evaluation_jobs = listed  # type: ignore[method-assign]
    assert len(lab.bedrock.calls_of("create_evaluation_job")) == 2  # the same request, the same token
    assert len(lab.bedrock.jobs) == 1
    assert report.states == {"main": "evaluating"}
    assert len(lab.serving.throughputs) == 1


def test_a_base_evaluation_no_trial_needs_any_more_is_stopped(lab: Lab) -> None:
    main = trial()
    complete(lab, main)
    spec = gate_spec(lab, main, settings=replace(PROGRAMMATIC, gate=Gate(beat_base=True)))
    lab.bedrock.fail_evaluation(evaluation_job_name(main.job_name, "eval"), "The model timed out")
    lab.bedrock.hang(BASE_ID)

    report = run_gate(lab, spec, {"main": {ACCURACY: 0.9}})

    assert report.finished and report.states == {"main": "failed"}
    assert len(lab.bedrock.calls_of("stop_evaluation_job")) == 1
    lab.settle()
    assert billing(lab) == []


# --------------------------------------------------------------------------------------------------
# Serving behind the gate (finetune.aws.serving, finetune.aws.teardown)
# --------------------------------------------------------------------------------------------------


def gated(lab: Lab, *trial_specs: GateTrial, mode: str = "provisioned") -> ServingResource:
    gate = EvaluationGate(PROGRAMMATIC, trial_specs, EVALUATION_ROLE, BUCKET, DATASET_KEY)
    settings = ServingSettings(mode, 1, "none", 24)  # type: ignore[arg-type]
    return ServingResource(ENV, FT, REGION, settings, topic_arn=lab.topic_arn, gate=gate)


def serve_through_the_gate(
    lab: Lab, spec: ServingResource, scores: Mapping[str, Mapping[str, float]]
) -> serving.ReconcileReport:
    """The deploy's reconcile, then the schedule's, time settling in between (as run_gate does)."""
    clients = replace(lab.serving_clients, s3=lab.gate.s3, runtime=lab.runtime)
    first = serving.reconcile(clients, spec, deploying=True, now=T0)
    assert first.model is None and first.gate is not None, "nothing is served before the gate decides"
    # Each temporary PT has an idle alarm of its own while it exists.
    alarms = clients.cloudwatch.describe_alarms(AlarmNamePrefix=names.alarm_name_prefix(ENV, FT))[
        "MetricAlarms"
    ]
    assert spec.gate is not None and len(alarms) == len(spec.gate.trials)
    assert {alarm["EvaluationPeriods"] for alarm in alarms} == {2}
    assert all("evaluation gate's temporary endpoint" in alarm["AlarmDescription"] for alarm in alarms)
    for arn in lab.serving.throughputs:
        owner = lab.serving.tags[arn].get(names.TRIAL_TAG, "")
        if owner in scores:
            lab.bedrock.set_scores(arn, scores[owner])
    lab.settle()
    serving.reconcile(clients, spec, now=T0 + timedelta(minutes=15))
    lab.settle()
    return serving.reconcile(clients, spec, now=T0 + timedelta(minutes=30))


def serving_throughputs(lab: Lab) -> dict[str, str]:
    """Name -> model of every PT that is not a temporary one."""
    return {
        record["provisionedModelName"]: record["modelArn"]
        for record in lab.serving.throughputs.values()
        if not names.is_temporary_endpoint_name(record["provisionedModelName"])
    }


def test_a_gated_fine_tuning_serves_only_the_winner_and_no_temporary_endpoint_remains(lab: Lab) -> None:
    main, slow = (
        trial("main", "a", serving_usd_per_30_days=100.0),
        trial("slow", "b", serving_usd_per_30_days=100.0),
    )
    complete(lab, main, slow)
    jobs.record_deployed_job(lab.gate.ssm, ENV, FT, jobs.DeployedJob(main.job_name, "d", jobs.DEPLOY))

    report = serve_through_the_gate(
        lab,
        gated(lab, main, slow),
        {"main": {ACCURACY: 0.75, ROBUSTNESS: 0.1}, "slow": {ACCURACY: 0.9, ROBUSTNESS: 0.1}},
    )

    assert report.gate is not None and report.gate.finished
    assert report.model is not None and report.model.model_arn == job_model_arn(slow.job_name)
    assert list(serving_throughputs(lab).values()) == [job_model_arn(slow.job_name)]
    assert list(lab.serving.throughputs) == [report.endpoint_arn], "the temporary PTs are gone"
    alarms = lab.serving_clients.cloudwatch.describe_alarms(AlarmNamePrefix=names.alarm_name_prefix(ENV, FT))
    assert [alarm["Dimensions"][0]["Value"] for alarm in alarms["MetricAlarms"]] == [report.endpoint_arn]
    assert parameter(lab, "gate-winner")["trial"] == "slow"


def test_a_gate_no_trial_passes_serves_nothing_and_says_what_missed(lab: Lab) -> None:
    main = trial("main", "a")
    complete(lab, main)
    jobs.record_deployed_job(lab.gate.ssm, ENV, FT, jobs.DeployedJob(main.job_name, "d", jobs.DEPLOY))

    report = serve_through_the_gate(lab, gated(lab, main), {"main": {ACCURACY: 0.6, ROBUSTNESS: 0.1}})

    assert report.model is None and serving_throughputs(lab) == {}
    assert billing(lab) == []
    assert "no model has passed the evaluation gate yet" in report.summary()
    messages = [message for _, message in sent_notifications(lab.topic_arn)]
    assert any("Builtin.Accuracy: 0.60 < minimum 0.70 (missed by 0.10)" in message for message in messages)


def test_the_main_trial_is_the_job_recorded_as_deployed(lab: Lab) -> None:
    synth_named, uploaded = trial("main", "a"), trial("main", "c")
    complete(lab, uploaded)
    jobs.record_deployed_job(lab.gate.ssm, ENV, FT, jobs.DeployedJob(uploaded.job_name, "d", jobs.UPLOAD))
    spec = trials.deployed_gate(lab.gate.ssm, gated(lab, synth_named))
    assert spec.trials[0].job_name == uploaded.job_name


def test_serving_teardown_deletes_the_gates_temporary_endpoints_and_stops_its_evaluations(lab: Lab) -> None:
    main = trial("main", "a")
    complete(lab, main)
    jobs.record_deployed_job(lab.gate.ssm, ENV, FT, jobs.DeployedJob(main.job_name, "d", jobs.DEPLOY))
    spec = gated(lab, main)
    clients = replace(lab.serving_clients, s3=lab.gate.s3, runtime=lab.runtime)
    serving.reconcile(clients, spec, deploying=True, now=T0)
    lab.settle()
    serving.reconcile(clients, spec, now=T0 + timedelta(minutes=15))  # the evaluation starts
    assert lab.serving.throughputs and evaluation_jobs(lab)

    result = teardown.teardown(
        clients, spec, timeout_seconds=60, poll_seconds=0, sleep=lambda _: lab.settle()
    )
    lab.settle()  # a stopped evaluation job is Stopping until Bedrock ends it

    assert billing(lab) == []
    assert result.stopped_evaluations == [evaluation_job_name(main.job_name, "eval")]
    assert any(label.startswith("temporary provisioned throughput") for label in result.deleted)
    # A schedule that fires after the teardown creates nothing (the settings are gone).
    after = serving.reconcile(clients, spec, now=T0 + timedelta(hours=1))
    assert after.disabled and billing(lab) == []


def test_a_destroy_environments_teardown_forgets_the_gates_verdicts_with_the_models(lab: Lab) -> None:
    main = trial("main", "a")
    complete(lab, main)
    jobs.record_deployed_job(lab.gate.ssm, ENV, FT, jobs.DeployedJob(main.job_name, "d", jobs.DEPLOY))
    spec = replace(gated(lab, main), delete_models_on_destroy=True)
    serve_through_the_gate(lab, spec, {"main": {ACCURACY: 0.9, ROBUSTNESS: 0.1}})
    assert parameter(lab, "trial-main") is not None and parameter(lab, "gate-winner") is not None
    clients = replace(lab.serving_clients, s3=lab.gate.s3, runtime=lab.runtime)

    teardown.teardown(clients, spec, timeout_seconds=60, poll_seconds=0, sleep=lambda _: lab.settle())

    # Its models are deleted (their key goes with the stack): a redeploy trains and judges anew.
    assert parameter(lab, "trial-main") is None and parameter(lab, "gate-winner") is None
