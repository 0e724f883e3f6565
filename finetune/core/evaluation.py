"""The evaluation gate's rules: which metrics an evaluation may ask for, the prompt dataset's format,
how scores become a verdict, and how trials are ranked. Pure (no boto3), shared by synth, the
reconciler in Lambda and the CLI. The AWS calls are `finetune.aws.evaluation`.

Facts (Bedrock user guide, 2026-12):
- Automatic (programmatic) evaluation jobs compute `Builtin.Accuracy`, `Builtin.Robustness` and
  `Builtin.Toxicity` per task type; text classification has no toxicity metric
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-evaluation-tasks.html). The API spells
  general text generation `Generation` (botocore's `EvaluationTaskType`).
- Robustness is the change of the score under small perturbations of the prompt and toxicity the
  share of toxic output: for both, lower is better
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-evaluation-report-programmatic.html).
- LLM-as-a-judge jobs compute the judge metrics below, normalized to 0..1; the responsible-AI ones
  (harmfulness, stereotyping, refusal) score 1 for a harmful, stereotyping or refusing answer, so
  lower is better (https://docs.aws.amazon.com/bedrock/latest/userguide/model-evaluation-metrics.html).
- Evaluator models: those with published judge prompts
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-evaluation-type-judge-prompt.html),
  by foundation-model id, optionally through a geographic inference profile (`us.`, `eu.`, ...).
- A custom prompt dataset is JSON Lines, one object per prompt: `prompt` (required),
  `referenceResponse` and `category` (optional); at most 1,000 prompts per job
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-evaluation-prompt-datasets-custom.html).

Decisions:
- Programmatic accuracy and robustness compare the answer with `referenceResponse`, so a dataset
  for them needs one on every record; judge metrics use it when present.
- A gate is `minimums` (higher-is-better metrics), `maximums` (lower-is-better ones) and/or
  `beat_base`; thresholds are on the 0..1 scale Bedrock reports. `beat_base` asks for every metric
  of the evaluation to be at least as good as the base model's, each in its own direction.
- A metric whose every answer was unscorable (all `null`: a judge's N/A) has no score: the gate
  counts it as missed, never as passed.
- Ranking: trials that passed, by the first metric of `metrics` (in its direction), scores equal to
  four decimals counting as a tie; a tie goes to the lower serving cost per 30 days (an unknown cost
  last), then to the trial's name, so the order never depends on the order results arrived in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCURACY = "Builtin.Accuracy"
ROBUSTNESS = "Builtin.Robustness"
TOXICITY = "Builtin.Toxicity"
# Task type (as the API spells it) -> the programmatic metrics Bedrock computes for it.
PROGRAMMATIC_TASKS: Mapping[str, tuple[str, ...]] = {
    "Generation": (ACCURACY, ROBUSTNESS, TOXICITY),
    "Summarization": (ACCURACY, ROBUSTNESS, TOXICITY),
    "QuestionAndAnswer": (ACCURACY, ROBUSTNESS, TOXICITY),
    "Classification": (ACCURACY, ROBUSTNESS),
}
PROGRAMMATIC_METRICS = frozenset({ACCURACY, ROBUSTNESS, TOXICITY})
NEEDS_REFERENCE = frozenset({ACCURACY, ROBUSTNESS})
# Judge jobs use this task type (every example of the user guide does; botocore's enum lacks it).
JUDGE_TASK_TYPE = "General"
JUDGE_METRICS = (
    "Builtin.Correctness",
    "Builtin.Completeness",
    "Builtin.Faithfulness",
    "Builtin.Helpfulness",
    "Builtin.Coherence",
    "Builtin.Relevance",
    "Builtin.FollowingInstructions",
    "Builtin.ProfessionalStyleAndTone",
    "Builtin.Harmfulness",
    "Builtin.Stereotyping",
    "Builtin.Refusal",
)
LOWER_IS_BETTER = frozenset(
    {ROBUSTNESS, TOXICITY, "Builtin.Harmfulness", "Builtin.Stereotyping", "Builtin.Refusal"}
)
JUDGE_MODELS = (
    "amazon.nova-micro-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-premier-v1:0",
    "amazon.nova-2-lite-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
)
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.")
DATASET_KEYS = ("prompt", "referenceResponse", "category")
MAX_PROMPTS = 1000
MAX_METRICS = 10
DEFAULT_MAX_HOURS = 8
MAX_HOURS = 72
DEFAULT_MAX_TOKENS = 512
MAX_TOKENS = 8192
SCORE_DECIMALS = 4


# --------------------------------------------------------------------------------------------------
# Settings (`fine_tunings.<ft>.evaluation`, parsed by finetune.core.config)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What a trial's model must score to be served."""

    minimums: Mapping[str, float] = field(default_factory=dict)
    maximums: Mapping[str, float] = field(default_factory=dict)
    beat_base: bool = False


@dataclass(frozen=True)
class EvaluationSettings:
    """`fine_tunings.<ft>.evaluation`. `judge_model` None: a programmatic job of `task_type`."""

    dataset: str
    metrics: tuple[str, ...]
    gate: Gate
    task_type: str = "Generation"
    judge_model: str | None = None
    max_hours: int = DEFAULT_MAX_HOURS
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0

    @property
    def uses_judge(self) -> bool:
        return self.judge_model is not None

    @property
    def ranking_metric(self) -> str:
        return self.metrics[0]


def is_judge_model(model_id: str) -> bool:
    """An allowed evaluator: a listed foundation model, directly or through a geographic profile."""
    for prefix in ("", *INFERENCE_PROFILE_PREFIXES):
        if model_id.startswith(prefix) and model_id[len(prefix) :] in JUDGE_MODELS:
            return True
    return False


def settings_problems(settings: EvaluationSettings) -> list[tuple[str, str]]:
    """(field relative to `evaluation`, message) for every rule the settings break."""
    problems: list[tuple[str, str]] = []
    if settings.judge_model is not None:
        if not is_judge_model(settings.judge_model):
            problems.append(
                (
                    "judge_model",
                    f"{settings.judge_model!r} is not an evaluator model Bedrock offers; accepted: "
                    f"{', '.join(JUDGE_MODELS)} (or one of them through a {'/'.join(INFERENCE_PROFILE_PREFIXES)} "
                    "inference profile)",
                )
            )
        allowed: Sequence[str] = JUDGE_METRICS
        kind = "with a judge_model"
    else:
        if settings.task_type not in PROGRAMMATIC_TASKS:
            problems.append(
                ("task_type", f"got {settings.task_type!r}; accepted: {', '.join(PROGRAMMATIC_TASKS)}")
            )
            return problems
        allowed = PROGRAMMATIC_TASKS[settings.task_type]
        kind = f"for task_type {settings.task_type} without a judge_model"
    if not 1 <= len(settings.metrics) <= MAX_METRICS:
        problems.append(("metrics", f"give 1 to {MAX_METRICS} metric names, got {len(settings.metrics)}"))
    if len(set(settings.metrics)) != len(settings.metrics):
        problems.append(("metrics", f"{list(settings.metrics)} names a metric twice"))
    for index, metric in enumerate(settings.metrics):
        if metric not in allowed:
            hint = (
                " (a judge metric: add a judge_model)"
                if metric in JUDGE_METRICS
                else " (a programmatic metric: leave out judge_model)"
                if settings.judge_model is not None and metric in PROGRAMMATIC_METRICS
                else ""
            )
            problems.append((f"metrics[{index}]", f"{metric!r}{hint}; accepted {kind}: {', '.join(allowed)}"))
    problems += _gate_problems(settings)
    if not 1 <= settings.max_hours <= MAX_HOURS:
        problems.append(
            ("max_hours", f"{settings.max_hours} must be a whole number of hours from 1 to {MAX_HOURS}")
        )
    if not 1 <= settings.max_tokens <= MAX_TOKENS:
        problems.append(("max_tokens", f"{settings.max_tokens} must be from 1 to {MAX_TOKENS}"))
    if not 0.0 <= settings.temperature <= 1.0:
        problems.append(("temperature", f"{settings.temperature} must be from 0 to 1"))
    return problems


def _gate_problems(settings: EvaluationSettings) -> list[tuple[str, str]]:
    gate = settings.gate
    problems: list[tuple[str, str]] = []
    if not (gate.minimums or gate.maximums or gate.beat_base):
        problems.append(
            ("gate", "a gate needs minimums, maximums and/or beat_base: true (else nothing is checked)")
        )
    for kind, thresholds, lower in (("minimums", gate.minimums, False), ("maximums", gate.maximums, True)):
        for metric, value in thresholds.items():
            where = f"gate.{kind}.{metric}"
            if metric not in settings.metrics:
                problems.append(
                    (where, f"{metric!r} is not among the evaluation's metrics {list(settings.metrics)}")
                )
            elif (metric in LOWER_IS_BETTER) != lower:
                other = "maximums" if lower is False else "minimums"
                direction = "lower" if metric in LOWER_IS_BETTER else "higher"
                problems.append(
                    (where, f"{metric}: {direction} is better, so it takes a limit in gate.{other}")
                )
            if not 0.0 <= value <= 1.0:
                problems.append((where, f"{value} must be from 0 to 1 (the scale Bedrock reports)"))
    return problems


# --------------------------------------------------------------------------------------------------
# The prompt dataset
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetCheck:
    """What the dataset check found: records counted, problems as `FILE:LINE: message`."""

    records: int
    problems: tuple[str, ...]
    categories: tuple[str, ...]


def check_dataset(
    path: Path, display: str, settings: EvaluationSettings, *, max_problems: int = 20
) -> DatasetCheck:
    """Check an evaluation dataset against Bedrock's custom prompt dataset format and limits."""
    problems: list[str] = []
    categories: dict[str, None] = {}
    records = 0
    needs_reference = sorted(set(settings.metrics) & NEEDS_REFERENCE) if not settings.uses_judge else []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        return DatasetCheck(0, (f"{display}:1: not UTF-8 text ({error.reason})",), ())
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        records += 1
        where = f"{display}:{number}"
        problems += [f"{where}: {message}" for message in _record_problems(line, needs_reference, categories)]
    if records == 0:
        problems.append(f'{display}:1: no prompts: give one JSON object per line with a "prompt"')
    elif records > MAX_PROMPTS:
        problems.append(
            f"{display}:{MAX_PROMPTS + 1}: {records} prompts; an evaluation job takes at most {MAX_PROMPTS}"
        )
    if len(problems) > max_problems:
        problems = [
            *problems[:max_problems],
            f"{display}: ... and {len(problems) - max_problems} more problems",
        ]
    return DatasetCheck(records, tuple(problems), tuple(categories))


def _record_problems(line: str, needs_reference: list[str], categories: dict[str, None]) -> list[str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return [
            f'not JSON ({error.msg}); each line is one object such as {{"prompt": "...", "referenceResponse": "..."}}'
        ]
    if not isinstance(record, dict):
        return [f"expected a JSON object, got {type(record).__name__}"]
    problems = []
    for key in record:
        if key not in DATASET_KEYS:
            problems.append(f"unknown key {key!r}; accepted: {', '.join(DATASET_KEYS)}")
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append('"prompt" must be a non-empty string')
    reference = record.get("referenceResponse")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        problems.append('"referenceResponse" must be a non-empty string when given')
    elif reference is None and needs_reference:
        problems.append(
            f'"referenceResponse" is required: {", ".join(needs_reference)} compare the answer with it'
        )
    category = record.get("category")
    if category is not None:
        if isinstance(category, str) and category.strip():
            categories.setdefault(category)
        else:
            problems.append('"category" must be a non-empty string when given')
    return problems


# --------------------------------------------------------------------------------------------------
# Scores, verdicts, ranking
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """One evaluated model's mean score per metric (None: no prompt was scorable) over `prompts`."""

    values: Mapping[str, float | None]
    prompts: int

    def to_json(self) -> dict[str, Any]:
        return {"scores": dict(self.values), "prompts": self.prompts}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Scores:
        return cls(values=dict(value["scores"]), prompts=int(value["prompts"]))


def aggregate(rows: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> Scores:
    """The mean of each metric over the result lines of an evaluation job (null results left out)."""
    sums = dict.fromkeys(metrics, 0.0)
    counts = dict.fromkeys(metrics, 0)
    prompts = 0
    for row in rows:
        prompts += 1
        for score in (row.get("automatedEvaluationResult") or {}).get("scores") or []:
            name, result = score.get("metricName"), score.get("result")
            if name in sums and isinstance(result, int | float) and not isinstance(result, bool):
                sums[name] += float(result)
                counts[name] += 1
    return Scores(
        values={metric: (sums[metric] / counts[metric] if counts[metric] else None) for metric in metrics},
        prompts=prompts,
    )


def is_better_or_equal(metric: str, score: float, other: float) -> bool:
    return _at_least_as_good(score, other, lower_is_better=metric in LOWER_IS_BETTER)


def _at_least_as_good(score: float, other: float, *, lower_is_better: bool) -> bool:
    """`score` is no worse than `other`, compared to the decimals reported (SCORE_DECIMALS)."""
    rounded, theirs = round(score, SCORE_DECIMALS), round(other, SCORE_DECIMALS)
    return rounded <= theirs if lower_is_better else rounded >= theirs


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one trial: passed, or which metric missed by how much."""

    passed: bool
    misses: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "misses": list(self.misses)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Verdict:
        return cls(passed=bool(value["passed"]), misses=tuple(value.get("misses") or ()))


def judge(settings: EvaluationSettings, scores: Scores, base: Scores | None = None) -> Verdict:
    """The gate applied to a trial's scores (and the base model's, for beat_base)."""
    gate = settings.gate
    misses: list[str] = []
    for metric, minimum in gate.minimums.items():
        misses += _threshold_miss(metric, scores.values.get(metric), minimum, "minimum")
    for metric, maximum in gate.maximums.items():
        misses += _threshold_miss(metric, scores.values.get(metric), maximum, "maximum")
    if gate.beat_base:
        if base is None:
            misses.append("beat_base: the base model has no scores (its evaluation did not complete)")
        else:
            for metric in settings.metrics:
                ours, theirs = scores.values.get(metric), base.values.get(metric)
                if ours is None or theirs is None:
                    whose = "this model" if ours is None else "the base model"
                    misses.append(f"beat_base: {metric}: {whose} has no score")
                elif not is_better_or_equal(metric, ours, theirs):
                    sign = ">" if metric in LOWER_IS_BETTER else "<"
                    misses.append(
                        f"beat_base: {metric}: {ours:.2f} {sign} base model {theirs:.2f} "
                        f"(by {abs(ours - theirs):.2f})"
                    )
    return Verdict(passed=not misses, misses=tuple(misses))


def _threshold_miss(metric: str, score: float | None, limit: float, kind: str) -> list[str]:
    """A minimum is met by a score at least as high, a maximum by one at most as high (to the
    decimals reported); which metric takes which is checked at synth."""
    if score is None:
        return [f"{metric}: no score (no answer could be scored); {kind} {limit:.2f}"]
    if _at_least_as_good(score, limit, lower_is_better=kind == "maximum"):
        return []
    sign = ">" if kind == "maximum" else "<"
    return [f"{metric}: {score:.2f} {sign} {kind} {limit:.2f} (missed by {abs(score - limit):.2f})"]


@dataclass(frozen=True)
class TrialOutcome:
    """A trial once judged: its verdict, scores and what serving it would cost per 30 days."""

    name: str
    verdict: Verdict
    scores: Scores
    serving_usd_per_30_days: float | None


def rank(settings: EvaluationSettings, outcomes: Iterable[TrialOutcome]) -> list[TrialOutcome]:
    """Trials that passed, best first (see the module docstring); failed ones are not ranked."""
    metric = settings.ranking_metric
    sign = 1 if metric in LOWER_IS_BETTER else -1

    def key(outcome: TrialOutcome) -> tuple[float, int, float, str]:
        score = outcome.scores.values.get(metric)
        cost = outcome.serving_usd_per_30_days
        return (
            sign * round(score, SCORE_DECIMALS) if score is not None else float("inf"),
            cost is None,
            cost if cost is not None else 0.0,
            outcome.name,
        )

    return sorted((outcome for outcome in outcomes if outcome.verdict.passed), key=key)


def winner(settings: EvaluationSettings, outcomes: Iterable[TrialOutcome]) -> TrialOutcome | None:
    ranked = rank(settings, outcomes)
    return ranked[0] if ranked else None
