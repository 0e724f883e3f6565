"""`python -m finetune report JOB [JOB ...]`: training and validation loss of customization jobs, plotted.

For each job (name or ARN): GetModelCustomizationJob gives the output location and the job id (the
last part of the job ARN); the metrics files Bedrock writes there are downloaded, parsed
(`finetune.core.metrics`) and summarized. One PNG shows training loss per step and validation loss per
epoch, every job overlaid with its name in the legend (hyperparameter trials side by side).

Decisions:
- matplotlib is imported inside `plot()` and draws on an Agg canvas without pyplot: no display, no
  global figure state, and nothing the Lambda package imports ever loads it.
- Tokens billed: GetModelCustomizationJob reports no token count (botocore's service model, 2026-08),
  so the summary says "unknown" rather than guess.
- A job whose metrics are missing or malformed is reported (FILE:LINE) and no PNG is written: a plot
  that silently lacks one trial would mislead the comparison. Exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from finetune.cli.commands.status import aws_client, usage_error_for
from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError
from finetune.core import metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NOT_FOUND_CODES = ("NoSuchKey", "404", "NotFound")
DEFAULT_OUTPUT = Path("loss.png")


class MetricsMissing(Exception):  # noqa: N818 (an outcome reported to the user)
    """The job has not written the metrics file (yet)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="summarize and plot the training and validation loss of customization jobs",
        description="Downloads the metrics CSVs each job wrote under its output location, prints final "
        "and best losses, and plots loss per step (training) and per epoch (validation), jobs overlaid. "
        "Exit 0; 1 when metrics are missing or malformed; 2 for usage errors (unknown job, no credentials).",
    )
    parser.add_argument("jobs", nargs="+", metavar="JOB", help="a customization job name or ARN")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"the PNG to write (default: {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--endpoint-url", default=None, help="a Bedrock/S3-compatible endpoint (e.g. moto)")
    parser.add_argument("--region", default=None, help="the AWS region (default: the credential chain's)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.output.suffix.lower() != ".png":
        raise UsageError(f"--output {args.output}: expected a file name ending in .png")
    try:
        bedrock = aws_client("bedrock", endpoint_url=args.endpoint_url, region=args.region)
        s3 = aws_client("s3", endpoint_url=args.endpoint_url, region=args.region)
        loaded: list[metrics.JobMetrics] = []
        problems: list[str] = []
        for identifier in args.jobs:
            job = find_job(bedrock, identifier)
            try:
                loaded.append(load_metrics(s3, job))
            except (metrics.MetricsError, MetricsMissing) as error:
                problems.append(str(error))
    except (BotoCoreError, ClientError) as error:
        raise usage_error_for(error) from error
    for item in loaded:
        for line in metrics.summarize(item).lines():
            print(line)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"no plot written: metrics of {len(problems)} job(s) are missing or malformed", file=sys.stderr)
        return EXIT_INVALID
    plot(loaded, args.output)
    print(f"plot: {args.output}")
    return EXIT_OK


def find_job(bedrock: Any, identifier: str) -> Mapping[str, Any]:
    """GetModelCustomizationJob by name or ARN; UsageError when no such job exists.

    Real Bedrock takes either; an emulator that only knows names (moto) gets the ARN's job looked up
    in the job list and fetched by name.
    """
    try:
        job: Mapping[str, Any] = bedrock.get_model_customization_job(jobIdentifier=identifier)
        return job
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "ResourceNotFoundException",
            "ValidationException",
        ):
            raise
    if identifier.startswith("arn:"):
        token: str | None = None
        while True:
            page = bedrock.list_model_customization_jobs(**({"nextToken": token} if token else {}))
            for summary in page.get("modelCustomizationJobSummaries", []):
                if summary.get("jobArn") == identifier:
                    found: Mapping[str, Any] = bedrock.get_model_customization_job(
                        jobIdentifier=summary["jobName"]
                    )
                    return found
            token = page.get("nextToken")
            if not token:
                break
    raise UsageError(
        f"no customization job {identifier!r} in this account and region (give a job name or ARN)"
    )


def _read(s3: Any, bucket: str, key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
            return None
        raise
    return bytes(body).decode("utf-8-sig")


def load_metrics(s3: Any, job: Mapping[str, Any]) -> metrics.JobMetrics:
    """The job's training metrics (required) and validation metrics (when written)."""
    name, arn = str(job["jobName"]), str(job["jobArn"])
    output = str((job.get("outputDataConfig") or {}).get("s3Uri", ""))
    bucket, key = metrics.artifact_key(output, arn, metrics.TRAINING_FILE)
    training_uri = f"s3://{bucket}/{key}"
    text = _read(s3, bucket, key)
    if text is None:
        raise MetricsMissing(
            f"{training_uri}: no training metrics for job {name} (status {job.get('status', '?')}): Bedrock "
            "writes them when the job completes"
        )
    training = metrics.parse_training(text, training_uri)
    bucket, key = metrics.artifact_key(output, arn, metrics.VALIDATION_FILE)
    text = _read(s3, bucket, key)
    validation = metrics.parse_validation(text, f"s3://{bucket}/{key}") if text is not None else None
    return metrics.JobMetrics(job_name=name, training=training, validation=validation, tokens_billed=None)


def plot(jobs: list[metrics.JobMetrics], output: Path) -> Figure:
    """One PNG: training loss per step (left) and validation loss per epoch (right), jobs overlaid."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    training_axes, validation_axes = figure.subplots(1, 2)
    any_validation = False
    for job in jobs:
        rows = sorted(job.training, key=lambda row: (row.step, row.epoch))
        (line,) = training_axes.plot(
            [row.step for row in rows], [row.loss for row in rows], label=job.job_name
        )
        if job.validation:
            any_validation = True
            points = sorted(job.validation, key=lambda row: (row.epoch, row.step))
            validation_axes.plot(
                [row.epoch for row in points],
                [row.loss for row in points],
                marker="o",
                color=line.get_color(),
                label=job.job_name,
            )
    training_axes.set(title="Training loss per step", xlabel="step", ylabel="training loss")
    training_axes.grid(alpha=0.3)
    training_axes.legend(fontsize="small")
    validation_axes.set(title="Validation loss per epoch", xlabel="epoch", ylabel="validation loss")
    validation_axes.grid(alpha=0.3)
    if any_validation:
        validation_axes.legend(fontsize="small")
    else:
        validation_axes.text(
            0.5, 0.5, "no validation metrics", ha="center", va="center", transform=validation_axes.transAxes
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png", dpi=100)
    return figure
