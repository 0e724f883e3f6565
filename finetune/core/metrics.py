"""The training and validation metrics a Bedrock customization job writes, parsed and summarized.

Layout (Bedrock user guide "Analyze the results of a model customization job",
https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-analyze.html): under the job's output S3 prefix,
`model-customization-job-<job id>/training_artifacts/step_wise_training_metrics.csv` with columns
`step_number` (from 0), `epoch_number`, `training_loss`, `perplexity`, and, when a validation set
was given, `.../validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv`
with `validation_loss` instead of `training_loss`.

The same files can be read from a local folder (downloaded with `aws s3 sync`, say): `local_job_files`
finds them in that layout, or beside each other.

Parsing is strict: a missing column, a short row or a value that is not a number is an error that
names `FILE:LINE` (line numbers count from 1, the header is line 1). Extra columns are ignored, and
`perplexity` may be absent or empty. Blank lines are skipped. No plotting here: the `report` command
imports matplotlib itself, so nothing the Lambda package imports pulls it in.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TRAINING_LOSS = "training_loss"
VALIDATION_LOSS = "validation_loss"
STEP = "step_number"
EPOCH = "epoch_number"
PERPLEXITY = "perplexity"
TRAINING_FILE = "training_artifacts/step_wise_training_metrics.csv"
VALIDATION_FILE = "validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv"
TRAINING_FILE_NAME = TRAINING_FILE.rsplit("/", 1)[-1]
VALIDATION_FILE_NAME = VALIDATION_FILE.rsplit("/", 1)[-1]


class MetricsError(ValueError):
    """A metrics file is malformed; the message starts with `FILE:LINE:`."""


@dataclass(frozen=True)
class MetricRow:
    """One row of a metrics file: the loss at a step of an epoch."""

    step: int
    epoch: int
    loss: float
    perplexity: float | None = None


@dataclass(frozen=True)
class LossPoint:
    """A loss and where it was measured."""

    loss: float
    step: int
    epoch: int

    def describe(self) -> str:
        return f"{self.loss:.4f} (step {self.step}, epoch {self.epoch})"


@dataclass(frozen=True)
class JobMetrics:
    """One job's metrics as read from its output (or a local copy: `job_name` is then its path)."""

    job_name: str
    training: tuple[MetricRow, ...]
    validation: tuple[MetricRow, ...] | None = None  # None: no validation file
    tokens_billed: int | None = None  # None: the job does not report it
    hyperparameters: Mapping[str, str] | None = None  # the job's hyperParameters; None: not known


@dataclass(frozen=True)
class MetricsSummary:
    """What a person compares between jobs (hyperparameter trials)."""

    job_name: str
    steps: int
    epochs: int
    final_training: LossPoint
    best_training: LossPoint
    final_validation: LossPoint | None
    best_validation: LossPoint | None
    tokens_billed: int | None
    hyperparameters: Mapping[str, str] | None = None

    def lines(self) -> list[str]:
        lines = [f"{self.job_name}:"]
        if self.hyperparameters is not None:
            lines.append(f"  hyperparameters: {describe_hyperparameters(self.hyperparameters) or 'none'}")
        lines += [
            f"  steps: {self.steps}, epochs: {self.epochs}",
            f"  training loss: final {self.final_training.describe()}, best {self.best_training.describe()}",
        ]
        if self.final_validation is not None and self.best_validation is not None:
            lines.append(
                f"  validation loss: final {self.final_validation.describe()}, "
                f"best {self.best_validation.describe()}"
            )
        else:
            lines.append("  validation loss: none (no validation metrics)")
        tokens = f"{self.tokens_billed:,}" if self.tokens_billed is not None else "unknown"
        lines.append(f"  tokens billed: {tokens}")
        return lines


def parse_metrics(text: str, source: str, *, loss_column: str) -> tuple[MetricRow, ...]:
    """The rows of a metrics CSV; `source` names the file in errors. Raises MetricsError."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            break
    if header is None:
        raise MetricsError(f"{source}:1: empty file; expected a header with {STEP},{EPOCH},{loss_column}")
    header_line = reader.line_num
    missing = [name for name in (STEP, EPOCH, loss_column) if name not in header]
    if missing:
        raise MetricsError(
            f"{source}:{header_line}: header {','.join(header)} lacks {', '.join(missing)}; expected "
            f"{STEP},{EPOCH},{loss_column},{PERPLEXITY}"
        )
    columns = {name: header.index(name) for name in header}
    rows: list[MetricRow] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        line = reader.line_num
        if len(cells) != len(header):
            raise MetricsError(
                f"{source}:{line}: {len(cells)} fields, expected {len(header)} ({','.join(header)})"
            )
        step = _whole(cells[columns[STEP]], STEP, source, line)
        epoch = _whole(cells[columns[EPOCH]], EPOCH, source, line)
        loss = _number(cells[columns[loss_column]], loss_column, source, line)
        perplexity = None
        if PERPLEXITY in columns and cells[columns[PERPLEXITY]].strip():
            perplexity = _number(cells[columns[PERPLEXITY]], PERPLEXITY, source, line)
        rows.append(MetricRow(step=step, epoch=epoch, loss=loss, perplexity=perplexity))
    if not rows:
        raise MetricsError(f"{source}:{header_line}: no rows after the header")
    return tuple(rows)


def parse_training(text: str, source: str) -> tuple[MetricRow, ...]:
    return parse_metrics(text, source, loss_column=TRAINING_LOSS)


def parse_validation(text: str, source: str) -> tuple[MetricRow, ...]:
    return parse_metrics(text, source, loss_column=VALIDATION_LOSS)


def _whole(value: str, column: str, source: str, line: int) -> int:
    text = value.strip()
    try:
        number = int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            as_float = math.nan
        if not as_float.is_integer():
            raise MetricsError(f"{source}:{line}: {column} {value!r} is not a whole number") from None
        number = int(as_float)
    if number < 0:
        raise MetricsError(f"{source}:{line}: {column} {value!r} is negative")
    return number


def _number(value: str, column: str, source: str, line: int) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise MetricsError(f"{source}:{line}: {column} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise MetricsError(f"{source}:{line}: {column} {value!r} is not a finite number")
    return number


def _point(row: MetricRow) -> LossPoint:
    return LossPoint(loss=row.loss, step=row.step, epoch=row.epoch)


def _final_and_best(rows: Sequence[MetricRow]) -> tuple[LossPoint, LossPoint]:
    ordered = sorted(rows, key=lambda row: (row.step, row.epoch))
    best = min(ordered, key=lambda row: row.loss)  # the earliest of equal losses
    return _point(ordered[-1]), _point(best)


def summarize(metrics: JobMetrics) -> MetricsSummary:
    """Final and best losses (training; validation when present), step and epoch counts."""
    final_training, best_training = _final_and_best(metrics.training)
    final_validation = best_validation = None
    if metrics.validation:
        final_validation, best_validation = _final_and_best(metrics.validation)
    return MetricsSummary(
        job_name=metrics.job_name,
        steps=len({row.step for row in metrics.training}),
        epochs=len({row.epoch for row in metrics.training}),
        final_training=final_training,
        best_training=best_training,
        final_validation=final_validation,
        best_validation=best_validation,
        tokens_billed=metrics.tokens_billed,
        hyperparameters=metrics.hyperparameters,
    )


def describe_hyperparameters(values: Mapping[str, str], keys: Sequence[str] | None = None) -> str:
    """`epochCount=3, learningRate=1e-05`: the given keys (default: all) in key order."""
    chosen = sorted(values) if keys is None else [key for key in keys if key in values]
    return ", ".join(f"{key}={values[key]}" for key in chosen)


@dataclass(frozen=True)
class Comparison:
    """How a plot tells the jobs apart: a legend label per job, and what every job shares."""

    labels: tuple[str, ...]
    shared: str  # "batchSize=8, epochCount=2", or "" when nothing is shared (or known)


def compare(jobs: Sequence[JobMetrics]) -> Comparison:
    """Label each job by the hyperparameters that differ between the jobs whose values are known.

    A job whose hyperparameters are unknown (local files), or that differs in none of them (the same
    settings on other data), keeps its name; labels stay unique (the name is added to a repeated one).
    The keys every known job sets to the same value are the `shared` text.
    """
    known = [job.hyperparameters for job in jobs if job.hyperparameters is not None]
    keys = sorted({key for values in known for key in values})
    differing = [key for key in keys if len({values.get(key) for values in known}) > 1]
    shared = [key for key in keys if key not in differing] if len(known) > 1 else []
    labels = [
        describe_hyperparameters(job.hyperparameters, differing)
        if job.hyperparameters is not None and differing
        else job.job_name
        for job in jobs
    ]
    unique = [
        f"{label} ({job.job_name})" if labels.count(label) > 1 and label != job.job_name else label
        for label, job in zip(labels, jobs, strict=True)
    ]
    return Comparison(
        labels=tuple(unique), shared=describe_hyperparameters(known[0], shared) if shared else ""
    )


def loss_column(text: str) -> str | None:
    """Which loss a metrics CSV holds, from its header: TRAINING_LOSS, VALIDATION_LOSS or None."""
    for row in csv.reader(io.StringIO(text)):
        if any(cell.strip() for cell in row):
            header = {cell.strip() for cell in row}
            if VALIDATION_LOSS in header:
                return VALIDATION_LOSS
            if TRAINING_LOSS in header:
                return TRAINING_LOSS
            return None
    return None


def local_job_files(folder: Path) -> list[tuple[Path, Path | None]]:
    """(training file, validation file or None) of every job under `folder`, in path order.

    A job is a `step_wise_training_metrics.csv`. Its validation metrics are where Bedrock writes them
    relative to its job folder (`<job folder>/training_artifacts/...` and
    `<job folder>/validation_artifacts/.../validation_metrics.csv`), or else beside it.
    """
    return [(training, validation_file_of(training)) for training in sorted(folder.rglob(TRAINING_FILE_NAME))]


def validation_file_of(training: Path) -> Path | None:
    """The validation metrics file that belongs to a local training metrics file, if there is one."""
    candidates = [training.parent / VALIDATION_FILE_NAME]
    if training.parent.name == TRAINING_FILE.split("/", 1)[0]:
        candidates.insert(0, training.parent.parent / VALIDATION_FILE)
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def local_job_name(training: Path) -> str:
    """What names a local job: its job folder (Bedrock's layout), or the training file itself."""
    if training.name == TRAINING_FILE_NAME and training.parent.name == TRAINING_FILE.split("/", 1)[0]:
        return str(training.parent.parent)
    return str(training)


def artifact_key(output_s3_uri: str, job_arn: str, relative: str) -> tuple[str, str]:
    """(bucket, key) of a job artifact: `<output>/model-customization-job-<job id>/<relative>`.

    The job id is the last path part of the job ARN.
    """
    if not output_s3_uri.startswith("s3://"):
        raise ValueError(f"the job's output location {output_s3_uri!r} is not an s3:// URI")
    bucket, _, prefix = output_s3_uri[len("s3://") :].partition("/")
    job_id = job_arn.rsplit("/", 1)[-1]
    prefix = prefix.rstrip("/")
    folder = f"{prefix}/model-customization-job-{job_id}" if prefix else f"model-customization-job-{job_id}"
    return bucket, f"{folder}/{relative}"
