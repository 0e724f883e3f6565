"""The rehearsal: the deployed lifecycle against moto's server, with good and with corrupted data."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from finetune.aws import jobs
from finetune.cli import rehearsal
from finetune.cli.main import main
from finetune.core.project import load_plans
from finetune.runtime import serving_lifecycle as serving_handler
from tests.conftest import PROJECT_ROOT, SAMPLE_PROJECT

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}  [a-z-]+  (ok|FAILED)  \S")
SETUP = ["server", "kms-key", "bucket", "role", "topic", "assets", "stage-training", "stage-validation"]
LIFECYCLE = [
    *SETUP,
    "job-create",
    "one-job",
    "job-create-retry",
    "serving-create",
    "job-completes",
    "completion-event",
    "scheduled-reconcile",
    "duplicate-event",
    "notifications",
    "serving-none",
    "serving-back",
    "serving-delete",
    "upload-accepted",
    "job-delete",
]
# Serving modes that create something: a redeploy whose serving Create fails after creating its
# endpoint, and the rollback's Delete that must leave nothing billing.
FAILED_CREATE = ["redeploy-job", "serving-create-fails", "serving-rollback-delete"]
SERVING_LIFECYCLE = [*LIFECYCLE[:-2], *FAILED_CREATE, *LIFECYCLE[-2:]]
# A model that Bedrock serves on demand (Llama 3.3 70B, us-west-2), in a project of its own: the
# sample's models are served by provisioned throughput only.
ON_DEMAND_PROJECT = PROJECT_ROOT / "tests" / "fixtures" / "on_demand"
REJECTION = [
    *SETUP,
    "job-create-rejected",
    "no-job",
    "rollback-delete",
    "upload-rejected",
    "upload-tagged",
    "upload-notified",
    "still-no-job",
]


@pytest.fixture(scope="module")
def plans() -> tuple[Any, ...]:
    loaded, _warnings = load_plans(SAMPLE_PROJECT)
    return loaded


def run(plans: tuple[Any, ...], **options: Any) -> tuple[rehearsal.Result, list[str]]:
    printed: list[str] = []
    result = rehearsal.rehearse(plans, "dev", "support-assistant", out=printed.append, **options)
    return result, printed


def detail(result: rehearsal.Result, name: str) -> str:
    return next(step.detail for step in result.steps if step.name == name)


@pytest.mark.parametrize("mode", ["provisioned", "on_demand"])
def test_the_lifecycle_serves_once_and_tears_down(plans: tuple[Any, ...], mode: str) -> None:
    before = dict(os.environ)
    if mode == "on_demand":
        plans, _warnings = load_plans(ON_DEMAND_PROJECT)
    result, printed = run(plans, serving_mode=mode)
    steps = [name for name in SERVING_LIFECYCLE if name != "stage-validation" or plans[0].validation]
    assert result.outcomes() == [(name, True) for name in steps], result.summary()
    assert all(LINE.match(line) for line in printed)
    job_name = str(rehearsal.find_plan(plans, "dev", "support-assistant").job_spec.job_name)
    assert detail(result, "job-create").startswith(f"{job_name} InProgress")
    assert detail(result, "one-job") == f"1 job(s): {job_name} InProgress"
    assert detail(result, "job-create-retry") == f"same physical id {job_name}; still one job"
    endpoint = "dev-support-assistant-od" if mode == "on_demand" else "dev-support-assistant-pt-"
    assert endpoint in detail(result, "completion-event")
    # The completion's run waits while the endpoint comes up, then publishes it.
    assert "endpoint-arn parameter set" in detail(result, "completion-event")
    assert "scheduled reconcile (no change)" in detail(result, "scheduled-reconcile")
    assert detail(result, "duplicate-event").startswith("reconciled: nothing new;")
    assert "nothing serves" in detail(result, "serving-none")
    assert "(a new request token), served" in detail(result, "serving-back")
    assert "no provisioned throughput or deployment left" in detail(result, "serving-delete")
    assert "so the rollback's Delete tears it down" in detail(result, "serving-create-fails")
    assert "no provisioned throughput or deployment left" in detail(result, "serving-rollback-delete")
    assert "Completed" in detail(result, "job-delete")
    assert "now the deployed job" in detail(result, "upload-accepted")
    assert result.summary().endswith(f"all {len(steps)} steps behaved as deployed code must")
    # Nothing leaks out of the rehearsal: environment, boto3 endpoint, handler clients.
    assert dict(os.environ) == before
    assert serving_handler.clients.__name__ == "clients"


def test_serving_mode_none_keeps_the_rest_of_the_lifecycle(plans: tuple[Any, ...]) -> None:
    result, _ = run(plans)  # dev/support-assistant serves with mode none
    assert result.serving_mode == "none"
    assert result.ok and [name for name, _ in result.outcomes()] == LIFECYCLE
    assert "no endpoint (mode none); custom-model-arn parameter set" in detail(result, "completion-event")


def test_bad_data_is_rejected_on_deploy_and_on_upload(plans: tuple[Any, ...]) -> None:
    result, _ = run(plans, bad_data=True)
    assert result.outcomes() == [(name, True) for name in REJECTION], result.summary()
    assert "(training line 31 corrupted)" in detail(result, "assets")
    rejected = detail(result, "job-create-rejected")
    assert re.search(
        r"FAILED as expected: s3://[^ ]+/training/support-assistant/[0-9a-f]{64}/train\.jsonl:31: ", rejected
    )
    assert detail(result, "no-job") == "0 job(s)"
    assert detail(result, "rollback-delete").startswith("SUCCESS for placeholder failed-create-")
    assert detail(result, "upload-tagged") == "finetune:status=rejected"
    assert "/incoming/train.jsonl:31: invalid JSON" in detail(result, "upload-notified")
    assert detail(result, "still-no-job") == "0 job(s)"


def test_a_deviation_stops_the_rehearsal_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A regression: the job look-up never finds the job, so CloudFormation's retry cannot be idempotent.
    monkeypatch.setattr(jobs, "find_job", lambda *args, **kwargs: None)
    code = main(["rehearse", "dev", "support-assistant", "--project", str(SAMPLE_PROJECT)])
    assert code == 1
    out = capsys.readouterr().out.splitlines()
    failed = [line for line in out if "  FAILED  " in line]
    assert (
        len(failed) == 1
        and "  job-create-retry  FAILED  Custom::CustomizationJob Create answered FAILED" in failed[0]
    )
    assert not any("  serving-create  " in line for line in out)
    assert out[-1].startswith(
        "rehearsal of dev-support-assistant: lifecycle (serving mode none): step job-create-retry deviated"
    )


def test_unknown_fine_tuning_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rehearse", "dev", "chatbot", "--project", str(SAMPLE_PROJECT)]) == 2
    assert "no fine-tuning 'chatbot' in environment 'dev'" in capsys.readouterr().err


def test_the_command_runs_in_a_fresh_process() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "finetune",
            "rehearse",
            "dev",
            "support-assistant",
            "--project",
            str(SAMPLE_PROJECT),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("Rehearsing dev-support-assistant (lifecycle, serving mode none)")
    assert [line.split("  ")[1] for line in lines[1:-1]] == LIFECYCLE
    assert lines[-1].endswith(f"all {len(LIFECYCLE)} steps behaved as deployed code must")


def test_a_serving_mode_the_model_does_not_support_is_refused(
    plans: tuple[Any, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """A rehearsal never passes what synth refuses (Claude 3 Haiku has no on-demand deployment)."""
    with pytest.raises(ValueError, match="cannot be served on demand"):
        rehearsal.rehearse(plans, "dev", "support-assistant", serving_mode="on_demand", out=lambda _: None)
    code = main(
        ["rehearse", "dev", "support-assistant", "--serving", "on_demand", "--project", str(SAMPLE_PROJECT)]
    )
    assert code == 2 and "cannot be served on demand" in capsys.readouterr().err


def test_the_rehearsed_serving_is_the_configured_one_with_its_idle_alarm_hours(
    plans: tuple[Any, ...],
) -> None:
    """prod alarms after 12 idle hours (cdk.json); the rehearsal once wrote its own 24 (finding 10)."""
    from finetune.cli.rehearsal.state import RehearsalState

    [plan] = [p for p in plans if (p.config.environment.name, p.config.name) == ("prod", "support-assistant")]
    state = RehearsalState(plan=plan, serving_mode=plan.config.serving.mode, bad_data=False)
    settings = state.serving_resource().settings
    assert (settings.mode, settings.idle_alarm_hours) == ("provisioned", 12)
    assert settings.idle_alarm_hours == plan.config.serving.idle_alarm_hours


GATED = [
    *SETUP,
    "stage-evaluation",
    "evaluation-role",
    "job-create",
    "one-job",
    "job-create-retry",
    "candidate-jobs",
    "serving-create",
    "candidates-complete",
    "job-completes",
    "gate-endpoints",
    "gate-evaluations",
    "gate-decides",
    "gate-notifications",
]
GATED_TAIL = ["serving-delete", "nothing-billing", "upload-accepted", "job-delete"]


def test_behind_a_passing_gate_only_the_winner_is_served_and_no_temporary_endpoint_remains(
    plans: tuple[Any, ...],
) -> None:
    result = rehearsal.rehearse(plans, "dev", "sql-generator", serving_mode="provisioned", out=lambda _: None)
    assert result.outcomes() == [
        (name, True) for name in [*GATED, "serving-none", "serving-back", *GATED_TAIL]
    ], result.summary()
    assert "gentle: dev-sql-generator-" in detail(result, "candidate-jobs")
    assert detail(result, "gate-endpoints").startswith(
        "nothing served; temporary endpoints: dev-sql-generator-"
    )
    assert "(provisioned)" in detail(result, "gate-endpoints")  # Llama 3.1 8B has no on-demand deployment
    assert detail(result, "gate-evaluations").count("-eval") == 2 and "-base" in detail(
        result, "gate-evaluations"
    )
    decided = detail(result, "gate-decides")
    # Equal scores (the fake's) and equal serving costs: the tie goes to the trial's name.
    assert decided.startswith("winner gentle; temporary endpoints gone; dev-sql-generator-pt-")
    assert "passed the gate and wins" in detail(result, "gate-notifications")


def test_behind_a_failing_gate_nothing_is_served_and_the_topic_says_why(plans: tuple[Any, ...]) -> None:
    result = rehearsal.rehearse(
        plans, "dev", "sql-generator", serving_mode="provisioned", gate_fails=True, out=lambda _: None
    )
    assert result.outcomes() == [(name, True) for name in [*GATED, *GATED_TAIL]], result.summary()
    assert "scores set to miss the gate" in detail(result, "gate-endpoints")
    assert detail(result, "gate-decides") == (
        "no trial passed (no trial passed the evaluation gate); nothing served; temporary endpoints gone"
    )
    assert "no trial passed the evaluation gate" in detail(result, "gate-notifications")
    assert detail(result, "nothing-billing") == "no temporary endpoint, no running evaluation job"


def test_gate_fails_needs_a_gate(plans: tuple[Any, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rehearse", "dev", "support-assistant", "--gate-fails", "--project", str(SAMPLE_PROJECT)])
    assert code == 2
    assert "--gate-fails: dev-support-assistant has no evaluation gate" in capsys.readouterr().err


def test_behind_a_gate_a_model_served_on_demand_is_evaluated_through_a_temporary_deployment(
    tmp_path: Path,
) -> None:
    """The BYOI path: Llama 3.3 70B has on-demand deployments and a judge scores, so the trial's
    temporary endpoint is a deployment; its answers are generated with Converse and judged."""
    shutil.copytree(ON_DEMAND_PROJECT / "training_data", tmp_path / "training_data")
    context = json.loads((ON_DEMAND_PROJECT / "cdk.json").read_text())
    context["context"]["fine_tunings"]["support-assistant"]["evaluation"] = {
        "dataset": "support-assistant/eval.jsonl",
        "judge_model": "us.amazon.nova-pro-v1:0",
        "metrics": ["Builtin.Correctness"],
        "gate": {"minimums": {"Builtin.Correctness": 0.5}},
    }
    (tmp_path / "cdk.json").write_text(json.dumps(context))
    prompts = [
        {"prompt": f"How do I reset my password, case {n}?", "referenceResponse": "Account page."}
        for n in range(5)
    ]
    (tmp_path / "training_data" / "support-assistant" / "eval.jsonl").write_text(
        "".join(json.dumps(prompt) + "\n" for prompt in prompts)
    )
    plans, _warnings = load_plans(tmp_path)
    result = rehearsal.rehearse(plans, "dev", "support-assistant", out=lambda _: None)
    steps = [
        name for name in [*GATED, "serving-none", "serving-back", *GATED_TAIL] if "candidate" not in name
    ]
    assert result.outcomes() == [(name, True) for name in steps if name != "stage-validation"], (
        result.summary()
    )
    assert "(deployment)" in detail(result, "gate-endpoints")
    assert detail(result, "gate-evaluations") == "evaluation jobs started: ['dev-support-assistant-" + (
        plans[0].job_spec.job_name.removeprefix("dev-support-assistant-") + "-eval']"
    )
    assert detail(result, "gate-decides").startswith(
        "winner main; temporary endpoints gone; dev-support-assistant-od Active"
    )
