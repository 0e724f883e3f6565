"""`python -m finetune compare ENV FINE_TUNING`: the trials of a gated fine-tuning side by side.

One row per trial (the fine-tuning's own configuration, "main", first; then its candidates in the
order of cdk.json): base model, the hyperparameters that differ between the trials (those they
share in a line above the table), training cost, final training and validation loss, each
evaluation metric's score, serving cost per 30 days, the gate's verdict and which trial serves.
`--output FILE.png` draws the trials' loss curves overlaid (as `report` draws them) and their
scores side by side (grouped bars, one group per metric, one bar per trial).

Where each column comes from:
- model, hyperparameters, costs: the plan synth makes of cdk.json (`finetune.core.project.load_plans`);
- losses: each trial's customization job and the metrics files it wrote, read as `report` reads them
  (`report.load_metrics`); the main trial's job is the one recorded as deployed (an upload or a retry
  replaces synth's), a candidate's the one synth names;
- scores and verdict: the trial's record `trial-<name>` in SSM (`finetune.aws.trials.TrialRecord`),
  only when it is the record of that job (a record of an earlier job is shown as not evaluated, as
  the gate treats it);
- serves: `gate-winner` in SSM.

Decisions:
- Read-only. The region is `--region`, else the fine-tuning's in cdk.json; clients and credentials
  errors as `status` and `report` have them (`finetune.cli.aws_access`).
- A job that has not completed, or whose metrics are not there, shows "-" and a note says why: the
  table is still worth reading while trials run. Metrics that are malformed are an error (FILE:LINE)
  and no PNG is written, as in `report`: a plot that silently lacks a trial would mislead. Exit 1.
- A fine-tuning without `evaluation` has no trials to compare: a usage error (exit 2) that says so
  (`report ENV FINE_TUNING` compares its jobs' losses).
- The winner's row says "serves" only when the fine-tuning serves (`serving.mode` is not none);
  otherwise "winner", and a note says nothing is served.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from finetune.aws import jobs, parameters
from finetune.aws.errors import is_not_found
from finetune.aws.trials import FAILED, PASSED, TrialRecord
from finetune.cli.aws_access import aws_client, usage_error_for
from finetune.cli.commands import report
from finetune.cli.commands.models import format_table
from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError, project_input
from finetune.core import metrics, names
from finetune.core.evaluation import LOWER_IS_BETTER, EvaluationSettings, Scores, Verdict
from finetune.core.plan import FineTuningPlan

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NONE = "-"
COMPLETED = "Completed"
BUILTIN = "Builtin."


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare the trials of a fine-tuning's evaluation gate: losses, scores, costs, verdicts",
        description="One table, one row per trial of the fine-tuning's evaluation gate (main, then the "
        "candidates): model, hyperparameters that differ, training cost, final training and validation "
        "loss, each evaluation score, serving cost per 30 days, gate verdict and which trial serves. "
        "--output draws the loss curves overlaid and the scores side by side. Read-only. Exit 0; 1 when "
        "a trial's metrics are malformed; 2 for usage errors (unknown fine-tuning, no evaluation "
        "configured, no credentials or region).",
    )
    parser.add_argument("environment", metavar="ENV", help="an environment of cdk.json, e.g. dev")
    parser.add_argument(
        "fine_tuning", metavar="FINE_TUNING", help="a fine-tuning of cdk.json with an evaluation gate"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="also write this PNG (loss curves and scores)"
    )
    parser.add_argument(
        "--endpoint-url", default=None, help="another endpoint for every call (e.g. moto's server)"
    )
    parser.add_argument(
        "--region", default=None, help="the region to read (default: the fine-tuning's in cdk.json)"
    )
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.set_defaults(handler=run)


# --------------------------------------------------------------------------------------------------
# Finding the fine-tuning
# --------------------------------------------------------------------------------------------------


def find_plan(plans: Sequence[FineTuningPlan], environment: str, fine_tuning: str) -> FineTuningPlan:
    """The plan of ENV FINE_TUNING; a UsageError naming the known ones, or saying it has no gate."""
    environments = list(dict.fromkeys(plan.config.environment.name for plan in plans))
    if environment not in environments:
        raise UsageError(f"no environment {environment!r} in cdk.json; known: {', '.join(environments)}")
    of_environment = [plan for plan in plans if plan.config.environment.name == environment]
    found = next((plan for plan in of_environment if plan.config.name == fine_tuning), None)
    if found is None:
        known = ", ".join(plan.config.name for plan in of_environment)
        raise UsageError(f"no fine-tuning {fine_tuning!r} in environment {environment!r}; known: {known}")
    if found.evaluation is None:
        gated = [plan.config.name for plan in of_environment if plan.evaluation is not None]
        hint = f"; with one in {environment}: {', '.join(gated)}" if gated else ""
        raise UsageError(
            f"fine-tuning {fine_tuning!r} of environment {environment!r} has no evaluation configured "
            f"(fine_tunings.{fine_tuning}.evaluation): compare needs an evaluation gate to compare trials"
            f"{hint}; `report {environment} {fine_tuning}` compares its jobs' losses"
        )
    return found


# --------------------------------------------------------------------------------------------------
# Collecting
# --------------------------------------------------------------------------------------------------


@dataclass
class Trial:
    """One trial as the table shows it."""

    plan: FineTuningPlan
    job_name: str
    record: TrialRecord | None = None
    metrics: metrics.JobMetrics | None = None

    @property
    def name(self) -> str:
        return self.plan.config.trial_name

    @property
    def scores(self) -> Scores | None:
        record = self.record
        return Scores.from_json(record.scores) if record is not None and record.scores else None


@dataclass
class Winner:
    """`gate-winner`: the trial named (None: none passed), or not named yet (`named` False)."""

    named: bool
    trial: str | None = None
    reason: str | None = None


@dataclass
class Comparison:
    plan: FineTuningPlan
    region: str
    trials: list[Trial]
    winner: Winner
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def settings(self) -> EvaluationSettings:
        assert self.plan.evaluation is not None
        return self.plan.evaluation.settings


def collect(plan: FineTuningPlan, region: str, bedrock: Any, s3: Any, ssm: Any) -> Comparison:
    environment, fine_tuning = plan.config.environment.name, plan.config.name
    deployed = jobs.read_deployed_job(ssm, environment, fine_tuning)
    trials: list[Trial] = []
    notes: list[str] = []
    problems: list[str] = []
    for trial_plan in plan.trials:
        job_name = trial_plan.job_spec.job_name
        if trial_plan.config.trial_name == names.MAIN_TRIAL and deployed is not None:
            job_name = deployed.job_name
        trial = Trial(trial_plan, job_name)
        text = parameters.get(ssm, environment, fine_tuning, names.trial_parameter(trial.name))
        record = TrialRecord.from_json(text) if text else None
        if record is not None and record.job_name != job_name:
            notes.append(
                f"{trial.name}: the gate's record is of job {record.job_name}, not of its job {job_name}: "
                "not evaluated yet"
            )
            record = None
        trial.record = record
        _load_metrics(bedrock, s3, trial, notes, problems)
        trials.append(trial)
    return Comparison(plan, region, trials, _winner(ssm, environment, fine_tuning), notes, problems)


def _load_metrics(bedrock: Any, s3: Any, trial: Trial, notes: list[str], problems: list[str]) -> None:
    try:
        job = bedrock.get_model_customization_job(jobIdentifier=trial.job_name)
    except ClientError as error:
        if not is_not_found(error):
            raise
        notes.append(f"{trial.name}: no job {trial.job_name} in this region yet: no losses")
        return
    status = str(job.get("status", "?"))
    if status != COMPLETED:
        notes.append(f"{trial.name}: job {trial.job_name} is {status}: its metrics come when it completes")
        return
    try:
        trial.metrics = report.load_metrics(s3, job)
    except report.MetricsMissing as error:
        notes.append(f"{trial.name}: {error}")
    except (metrics.MetricsError, ValueError) as error:
        problems.append(f"{trial.name}: {error}")


def _winner(ssm: Any, environment: str, fine_tuning: str) -> Winner:
    text = parameters.get(ssm, environment, fine_tuning, names.WINNER_PARAMETER)
    if text is None:
        return Winner(named=False)
    try:
        value = json.loads(text)
    except ValueError:
        return Winner(named=False, reason=f"{names.WINNER_PARAMETER} is not JSON: {text[:80]!r}")
    if not isinstance(value, Mapping):
        return Winner(named=False, reason=f"{names.WINNER_PARAMETER} is not a JSON object")
    trial = value.get("trial")
    return Winner(named=True, trial=str(trial) if trial else None, reason=value.get("reason"))


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def metric_label(metric: str) -> str:
    """`Builtin.Correctness` -> `Correctness`; lower-is-better metrics say so."""
    short = metric.removeprefix(BUILTIN)
    return f"{short} (lower better)" if metric in LOWER_IS_BETTER else short


def gate_text(settings: EvaluationSettings) -> str:
    gate = settings.gate
    rules = [f"{metric_label(metric)} >= {value:.2f}" for metric, value in gate.minimums.items()]
    rules += [f"{metric_label(metric)} <= {value:.2f}" for metric, value in gate.maximums.items()]
    if gate.beat_base:
        rules.append("at least the base model's scores")
    return ", ".join(rules)


def hyperparameter_split(trials: Sequence[Trial]) -> tuple[list[str], list[str]]:
    """(keys whose values differ between the trials, keys every trial sets to the same value)."""
    values = [trial.plan.hyperparameters for trial in trials]
    keys = sorted({key for each in values for key in each})
    differing = [key for key in keys if len({each.get(key) for each in values}) > 1]
    return differing, [key for key in keys if key not in differing]


def verdict_text(record: TrialRecord | None) -> str:
    if record is None:
        return "not started"
    if record.state == PASSED:
        return "passed"
    if record.state == FAILED:
        misses = Verdict.from_json(record.verdict).misses if record.verdict else ()
        first = misses[0] if misses else record.reason or "no reason recorded"
        return f"failed: {first}"
    return record.state


def _loss(point: metrics.LossPoint | None) -> str:
    return f"{point.loss:.4f}" if point is not None else NONE


def render(comparison: Comparison) -> list[str]:
    plan, settings = comparison.plan, comparison.settings
    config = plan.config
    trials = comparison.trials
    serves = config.serving.mode != "none"
    lines = [
        f"{config.environment.name}/{config.name} ({comparison.region}): {len(trials)} trial(s); "
        f"gate: {gate_text(settings)}"
    ]
    differing, shared = hyperparameter_split(trials)
    if shared:
        lines.append(
            f"same in every trial: {metrics.describe_hyperparameters(trials[0].plan.hyperparameters, shared)}"
        )
    header = (
        "TRIAL",
        "MODEL",
        "HYPERPARAMETERS",
        "TRAINING",
        "TRAIN LOSS",
        "VAL LOSS",
        *(metric_label(metric).upper() for metric in settings.metrics),
        "SERVING/30D",
        "GATE",
        "SERVES",
    )
    rows = []
    for trial in trials:
        summary = metrics.summarize(trial.metrics) if trial.metrics is not None else None
        scores = trial.scores
        score_cells = []
        for metric in settings.metrics:
            value = scores.values.get(metric) if scores is not None else None
            score_cells.append(f"{value:.4f}" if value is not None else NONE)
        won = comparison.winner.trial == trial.name
        rows.append(
            (
                trial.name,
                trial.plan.config.base_model,
                metrics.describe_hyperparameters(trial.plan.hyperparameters, differing) or NONE,
                trial.plan.cost.training.render(),
                _loss(summary.final_training if summary else None),
                _loss(summary.final_validation if summary else None),
                *score_cells,
                trial.plan.cost.serving_per_30_days.render(),
                verdict_text(trial.record),
                ("serves" if serves else "winner") if won else "",
            )
        )
    lines += format_table(header, rows)
    notes = list(comparison.notes)
    winner = comparison.winner
    if winner.named and winner.trial is None:
        notes.append(f"the gate named no winner: {winner.reason or 'no trial passed the evaluation gate'}")
    elif winner.named and not serves:
        notes.append(f"serving mode is none: the winner {winner.trial} is not served")
    elif not winner.named:
        undecided = [t.name for t in trials if t.record is None or t.record.state not in (PASSED, FAILED)]
        why = f" ({winner.reason})" if winner.reason else ""
        notes.append(
            f"no winner yet{why}: the gate names one when every trial is decided"
            + (f" (undecided: {', '.join(undecided)})" if undecided else "")
        )
    if notes:
        lines.append("")
        lines += [f"note: {note}" for note in notes]
    return lines


# --------------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------------


def plot(comparison: Comparison, output: Path) -> Figure:
    """One PNG: the trials' training and validation losses overlaid (as `report` draws them) and,
    beside them, the evaluation scores as grouped bars (one group per metric, one bar per trial)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(18, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    training_axes, validation_axes, score_axes = figure.subplots(1, 3)
    measured = [trial for trial in comparison.trials if trial.metrics is not None]
    report.draw_losses(
        training_axes,
        validation_axes,
        [trial.metrics for trial in measured if trial.metrics is not None],
        [trial.name for trial in measured],
    )
    if not measured:
        training_axes.text(
            0.5, 0.5, "no training metrics yet", ha="center", va="center", transform=training_axes.transAxes
        )
    settings = comparison.settings
    count = len(comparison.trials)
    width = 0.8 / max(count, 1)
    any_score = False
    for index, trial in enumerate(comparison.trials):
        scores = trial.scores
        points = [
            (position, value)
            for position, metric in enumerate(settings.metrics)
            if scores is not None and (value := scores.values.get(metric)) is not None
        ]
        if not points:
            continue
        any_score = True
        offset = (index - (count - 1) / 2) * width
        score_axes.bar(
            [position + offset for position, _ in points],
            [value for _, value in points],
            width=width,
            label=trial.name,
        )
    score_axes.set_xticks(range(len(settings.metrics)))
    score_axes.set_xticklabels([metric_label(metric) for metric in settings.metrics])
    score_axes.set(title="Evaluation scores", ylabel="score (0..1)", ylim=(0, 1.05))
    score_axes.grid(alpha=0.3, axis="y")
    if any_score:
        score_axes.legend(fontsize="small")
    else:
        score_axes.text(0.5, 0.5, "no scores yet", ha="center", va="center", transform=score_axes.transAxes)
    _differing, shared = hyperparameter_split(comparison.trials)
    if shared:
        values = comparison.trials[0].plan.hyperparameters
        figure.suptitle(
            f"Same in every trial: {metrics.describe_hyperparameters(values, shared)}", fontsize="medium"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png", dpi=100)
    return figure


# --------------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from finetune.core.project import load_plans

    if args.output is not None and args.output.suffix.lower() != ".png":
        raise UsageError(f"--output {args.output}: expected a file name ending in .png")
    plans, _warnings = project_input(lambda root: load_plans(root, check_budgets=False), args.project)
    plan = find_plan(plans, args.environment, args.fine_tuning)
    region = args.region or plan.config.region
    try:
        comparison = collect(
            plan,
            region,
            aws_client("bedrock", endpoint_url=args.endpoint_url, region=region),
            aws_client("s3", endpoint_url=args.endpoint_url, region=region),
            aws_client("ssm", endpoint_url=args.endpoint_url, region=region),
        )
    except (BotoCoreError, ClientError) as error:
        raise usage_error_for(error) from error
    for line in render(comparison):
        print(line)
    if comparison.problems:
        for problem in comparison.problems:
            print(f"error: {problem}", file=sys.stderr)
        if args.output is not None:
            count = len(comparison.problems)
            print(f"no plot written: metrics of {count} trial(s) are malformed", file=sys.stderr)
        return EXIT_INVALID
    if args.output is not None:
        plot(comparison, args.output)
        print(f"plot: {args.output}")
    return EXIT_OK
