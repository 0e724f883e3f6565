"""finetune.core.metrics and `python -m finetune report`: metrics CSVs in moto S3 at the documented keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.bedrock.models import bedrock_backends

from finetune.cli.main import main
from finetune.core import metrics
from tests.conftest import SAMPLE_PROJECT

REGION = "us-west-2"
ACCOUNT = "123456789012"
BUCKET = "dev-support-assistant-trainingdata"
OUTPUT = f"s3://{BUCKET}/output/support-assistant/"
FIXTURES = Path(__file__).parent / "data" / "metrics"
JOB_A = "dev-support-assistant-aaaaaaaaaaaa"
JOB_B = "dev-support-assistant-bbbbbbbbbbbb"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield {"s3": s3, "bedrock": boto3.client("bedrock", region_name=REGION)}


def create_job(
    aws: dict[str, Any],
    name: str,
    *,
    training: str | None,
    validation: str | None,
    hyperparameters: dict[str, str] | None = None,
    status: str | None = None,
) -> str:
    """A moto job whose output holds the fixture CSVs at the documented keys; returns the job ARN."""
    arn = str(
        aws["bedrock"].create_model_customization_job(
            jobName=name,
            customModelName=name,
            roleArn="arn:aws:iam::123456789012:role/customization",
            baseModelIdentifier="anthropic.claude-3-haiku-20240307-v1:0:200k",
            trainingDataConfig={"s3Uri": f"s3://{BUCKET}/training/train.jsonl"},
            outputDataConfig={"s3Uri": OUTPUT},
            hyperParameters=hyperparameters or {"epochCount": "3"},
        )["jobArn"]
    )
    if status is not None:
        bedrock_backends[ACCOUNT][REGION].model_customization_jobs[name].status = status
    job_id = arn.rsplit("/", 1)[-1]
    folder = f"output/support-assistant/model-customization-job-{job_id}"
    if training is not None:
        aws["s3"].put_object(
            Bucket=BUCKET,
            Key=f"{folder}/training_artifacts/step_wise_training_metrics.csv",
            Body=(FIXTURES / training).read_bytes(),
        )
    if validation is not None:
        aws["s3"].put_object(
            Bucket=BUCKET,
            Key=f"{folder}/validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv",
            Body=(FIXTURES / validation).read_bytes(),
        )
    return arn


def png_ok(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_SIGNATURE) and len(data) > len(PNG_SIGNATURE)


# -- finetune.core.metrics --------------------------------------------------------------------------------


def test_summary_matches_the_hand_computed_values() -> None:
    training = metrics.parse_training((FIXTURES / "trial_a_training.csv").read_text(), "train.csv")
    validation = metrics.parse_validation((FIXTURES / "trial_a_validation.csv").read_text(), "val.csv")
    summary = metrics.summarize(metrics.JobMetrics(JOB_A, training, validation))
    assert (summary.steps, summary.epochs) == (12, 3)
    assert summary.final_training == metrics.LossPoint(1.1186, 11, 3)
    assert summary.best_training == metrics.LossPoint(1.1049, 10, 3)
    assert summary.final_validation == metrics.LossPoint(1.2931, 11, 3)
    assert summary.best_validation == metrics.LossPoint(1.2875, 7, 2)
    assert "  tokens billed: unknown" in summary.lines()
    assert training[0] == metrics.MetricRow(step=0, epoch=1, loss=2.3514, perplexity=10.5003)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ((FIXTURES / "malformed_training.csv").read_text(), "f.csv:5: training_loss 'abc' is not a number"),
        ("", "f.csv:1: empty file"),
        (
            "step_number,epoch_number,loss\n0,1,2.0\n",
            "f.csv:1: header step_number,epoch_number,loss lacks training_loss",
        ),
        ("step_number,epoch_number,training_loss\n0,1\n", "f.csv:2: 2 fields, expected 3"),
        (
            "step_number,epoch_number,training_loss\n0.5,1,2.0\n",
            "f.csv:2: step_number '0.5' is not a whole number",
        ),
        (
            "step_number,epoch_number,training_loss\n0,1,nan\n",
            "f.csv:2: training_loss 'nan' is not a finite number",
        ),
        ("step_number,epoch_number,training_loss\n", "f.csv:1: no rows after the header"),
    ],
)
def test_malformed_metrics_name_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(metrics.MetricsError) as raised:
        metrics.parse_training(text, "f.csv")
    assert str(raised.value).startswith(expected)


def test_artifact_keys_follow_the_documented_layout() -> None:
    arn = "arn:aws:bedrock:us-west-2:123456789012:model-customization-job/anthropic.claude-3-haiku/ab12cd34"
    assert metrics.artifact_key("s3://b/output/ft/", arn, metrics.TRAINING_FILE) == (
        "b",
        "output/ft/model-customization-job-ab12cd34/training_artifacts/step_wise_training_metrics.csv",
    )
    assert metrics.artifact_key("s3://b", arn, metrics.VALIDATION_FILE)[1] == (
        "model-customization-job-ab12cd34/validation_artifacts/post_fine_tuning_validation/validation/"
        "validation_metrics.csv"
    )


# -- the command --------------------------------------------------------------------------------------


def test_report_prints_the_summary_and_writes_a_png(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(aws, JOB_A, training="trial_a_training.csv", validation="trial_a_validation.csv")
    output = tmp_path / "loss.png"
    assert main(["report", JOB_A, "--output", str(output), "--region", REGION]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:6] == [
        f"{JOB_A}:",
        "  hyperparameters: epochCount=3",
        "  steps: 12, epochs: 3",
        "  training loss: final 1.1186 (step 11, epoch 3), best 1.1049 (step 10, epoch 3)",
        "  validation loss: final 1.2931 (step 11, epoch 3), best 1.2875 (step 7, epoch 2)",
        "  tokens billed: unknown",
    ]
    assert printed[-1] == f"plot: {output}"
    assert png_ok(output)


def test_two_trials_are_overlaid_and_a_job_arn_is_accepted(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(aws, JOB_A, training="trial_a_training.csv", validation="trial_a_validation.csv")
    arn_b = create_job(aws, JOB_B, training="trial_b_training.csv", validation="trial_b_validation.csv")
    output = tmp_path / "trials.png"
    assert main(["report", JOB_A, arn_b, "--output", str(output), "--region", REGION]) == 0
    out = capsys.readouterr().out
    assert "training loss: final 1.0644 (step 11, epoch 3), best 1.0644 (step 11, epoch 3)" in out
    assert "validation loss: final 1.3390 (step 11, epoch 3), best 1.2604 (step 7, epoch 2)" in out
    assert out.index(f"{JOB_A}:") < out.index(f"{JOB_B}:")
    assert png_ok(output)


def test_the_plot_has_one_line_per_job_with_its_name(tmp_path: Path) -> None:
    from finetune.cli.commands import report

    loaded = [
        metrics.JobMetrics(
            name,
            metrics.parse_training((FIXTURES / f"trial_{trial}_training.csv").read_text(), "t"),
            metrics.parse_validation((FIXTURES / f"trial_{trial}_validation.csv").read_text(), "v"),
        )
        for name, trial in ((JOB_A, "a"), (JOB_B, "b"))
    ]
    figure = report.plot(loaded, tmp_path / "x.png")
    training_axes, validation_axes = figure.axes
    assert [line.get_label() for line in training_axes.get_lines()] == [JOB_A, JOB_B]
    assert [line.get_label() for line in validation_axes.get_lines()] == [JOB_A, JOB_B]
    y_data: Any = validation_axes.get_lines()[1].get_ydata()
    assert [float(value) for value in y_data] == [1.5533, 1.2604, 1.3390]
    assert png_ok(tmp_path / "x.png")


def test_malformed_metrics_exit_1_with_file_and_line(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = create_job(aws, JOB_A, training="malformed_training.csv", validation=None)
    output = tmp_path / "loss.png"
    assert main(["report", JOB_A, "--output", str(output), "--region", REGION]) == 1
    key = f"output/support-assistant/model-customization-job-{arn.rsplit('/', 1)[-1]}"
    err = capsys.readouterr().err
    assert (
        f"s3://{BUCKET}/{key}/training_artifacts/step_wise_training_metrics.csv:5: training_loss 'abc'" in err
    )
    assert not output.exists()


def test_missing_metrics_exit_1(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(aws, JOB_A, training=None, validation=None)
    assert main(["report", JOB_A, "--output", str(tmp_path / "l.png"), "--region", REGION]) == 1
    assert "no training metrics for job dev-support-assistant-aaaaaaaaaaaa (status InProgress)" in (
        capsys.readouterr().err
    )


def test_validation_metrics_are_optional(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(aws, JOB_A, training="trial_a_training.csv", validation=None)
    assert main(["report", JOB_A, "--output", str(tmp_path / "l.png"), "--region", REGION]) == 0
    assert "validation loss: none (no validation metrics)" in capsys.readouterr().out


def test_unknown_job_and_bad_output_are_usage_errors(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "no-such-job", "--output", str(tmp_path / "l.png"), "--region", REGION]) == 2
    assert "no customization job 'no-such-job'" in capsys.readouterr().err
    assert main(["report", JOB_A, "--output", str(tmp_path / "l.svg"), "--region", REGION]) == 2
    assert "expected a file name ending in .png" in capsys.readouterr().err


# -- hyperparameters in the legend, whole-number ticks ---------------------------------------------


def fixture_metrics(name: str, trial: str, hyperparameters: dict[str, str] | None) -> metrics.JobMetrics:
    return metrics.JobMetrics(
        name,
        metrics.parse_training((FIXTURES / f"trial_{trial}_training.csv").read_text(), "t"),
        metrics.parse_validation((FIXTURES / f"trial_{trial}_validation.csv").read_text(), "v"),
        hyperparameters=hyperparameters,
    )


def test_the_legend_shows_the_hyperparameters_that_differ_and_the_title_what_is_shared(
    tmp_path: Path,
) -> None:
    from finetune.cli.commands import report

    loaded = [
        fixture_metrics(JOB_A, "a", {"epochCount": "3", "batchSize": "8", "learningRateMultiplier": "1.0"}),
        fixture_metrics(JOB_B, "b", {"epochCount": "3", "batchSize": "8", "learningRateMultiplier": "0.5"}),
    ]
    figure = report.plot(loaded, tmp_path / "x.png")
    training_axes, validation_axes = figure.axes
    expected = ["learningRateMultiplier=1.0", "learningRateMultiplier=0.5"]
    assert [line.get_label() for line in training_axes.get_lines()] == expected
    legend = training_axes.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == expected
    assert [line.get_label() for line in validation_axes.get_lines()] == expected
    assert figure.get_suptitle() == "Same in every job: batchSize=8, epochCount=3"


def test_the_axes_tick_whole_steps_and_epochs_only(tmp_path: Path) -> None:
    from finetune.cli.commands import report

    figure = report.plot([fixture_metrics(JOB_A, "a", None)], tmp_path / "x.png")
    for axes in figure.axes:
        ticks = [float(tick) for tick in axes.get_xticks()]
        assert ticks and all(tick.is_integer() for tick in ticks), ticks


@pytest.mark.parametrize(
    ("hyperparameters", "labels", "shared"),
    [
        ([{"a": "1", "b": "2"}, {"a": "1", "b": "3"}], ["b=2", "b=3"], "a=1"),
        ([{"a": "1"}, {"a": "1"}], ["job-1", "job-2"], "a=1"),  # same settings: names tell them apart
        ([{"a": "1"}, None], ["job-1", "job-2"], ""),  # one known: nothing to compare
        ([None, None], ["job-1", "job-2"], ""),
        (
            [{"a": "1", "b": "2"}, {"a": "2"}, {"a": "1", "b": "2"}],
            ["a=1, b=2 (job-1)", "a=2", "a=1, b=2 (job-3)"],
            "",
        ),
    ],
)
def test_jobs_are_compared_by_what_differs(
    hyperparameters: list[dict[str, str] | None], labels: list[str], shared: str
) -> None:
    rows = (metrics.MetricRow(0, 1, 1.0),)
    jobs = [
        metrics.JobMetrics(f"job-{i}", rows, hyperparameters=values)
        for i, values in enumerate(hyperparameters, 1)
    ]
    comparison = metrics.compare(jobs)
    assert list(comparison.labels) == labels
    assert comparison.shared == shared


# -- local files and folders ------------------------------------------------------------------------


def bedrock_layout(root: Path, job_id: str, trial: str, *, validation: bool = True) -> Path:
    """A job's output as `aws s3 sync` copies it; returns the job folder."""
    folder = root / f"model-customization-job-{job_id}"
    training = folder / metrics.TRAINING_FILE
    training.parent.mkdir(parents=True)
    training.write_bytes((FIXTURES / f"trial_{trial}_training.csv").read_bytes())
    if validation:
        path = folder / metrics.VALIDATION_FILE
        path.parent.mkdir(parents=True)
        path.write_bytes((FIXTURES / f"trial_{trial}_validation.csv").read_bytes())
    return folder


def test_local_files_are_read_a_validation_file_joining_the_training_file_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "local.png"
    training, validation = FIXTURES / "trial_a_training.csv", FIXTURES / "trial_a_validation.csv"
    assert (
        main(
            [
                "report",
                str(training),
                str(validation),
                str(FIXTURES / "trial_b_training.csv"),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert printed[:4] == [
        f"{training}:",
        "  steps: 12, epochs: 3",
        "  training loss: final 1.1186 (step 11, epoch 3), best 1.1049 (step 10, epoch 3)",
        "  validation loss: final 1.2931 (step 11, epoch 3), best 1.2875 (step 7, epoch 2)",
    ]
    assert f"{FIXTURES / 'trial_b_training.csv'}:" in printed
    assert "  validation loss: none (no validation metrics)" in printed  # b's was not given
    assert png_ok(output)


def test_a_folder_holds_one_job_per_training_file_with_its_validation_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = bedrock_layout(tmp_path / "output", "aaa111", "a")
    second = bedrock_layout(tmp_path / "output", "bbb222", "b")
    output = tmp_path / "folder.png"
    assert main(["report", str(tmp_path / "output"), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert out.index(f"{first}:") < out.index(f"{second}:")
    assert "validation loss: final 1.3390 (step 11, epoch 3), best 1.2604 (step 7, epoch 2)" in out
    assert "validation loss: final 1.2931 (step 11, epoch 3)" in out
    assert png_ok(output)


def test_a_local_job_and_a_job_in_s3_are_compared_in_one_plot(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(aws, JOB_B, training="trial_b_training.csv", validation="trial_b_validation.csv")
    folder = bedrock_layout(tmp_path, "aaa111", "a")
    assert main(["report", str(folder), JOB_B, "--region", REGION, "--output", str(tmp_path / "x.png")]) == 0
    out = capsys.readouterr().out
    assert out.index(f"{folder}:") < out.index(f"{JOB_B}:")


def test_local_problems_exit_1_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    malformed = FIXTURES / "malformed_training.csv"
    assert main(["report", str(malformed), str(empty), "--output", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert f"error: {malformed}:5: training_loss 'abc' is not a number" in err
    assert f"error: {empty}: no step_wise_training_metrics.csv in this folder or below" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (
            ["missing/step_wise_training_metrics.csv"],
            "missing/step_wise_training_metrics.csv: no such file or folder",
        ),
        (
            [str(FIXTURES / "trial_a_validation.csv")],
            "validation metrics, but no training metrics file was given",
        ),
    ],
)
def test_local_usage_errors_exit_2(
    sources: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", *sources, "--output", str(tmp_path / "x.png")]) == 2
    assert message in capsys.readouterr().err


# -- the region from cdk.json, and ENV FINE_TUNING --------------------------------------------------


def test_the_region_of_a_configured_fine_tunings_job_comes_from_cdk_json(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(aws, JOB_A, training="trial_a_training.csv", validation=None)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    assert main(["report", JOB_A, "--project", str(SAMPLE_PROJECT), "--output", str(tmp_path / "x.png")]) == 0
    assert f"{JOB_A}:" in capsys.readouterr().out
    # A job of no configured fine-tuning needs a region.
    assert main(["report", "other-job", "--project", str(tmp_path), "--output", str(tmp_path / "y.png")]) == 2
    assert "no AWS region for job other-job: it is no job of a fine-tuning in cdk.json; pass --region" in (
        capsys.readouterr().err
    )


def test_a_fine_tuning_compares_its_completed_jobs(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    create_job(
        aws,
        JOB_A,
        training="trial_a_training.csv",
        validation=None,
        status="Completed",
        hyperparameters={"epochCount": "3", "batchSize": "8"},
    )
    create_job(
        aws,
        JOB_B,
        training="trial_b_training.csv",
        validation=None,
        status="Completed",
        hyperparameters={"epochCount": "2", "batchSize": "8"},
    )
    running = "dev-support-assistant-cccccccccccc"
    create_job(aws, running, training=None, validation=None)
    create_job(aws, "dev-sql-generator-dddddddddddd", training=None, validation=None)  # another fine-tuning
    argv = ["report", "dev", "support-assistant", "--project", str(SAMPLE_PROJECT)]
    assert main([*argv, "--output", str(tmp_path / "x.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "dev/support-assistant in us-west-2: 2 Completed job(s) compared; without metrics until they "
        f"complete: {running} (InProgress)"
    )
    assert f"{JOB_A}:" in out and f"{JOB_B}:" in out and "  hyperparameters: batchSize=8, epochCount=2" in out


def test_a_fine_tuning_without_completed_jobs_exits_1(
    aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(aws, JOB_A, training=None, validation=None, status="Failed")
    argv = [
        "report",
        "dev",
        "support-assistant",
        "--project",
        str(SAMPLE_PROJECT),
        "--output",
        str(tmp_path / "x.png"),
    ]
    assert main(argv) == 1
    assert (
        f"dev/support-assistant: no Completed job in us-west-2, so no metrics yet (its jobs: {JOB_A} (Failed))"
        in (capsys.readouterr().err)
    )


def test_an_unknown_fine_tuning_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "dev", "nope", "--project", str(SAMPLE_PROJECT), "--output", str(tmp_path / "x.png")]
    assert main(argv) == 2
    assert "no fine-tuning 'nope' in environment 'dev'" in capsys.readouterr().err
