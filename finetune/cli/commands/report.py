"""`python -m finetune report SOURCE [SOURCE ...]`: training and validation loss of customization jobs.

A SOURCE is one of:
- a customization job, by name or ARN: GetModelCustomizationJob gives its output location, its job id
  (the last part of the job ARN) and its hyperParameters; the metrics files Bedrock writes there are
  downloaded;
- a local metrics file: a `step_wise_training_metrics.csv` (any CSV with `training_loss`) is one job,
  and a `validation_metrics.csv` (any CSV with `validation_loss`) given right after it is that job's
  validation metrics;
- a local folder (an output prefix copied with `aws s3 sync`, say): every
  `step_wise_training_metrics.csv` under it is one job (`finetune.core.metrics.local_job_files`);
- `ENV FINE_TUNING` (the only two SOURCEs) of cdk.json: every Completed job of that fine-tuning.

The metrics are parsed (`finetune.core.metrics`) and summarized. One PNG shows training loss per step
and validation loss per epoch, every job overlaid; the legend names each job by the hyperparameters
that differ between the jobs, and the title lists those they share.

Decisions:
- The region of a job: `--region`, else the region cdk.json gives the fine-tuning the job belongs to
  (its name), else the region in its ARN, else the credential chain's. Jobs in several regions can be
  compared in one run.
- matplotlib is imported inside `plot()` and draws on an Agg canvas without pyplot: no display, no
  global figure state, and nothing the Lambda package imports ever loads it.
- Tokens billed: GetModelCustomizationJob reports no token count (botocore's service model, 2026-08),
  so the summary says "unknown" rather than guess.
- A job whose metrics are missing or malformed is reported (FILE:LINE) and no PNG is written: a plot
  that silently lacks one trial would mislead the comparison. Exit 1.
- Steps and epochs are whole numbers, so the axes tick whole numbers only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from finetune.aws import endpoints
from finetune.aws.errors import error_code, is_not_found
from finetune.cli.aws_access import aws_client, usage_error_for
from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError, find_fine_tuning, project_input
from finetune.core import metrics
from finetune.core import names as identity

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from finetune.core.config import AppConfig

DEFAULT_OUTPUT = Path("loss.png")
COMPLETED = "Completed"


class MetricsMissing(Exception):  # noqa: N818 (an outcome reported to the user)
    """The job has not written the metrics file (yet)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="summarize and plot the training and validation loss of customization jobs",
        usage="%(prog)s JOB | FILE | FOLDER [...] [--output FILE.png]\n"
        "       %(prog)s ENV FINE_TUNING [--output FILE.png]",
        description="Reads the metrics CSVs of customization jobs (from each job's output location, from "
        "local files or folders, or of every Completed job of a fine-tuning of cdk.json), prints final "
        "and best losses, and plots loss per step (training) and per epoch (validation), jobs overlaid "
        "and labelled by the hyperparameters that differ. Exit 0; 1 when metrics are missing or "
        "malformed; 2 for usage errors (unknown job, file or fine-tuning, no credentials or region).",
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="a job name or ARN, a metrics CSV, a folder holding them, or ENV FINE_TUNING",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"the PNG to write (default: {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--endpoint-url", default=None, help="a Bedrock/S3-compatible endpoint (e.g. moto)")
    parser.add_argument(
        "--region",
        default=None,
        help="the AWS region of the jobs (default: their fine-tuning's in cdk.json, else the ARN's, else "
        "the credential chain's)",
    )
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.set_defaults(handler=run)


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """What the sources gave: metrics in the order given, problems, and notes for the reader."""

    jobs: list[metrics.JobMetrics] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Project:
    """cdk.json, read once and only when a source needs it; None without a cdk.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._config: AppConfig | None = None
        self._read = False

    def config(self) -> AppConfig | None:
        if not self._read:
            from finetune.core.project import load_config

            self._read = True
            if (self.root / "cdk.json").is_file():
                self._config = project_input(load_config, self.root)
        return self._config


def is_job_reference(source: str) -> bool:
    """A job name or ARN, as opposed to a local path (which must then exist)."""
    if source.startswith("arn:"):
        return True
    if Path(source).exists():
        return False
    if source.lower().endswith(".csv") or "/" in source or "\\" in source:
        raise UsageError(
            f"{source}: no such file or folder (give a metrics CSV, a folder holding them, a job name or ARN)"
        )
    return True


def fine_tuning_form(sources: list[str], project: Project) -> tuple[str, str] | None:
    """(environment, fine-tuning) when the sources are exactly that pair of cdk.json's names."""
    if len(sources) != 2 or not all(is_job_reference(source) for source in sources):
        return None
    config = project.config()
    if config is None or sources[0] not in {item.name for item in config.environments}:
        return None
    return sources[0], sources[1]


def region_of(job: str, region: str | None, project: Project) -> str | None:
    """The region to look the job up in (see the module's decisions)."""
    if region:
        return region
    config = project.config()
    for fine_tuning in config.fine_tunings if config is not None else ():
        if identity.owns_job(fine_tuning.environment.name, fine_tuning.name, job):
            return fine_tuning.region
    parts = job.split(":")
    if job.startswith("arn:") and len(parts) > 3 and parts[3]:
        return parts[3]
    return None


class Remote:
    """Bedrock and S3 clients per region, created when first needed."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        self.clients: dict[str | None, tuple[Any, Any]] = {}

    def __call__(self, region: str | None) -> tuple[Any, Any]:
        if region not in self.clients:
            self.clients[region] = (
                aws_client("bedrock", endpoint_url=self.endpoint_url, region=region),
                aws_client("s3", endpoint_url=self.endpoint_url, region=region),
            )
        return self.clients[region]


def load_job(remote: Remote, identifier: str, region: str | None, loaded: Loaded) -> None:
    try:
        bedrock, s3 = remote(region)
        job = find_job(bedrock, identifier)
    except NoRegionError as error:
        raise UsageError(
            f"no AWS region for job {identifier}: it is no job of a fine-tuning in cdk.json; pass --region "
            "or set AWS_REGION"
        ) from error
    try:
        loaded.jobs.append(load_metrics(s3, job))
    except (metrics.MetricsError, MetricsMissing) as error:
        loaded.problems.append(str(error))


def load_fine_tuning(
    remote: Remote,
    environment: str,
    fine_tuning: str,
    args: argparse.Namespace,
    project: Project,
    loaded: Loaded,
) -> None:
    """Every Completed job of the fine-tuning, oldest first; the others are named in a note."""
    config = project.config()
    assert config is not None
    region = args.region or find_fine_tuning(config, environment, fine_tuning).region
    bedrock, _s3 = remote(region)
    summaries = [
        summary
        for summary in endpoints.pages(
            bedrock.list_model_customization_jobs,
            "modelCustomizationJobSummaries",
            nameContains=identity.job_name_prefix(environment, fine_tuning),
        )
        if identity.owns_job(environment, fine_tuning, str(summary.get("jobName", "")))
    ]
    summaries.sort(key=lambda item: _utc(item.get("creationTime")))
    completed = [str(item["jobName"]) for item in summaries if item.get("status") == COMPLETED]
    others = [
        f"{item['jobName']} ({item.get('status', '?')})"
        for item in summaries
        if item.get("status") != COMPLETED
    ]
    label = f"{environment}/{fine_tuning}"
    if not completed:
        found = f"its jobs: {', '.join(others)}" if others else "it has no customization job there"
        loaded.problems.append(f"{label}: no Completed job in {region}, so no metrics yet ({found})")
        return
    loaded.notes.append(
        f"{label} in {region}: {len(completed)} Completed job(s) compared"
        + (f"; without metrics until they complete: {', '.join(others)}" if others else "")
    )
    for name in completed:
        load_job(remote, name, region, loaded)


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_local(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise metrics.MetricsError(f"{path}:1: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from error


def load_local_job(training: Path, validation: Path | None, loaded: Loaded) -> None:
    try:
        rows = metrics.parse_training(read_local(training), str(training))
        checked = metrics.parse_validation(read_local(validation), str(validation)) if validation else None
    except metrics.MetricsError as error:
        loaded.problems.append(str(error))
        return
    loaded.jobs.append(metrics.JobMetrics(metrics.local_job_name(training), rows, checked))


def load_local(paths: list[Path], loaded: Loaded) -> None:
    """Local files and folders, in the order given (a validation file joins the training file before it)."""
    jobs: list[tuple[Path, Path | None]] = []
    alone: int | None = None  # the index in `jobs` of a training file given as a file
    for path in paths:
        if path.is_dir():
            found = metrics.local_job_files(path)
            if not found:
                loaded.problems.append(
                    f"{path}: no {metrics.TRAINING_FILE_NAME} in this folder or below (Bedrock writes it "
                    f"under <output>/model-customization-job-<id>/{metrics.TRAINING_FILE})"
                )
            jobs.extend(found)
            alone = None
            continue
        try:
            column = metrics.loss_column(read_local(path))
        except metrics.MetricsError as error:
            loaded.problems.append(str(error))
            continue
        if column == metrics.VALIDATION_LOSS:
            if alone is None:
                raise UsageError(
                    f"{path}: validation metrics, but no training metrics file was given right before it "
                    f"(give {metrics.TRAINING_FILE_NAME} first, then its {metrics.VALIDATION_FILE_NAME})"
                )
            jobs[alone] = (jobs[alone][0], path)
            alone = None
        else:  # training metrics (parse_training names the header's problem otherwise)
            jobs.append((path, metrics.validation_file_of(path)))
            alone = len(jobs) - 1
    for training, validation in jobs:
        load_local_job(training, validation, loaded)


# --------------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.output.suffix.lower() != ".png":
        raise UsageError(f"--output {args.output}: expected a file name ending in .png")
    project = Project(args.project)
    remote = Remote(args.endpoint_url)
    loaded = Loaded()
    try:
        pair = fine_tuning_form(args.sources, project)
        if pair is not None:
            load_fine_tuning(remote, *pair, args, project, loaded)
        else:
            local: list[Path] = []
            for source in args.sources:
                if is_job_reference(source):
                    load_local(local, loaded)
                    local = []
                    load_job(remote, source, region_of(source, args.region, project), loaded)
                else:
                    local.append(Path(source))
            load_local(local, loaded)
    except (BotoCoreError, ClientError) as error:
        raise usage_error_for(error) from error
    for note in loaded.notes:
        print(note)
    for item in loaded.jobs:
        for line in metrics.summarize(item).lines():
            print(line)
    if loaded.problems:
        for problem in loaded.problems:
            print(f"error: {problem}", file=sys.stderr)
        count = len(loaded.problems)
        print(f"no plot written: metrics of {count} source(s) are missing or malformed", file=sys.stderr)
        return EXIT_INVALID
    plot(loaded.jobs, args.output)
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
        if not is_not_found(error) and error_code(error) != "ValidationException":
            raise
    if identifier.startswith("arn:"):
        for summary in endpoints.pages(
            bedrock.list_model_customization_jobs, "modelCustomizationJobSummaries"
        ):
            if summary.get("jobArn") == identifier:
                found: Mapping[str, Any] = bedrock.get_model_customization_job(
                    jobIdentifier=summary["jobName"]
                )
                return found
    region = bedrock.meta.region_name
    raise UsageError(
        f"no customization job {identifier!r} in this account and region {region} (give a job name or ARN; "
        "--region chooses the region)"
    )


def _read(s3: Any, bucket: str, key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if is_not_found(error):
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
    hyperparameters = job.get("hyperParameters")
    return metrics.JobMetrics(
        job_name=name,
        training=training,
        validation=validation,
        tokens_billed=None,
        hyperparameters={str(key): str(value) for key, value in hyperparameters.items()}
        if isinstance(hyperparameters, Mapping)
        else None,
    )


def plot(jobs: list[metrics.JobMetrics], output: Path) -> Figure:
    """One PNG: training loss per step (left) and validation loss per epoch (right), jobs overlaid,
    labelled by the hyperparameters that differ; whole-number ticks on both x axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    comparison = metrics.compare(jobs)
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    training_axes, validation_axes = figure.subplots(1, 2)
    draw_losses(training_axes, validation_axes, jobs, comparison.labels)
    if comparison.shared:
        figure.suptitle(f"Same in every job: {comparison.shared}", fontsize="medium")
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png", dpi=100)
    return figure


def draw_losses(
    training_axes: Axes, validation_axes: Axes, jobs: Sequence[metrics.JobMetrics], labels: Sequence[str]
) -> None:
    """Training loss per step on `training_axes`, validation loss per epoch on `validation_axes`, one
    line per job labelled `labels[i]` (the same colour on both); whole-number ticks on both x axes."""
    from matplotlib.ticker import MaxNLocator

    any_validation = False
    for job, label in zip(jobs, labels, strict=True):
        rows = sorted(job.training, key=lambda row: (row.step, row.epoch))
        (line,) = training_axes.plot([row.step for row in rows], [row.loss for row in rows], label=label)
        if job.validation:
            any_validation = True
            points = sorted(job.validation, key=lambda row: (row.epoch, row.step))
            validation_axes.plot(
                [row.epoch for row in points],
                [row.loss for row in points],
                marker="o",
                color=line.get_color(),
                label=label,
            )
    training_axes.set(title="Training loss per step", xlabel="step", ylabel="training loss")
    training_axes.grid(alpha=0.3)
    if jobs:
        training_axes.legend(fontsize="small")
    validation_axes.set(title="Validation loss per epoch", xlabel="epoch", ylabel="validation loss")
    validation_axes.grid(alpha=0.3)
    for axes in (training_axes, validation_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if any_validation:
        validation_axes.legend(fontsize="small")
    else:
        validation_axes.text(
            0.5, 0.5, "no validation metrics", ha="center", va="center", transform=validation_axes.transAxes
        )
