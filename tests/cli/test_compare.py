"""`python -m finetune compare`: the sample's gated fine-tuning (dev sql-generator, trials main and
gentle), its jobs and metrics CSVs in moto, and the gate's SSM records as `finetune.aws.trials`
writes them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from finetune.cli.commands import compare
from finetune.cli.main import main
from finetune.core import names
from finetune.core.plan import FineTuningPlan
from finetune.core.project import load_plans
from tests.cli.test_report import BUCKET, REGION, create_job, png_ok
from tests.conftest import SAMPLE_PROJECT

ENV, FT = "dev", "sql-generator"
CORRECTNESS, COMPLETENESS = "Builtin.Correctness", "Builtin.Completeness"
MISS = "Builtin.Correctness: 0.61 < minimum 0.70 (missed by 0.09)"


@pytest.fixture(scope="module")
def plan() -> FineTuningPlan:
    plans, _warnings = load_plans(SAMPLE_PROJECT, check_budgets=False)
    return next(p for p in plans if p.config.environment.name == ENV and p.config.name == FT)


@pytest.fixture
def jobs(plan: FineTuningPlan) -> dict[str, str]:
    """Trial name -> the job name synth gives it."""
    return {trial.config.trial_name: trial.job_spec.job_name for trial in plan.trials}


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield {
            "s3": s3,
            "bedrock": boto3.client("bedrock", region_name=REGION),
            "ssm": boto3.client("ssm", region_name=REGION),
        }


def put(aws: dict[str, Any], name: str, value: dict[str, Any]) -> None:
    aws["ssm"].put_parameter(
        Name=names.ssm_parameter_name(ENV, FT, name), Value=json.dumps(value), Type="String", Overwrite=True
    )


def record(
    aws: dict[str, Any],
    trial: str,
    job_name: str,
    state: str,
    scores: dict[str, float | None] | None = None,
    misses: list[str] | None = None,
    reason: str | None = None,
) -> None:
    """A `trial-<name>` record in the documented shape (TrialRecord as JSON)."""
    value: dict[str, Any] = {"trial": trial, "job_name": job_name, "state": state, "reason": reason}
    if scores is not None:
        value["scores"] = {"scores": scores, "prompts": 5}
    if state in ("passed", "failed") and reason is None:
        value["verdict"] = {"passed": state == "passed", "misses": misses or []}
    put(aws, names.trial_parameter(trial), value)


def completed_job(aws: dict[str, Any], name: str, trial: str) -> None:
    create_job(
        aws,
        name,
        training=f"trial_{trial}_training.csv",
        validation=f"trial_{trial}_validation.csv",
        status="Completed",
    )


def run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str], str]:
    code = main(["compare", ENV, FT, "--project", str(SAMPLE_PROJECT), *extra])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def table(lines: list[str]) -> dict[str, list[str]]:
    """The table's rows by trial, each row's cells (columns are two or more spaces apart)."""
    start = next(index for index, line in enumerate(lines) if line.startswith("TRIAL"))
    rows: dict[str, list[str]] = {"TRIAL": re.split(r"\s{2,}", lines[start])}
    for line in lines[start + 1 :]:
        if not line:
            break
        cells = re.split(r"\s{2,}", line)
        rows[cells[0]] = cells
    return rows


def cell(rows: dict[str, list[str]], trial: str, column: str) -> str:
    header = rows["TRIAL"]
    values = rows[trial] + [""] * (len(header) - len(rows[trial]))  # an empty last cell is stripped
    return values[header.index(column)]


def test_two_trials_scored_and_a_winner(
    aws: dict[str, Any], jobs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    completed_job(aws, jobs["main"], "a")
    completed_job(aws, jobs["gentle"], "b")
    record(aws, "main", jobs["main"], "passed", {CORRECTNESS: 0.82, COMPLETENESS: 0.75})
    record(aws, "gentle", jobs["gentle"], "passed", {CORRECTNESS: 0.78, COMPLETENESS: 0.8})
    put(aws, names.WINNER_PARAMETER, {"trial": "main", "job_name": jobs["main"], "model_arn": "arn:m"})
    code, out, _err = run(capsys)
    assert code == 0
    assert out[0] == (
        "dev/sql-generator (us-west-2): 2 trial(s); gate: Correctness >= 0.70, at least the base model's scores"
    )
    assert out[1] == "same in every trial: batchSize=1, epochCount=2"
    rows = table(out)
    assert rows["TRIAL"] == [
        "TRIAL",
        "MODEL",
        "HYPERPARAMETERS",
        "TRAINING",
        "TRAIN LOSS",
        "VAL LOSS",
        "CORRECTNESS",
        "COMPLETENESS",
        "SERVING/30D",
        "GATE",
        "SERVES",
    ]
    assert list(rows)[1:] == ["main", "gentle"]  # main first, then the candidates
    assert cell(rows, "main", "HYPERPARAMETERS") == "learningRate=0.0001"
    assert cell(rows, "gentle", "HYPERPARAMETERS") == "learningRate=5e-05"
    assert (cell(rows, "main", "TRAIN LOSS"), cell(rows, "main", "VAL LOSS")) == ("1.1186", "1.2931")
    assert (cell(rows, "gentle", "TRAIN LOSS"), cell(rows, "gentle", "VAL LOSS")) == ("1.0644", "1.3390")
    assert (cell(rows, "main", "CORRECTNESS"), cell(rows, "gentle", "COMPLETENESS")) == ("0.8200", "0.8000")
    assert cell(rows, "main", "GATE") == cell(rows, "gentle", "GATE") == "passed"
    assert cell(rows, "main", "MODEL") == "meta.llama3-1-8b-instruct-v1:0:128k"
    assert cell(rows, "main", "TRAINING").startswith("$")
    # The sample serves nothing (serving mode none): the winner is named, not served.
    assert (cell(rows, "main", "SERVES"), cell(rows, "gentle", "SERVES")) == ("winner", "")
    assert "note: serving mode is none: the winner main is not served" in out


def test_the_winner_serves_when_the_fine_tuning_serves(
    aws: dict[str, Any], plan: FineTuningPlan, jobs: dict[str, str]
) -> None:
    serving = replace(
        plan, config=replace(plan.config, serving=replace(plan.config.serving, mode="on_demand"))
    )
    put(aws, names.WINNER_PARAMETER, {"trial": "gentle", "job_name": jobs["gentle"], "model_arn": "arn:g"})
    comparison = compare.collect(serving, REGION, aws["bedrock"], aws["s3"], aws["ssm"])
    rows = table(compare.render(comparison))
    assert (cell(rows, "main", "SERVES"), cell(rows, "gentle", "SERVES")) == ("", "serves")


def test_a_trial_still_evaluating_and_a_job_still_running(
    aws: dict[str, Any], jobs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    completed_job(aws, jobs["main"], "a")
    create_job(aws, jobs["gentle"], training=None, validation=None)  # InProgress
    record(aws, "main", jobs["main"], "evaluating")
    code, out, _err = run(capsys)
    assert code == 0
    rows = table(out)
    assert cell(rows, "main", "GATE") == "evaluating"
    assert cell(rows, "main", "CORRECTNESS") == "-"
    assert cell(rows, "main", "TRAIN LOSS") == "1.1186"
    assert cell(rows, "gentle", "GATE") == "not started"
    assert [cell(rows, "gentle", column) for column in ("TRAIN LOSS", "VAL LOSS", "CORRECTNESS")] == ["-"] * 3
    assert f"note: gentle: job {jobs['gentle']} is InProgress: its metrics come when it completes" in out
    assert (
        "note: no winner yet: the gate names one when every trial is decided (undecided: main, gentle)" in out
    )


def test_a_failed_gate_shows_the_first_miss_and_no_winner(
    aws: dict[str, Any], jobs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    completed_job(aws, jobs["main"], "a")
    record(
        aws,
        "main",
        jobs["main"],
        "failed",
        {CORRECTNESS: 0.61, COMPLETENESS: None},
        misses=[MISS, "beat_base: Builtin.Completeness: this model has no score"],
    )
    record(aws, "gentle", jobs["gentle"], "failed", reason="job Failed: the data has too few records")
    put(aws, names.WINNER_PARAMETER, {"trial": None, "reason": "no trial passed the evaluation gate"})
    code, out, _err = run(capsys)
    assert code == 0
    rows = table(out)
    assert cell(rows, "main", "GATE") == f"failed: {MISS}"
    assert (cell(rows, "main", "CORRECTNESS"), cell(rows, "main", "COMPLETENESS")) == ("0.6100", "-")
    assert cell(rows, "gentle", "GATE") == "failed: job Failed: the data has too few records"
    assert f"note: gentle: no job {jobs['gentle']} in this region yet: no losses" in out
    assert "note: the gate named no winner: no trial passed the evaluation gate" in out
    assert cell(rows, "main", "SERVES") == cell(rows, "gentle", "SERVES") == ""


def test_a_record_of_an_earlier_job_is_not_this_jobs(
    aws: dict[str, Any], jobs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    record(aws, "gentle", "dev-sql-generator-000000000000", "passed", {CORRECTNESS: 0.9, COMPLETENESS: 0.9})
    _code, out, _err = run(capsys)
    rows = table(out)
    assert (cell(rows, "gentle", "GATE"), cell(rows, "gentle", "CORRECTNESS")) == ("not started", "-")
    assert (
        "note: gentle: the gate's record is of job dev-sql-generator-000000000000, not of its job "
        f"{jobs['gentle']}: not evaluated yet" in out
    )


def test_the_main_trials_job_is_the_one_recorded_as_deployed(
    aws: dict[str, Any], jobs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uploaded = "dev-sql-generator-123456abcdef"
    put(aws, "deployed-job", {"jobName": uploaded, "digest": "123456abcdef", "source": "upload"})
    completed_job(aws, uploaded, "b")
    record(aws, "main", uploaded, "scored", {CORRECTNESS: 0.75, COMPLETENESS: 0.7})
    _code, out, _err = run(capsys)
    rows = table(out)
    assert (cell(rows, "main", "TRAIN LOSS"), cell(rows, "main", "GATE")) == ("1.0644", "scored")
    assert cell(rows, "main", "CORRECTNESS") == "0.7500"


def test_no_evaluation_configured_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", ENV, "support-assistant", "--project", str(SAMPLE_PROJECT)]) == 2
    err = capsys.readouterr().err
    assert "fine-tuning 'support-assistant' of environment 'dev' has no evaluation configured" in err
    assert "compare needs an evaluation gate to compare trials; with one in dev: sql-generator" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["dev", "nope"],
            "no fine-tuning 'nope' in environment 'dev'; known: support-assistant, sql-generator",
        ),
        (["qa", FT], "no environment 'qa' in cdk.json; known: dev, prod"),
    ],
)
def test_an_unknown_fine_tuning_is_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", *argv, "--project", str(SAMPLE_PROJECT)]) == 2
    assert message in capsys.readouterr().err


def test_missing_credentials_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert main(["compare", ENV, FT, "--project", str(SAMPLE_PROJECT)]) == 2
    assert "no AWS credentials found" in capsys.readouterr().err


def test_the_png_overlays_the_losses_and_puts_the_scores_side_by_side(
    aws: dict[str, Any],
    jobs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    completed_job(aws, jobs["main"], "a")
    completed_job(aws, jobs["gentle"], "b")
    record(aws, "main", jobs["main"], "passed", {CORRECTNESS: 0.82, COMPLETENESS: 0.75})
    record(aws, "gentle", jobs["gentle"], "passed", {CORRECTNESS: 0.78, COMPLETENESS: 0.8})
    figures: list[Any] = []
    drawn = compare.plot

    def plot(comparison: compare.Comparison, output: Path) -> Any:
        figures.append(drawn(comparison, output))
        return figures[-1]

    monkeypatch.setattr(compare, "plot", plot)
    output = tmp_path / "compare.png"
    code, out, _err = run(capsys, "--output", str(output))
    assert code == 0
    assert out[-1] == f"plot: {output}"
    assert png_ok(output)
    training_axes, validation_axes, score_axes = figures[0].axes
    assert [line.get_label() for line in training_axes.get_lines()] == ["main", "gentle"]
    assert [line.get_label() for line in validation_axes.get_lines()] == ["main", "gentle"]
    assert [container.get_label() for container in score_axes.containers] == ["main", "gentle"]
    heights = [[bar.get_height() for bar in container] for container in score_axes.containers]
    assert heights == [[0.82, 0.75], [0.78, 0.8]]  # one group per metric, one bar per trial
    assert [label.get_text() for label in score_axes.get_xticklabels()] == ["Correctness", "Completeness"]


def test_a_trial_without_scores_has_no_bars(
    aws: dict[str, Any], plan: FineTuningPlan, jobs: dict[str, str], tmp_path: Path
) -> None:
    record(aws, "main", jobs["main"], "passed", {CORRECTNESS: 0.82, COMPLETENESS: None})
    comparison = compare.collect(plan, REGION, aws["bedrock"], aws["s3"], aws["ssm"])
    figure = compare.plot(comparison, tmp_path / "x.png")
    score_axes = figure.axes[2]
    assert [[bar.get_height() for bar in container] for container in score_axes.containers] == [[0.82]]
    assert png_ok(tmp_path / "x.png")


def test_malformed_metrics_exit_1_and_write_no_png(
    aws: dict[str, Any], jobs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    completed_job(aws, jobs["main"], "a")
    create_job(aws, jobs["gentle"], training="malformed_training.csv", validation=None, status="Completed")
    output = tmp_path / "compare.png"
    code, out, err = run(capsys, "--output", str(output))
    assert code == 1
    assert "step_wise_training_metrics.csv:5: training_loss 'abc' is not a number" in err
    assert "error: gentle: s3://" in err
    assert "no plot written: metrics of 1 trial(s) are malformed" in err
    assert not output.exists()
    assert cell(table(out), "main", "TRAIN LOSS") == "1.1186"  # the table is still printed


def test_output_must_be_a_png(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", ENV, FT, "--project", str(SAMPLE_PROJECT), "--output", "x.svg"]) == 2
    assert "expected a file name ending in .png" in capsys.readouterr().err
