"""From a parsed configuration to one plan per stack: everything synth decides before building anything.

`plan_app(config)` checks every fine-tuning against the model catalog, validates every training and
validation file against its model's format and limits (each file read once, however many
environments use it), computes the data digests, resolves the hyperparameters and estimates the
cost. Every problem of every stack is collected and raised together as one `ConfigError`, so a
user fixes them all in one round, and no construct is built from a configuration with an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from finetune.core import catalog, dataset
from finetune.core import checks as catalog_checks
from finetune.core.config import (
    AppConfig,
    ConfigError,
    DataFile,
    EnvironmentConfig,
    FieldError,
    FineTuningConfig,
)
from finetune.core.contracts import EvaluationGate, GateTrial, TrainingBudget
from finetune.core.cost import (
    CostEstimate,
    DataSize,
    TrialCost,
    budget_problems,
    estimate_cost,
    evaluation_budget_problems,
    training_budget,
    trial_cost,
)
from finetune.core.digest import FileDigest, file_digest
from finetune.core.evaluation import DatasetCheck, EvaluationSettings, check_dataset
from finetune.core.formats import CHARS_PER_TOKEN, TOKEN_ESTIMATE_METHOD, DatasetLimits, batch_size_of
from finetune.core.names import MAIN_TRIAL, JobSpec
from finetune.core.prices import PT_FIELDS, format_usd


@dataclass(frozen=True)
class DataPlan:
    """A data file as synth saw it: its digest and what the validator counted."""

    file: DataFile
    digest: FileDigest
    records: int
    estimated_tokens: int


@dataclass(frozen=True)
class EvaluationPlan:
    """The evaluation gate as synth checked it: its settings and its prompt dataset."""

    settings: EvaluationSettings
    data: DataPlan


@dataclass(frozen=True)
class FineTuningPlan:
    """A stack's parameter: the configuration plus what synth resolved from it.

    `candidates`: one plan per candidate trial (each a plan of `config.trial(...)`, trained on the
    same files); `evaluation`: the gate every trial's model must pass before it is served.
    """

    config: FineTuningConfig
    training: DataPlan
    validation: DataPlan | None
    hyperparameters: Mapping[str, str]  # every value as the string Bedrock expects
    cost: CostEstimate
    candidates: tuple[FineTuningPlan, ...] = ()
    evaluation: EvaluationPlan | None = None

    @property
    def trials(self) -> tuple[FineTuningPlan, ...]:
        """This plan (the main trial) first, then the candidates'."""
        return (self, *self.candidates)

    def evaluation_gate(
        self,
        *,
        role_arn: str,
        bucket: str,
        dataset_key: str,
        kms_key_arn: str | None,
        job_names: Mapping[str, str],
    ) -> EvaluationGate | None:
        """The gate as the serving function reads it (None without an evaluation); `job_names`:
        each trial's job, by trial name (a candidate's as its resource answers it)."""
        if self.evaluation is None:
            return None
        region = self.config.region

        def trial(plan: FineTuningPlan) -> GateTrial:
            model = catalog.find_model(plan.config.base_model)
            return GateTrial(
                name=plan.config.trial_name,
                job_name=job_names[plan.config.trial_name],
                base_model=plan.config.base_model,
                serving_usd_per_30_days=plan.cost.serving_per_30_days.value,
                on_demand=model is not None and region in model.serving.on_demand_regions,
            )

        return EvaluationGate(
            settings=self.evaluation.settings,
            trials=tuple(trial(plan) for plan in self.trials),
            role_arn=role_arn,
            bucket=bucket,
            dataset_key=dataset_key,
            kms_key_arn=kms_key_arn,
        )

    @property
    def evaluation_cost(self) -> TrialCost | None:
        """What evaluating this trial's model costs, at most (None: no evaluation configured)."""
        if self.evaluation is None:
            return None
        data = self.evaluation.data
        return trial_cost(self.cost, self.evaluation.settings, data.records, data.estimated_tokens)

    @property
    def cost_summary(self) -> str:
        return self.cost.summary()

    @property
    def training_budget(self) -> TrainingBudget | None:
        """What the job trigger checks the staged data against (None: no training budget)."""
        return training_budget(self.config.environment, self.cost)

    @property
    def job_spec(self) -> JobSpec:
        """What the customization job of this stack trains; its digest names the job."""
        config = self.config
        return JobSpec(
            environment=config.environment.name,
            fine_tuning=config.name,
            base_model=config.base_model,
            customization_type=config.customization_type,
            hyperparameters=self.hyperparameters,
            training_sha256=self.training.digest.sha256,
            validation_sha256=self.validation.digest.sha256 if self.validation is not None else None,
            teacher_model=config.teacher_model,
        )

    def describe(self) -> dict[str, Any]:
        """The resolved configuration, as recorded in the template for reviewers."""
        config = self.config
        described: dict[str, Any] = {
            "environment": config.environment.name,
            "fineTuning": config.name,
            "baseModel": config.base_model,
            "customizationType": config.customization_type,
            "region": config.region,
            "hyperparameters": dict(self.hyperparameters),
            "jobName": self.job_spec.job_name,
            "trainingData": _describe_data(self.training),
            "serving": {
                "mode": config.serving.mode,
                "modelUnits": config.serving.model_units,
                "commitment": config.serving.commitment,
                "idleAlarmHours": config.serving.idle_alarm_hours,
            },
            "cost": self.cost.lines(),
        }
        budget = config.environment.budget.limits
        if budget:
            # Amounts as text ("$24.00", "unknown"): template metadata takes no floats (cfn-lint E4002).
            described["budget"] = {
                "environment": config.environment.name,
                "limits": {key: format_usd(value) for key, value in budget.items()},
                "estimates": {
                    "training": self.cost.training.render(),
                    "servingPer30Days": self.cost.serving_per_30_days.render(),
                    "servingAndStoragePer30Days": self.cost.per_30_days.render(),
                    **(
                        {
                            "evaluationPerTrial": {
                                t.config.trial_name: c.total.render()
                                for t in self.trials
                                if (c := t.evaluation_cost)
                            }
                        }
                        if self.evaluation is not None
                        else {}
                    ),
                },
            }
        if self.evaluation is not None:
            settings = self.evaluation.settings
            described["evaluation"] = {
                "dataset": _describe_data(self.evaluation.data),
                "judgeModel": settings.judge_model or "none (programmatic metrics)",
                "taskType": settings.task_type if settings.judge_model is None else "General",
                "metrics": list(settings.metrics),
                "gate": {
                    "minimums": {metric: f"{value:g}" for metric, value in settings.gate.minimums.items()},
                    "maximums": {metric: f"{value:g}" for metric, value in settings.gate.maximums.items()},
                    "beatBase": settings.gate.beat_base,
                },
                "maxHours": settings.max_hours,
                "costPerTrial": {
                    trial.config.trial_name: trial.evaluation_cost.lines()
                    for trial in self.trials
                    if trial.evaluation_cost is not None
                },
            }
        if self.candidates:
            described["candidates"] = {
                candidate.config.trial_name: {
                    "baseModel": candidate.config.base_model,
                    "hyperparameters": dict(candidate.hyperparameters),
                    "jobName": candidate.job_spec.job_name,
                    "cost": candidate.cost_summary,
                }
                for candidate in self.candidates
            }
        if config.teacher_model is not None:
            described["teacherModel"] = config.teacher_model
        if self.validation is not None:
            described["validationData"] = _describe_data(self.validation)
        return described


def _describe_data(data: DataPlan) -> dict[str, Any]:
    return {
        "file": data.file.relative_path,
        "sha256": data.digest.sha256,
        "bytes": data.digest.size_bytes,
        "records": data.records,
        "estimatedTokens": data.estimated_tokens,
        "tokenEstimate": TOKEN_ESTIMATE_METHOD,
    }


@dataclass
class _FileChecks:
    """Validation reports and digests computed once per file (and per set of rules)."""

    data_root_name: str
    reports: dict[tuple[Path, DatasetLimits, bool, int | None], dataset.DatasetReport]
    digests: dict[Path, FileDigest]
    evaluations: dict[tuple[Path, str], DatasetCheck] = field(default_factory=dict)

    def evaluation(self, file: DataFile, settings: EvaluationSettings) -> DatasetCheck:
        key = (file.path, repr(settings))
        if key not in self.evaluations:
            display = f"{self.data_root_name}/{file.relative_path}"
            self.evaluations[key] = check_dataset(file.path, display, settings)
        return self.evaluations[key]

    def report(
        self, file: DataFile, limits: DatasetLimits, *, validation: bool, batch_size: int | None
    ) -> dataset.DatasetReport:
        key = (file.path, limits, validation, batch_size)
        if key not in self.reports:
            self.reports[key] = dataset.validate_file(
                file.path,
                display_name=f"{self.data_root_name}/{file.relative_path}",
                limits=limits,
                validation=validation,
                batch_size=batch_size,
            )
        return self.reports[key]

    def digest(self, file: DataFile) -> FileDigest:
        if file.path not in self.digests:
            self.digests[file.path] = file_digest(file.path)
        return self.digests[file.path]


def plan_app(
    config: AppConfig, data_root: Path, *, check_budgets: bool = True
) -> tuple[tuple[FineTuningPlan, ...], list[str]]:
    """Plans for every stack, and the warnings to show; raises ConfigError with every problem.

    `check_budgets` False: estimates over budget are not errors (the `cost` command shows them).
    """
    errors: list[FieldError] = []
    warnings: list[str] = []
    for environment in config.environments:
        errors.extend(catalog_checks.check_environment(environment))
    checks = _FileChecks(data_root_name=data_root.name, reports={}, digests={})
    plans: list[FineTuningPlan] = []
    for fine_tuning in config.fine_tunings:
        plan = _plan(fine_tuning, checks, errors, warnings)
        if plan is not None:
            plans.append(plan)
    if check_budgets and not errors:
        # Only a configuration without other errors: an estimate of a broken one means nothing.
        for environment in config.environments:
            errors.extend(budget_errors(plans, environment))
    if errors:
        raise ConfigError(list(dict.fromkeys(errors)))
    return tuple(plans), list(dict.fromkeys(warnings))


def budget_errors(plans: Sequence[FineTuningPlan], environment: EnvironmentConfig) -> list[FieldError]:
    """Every estimate of the environment's plans over its budget, or whose check needs an unknown
    figure: each fine-tuning's, each candidate's (a job of its own, which may be the one served), and
    each trial's evaluation. The environment's total counts each fine-tuning's own configuration
    once (a candidate replaces it, never adds to it)."""
    ours = [plan for plan in plans if plan.config.environment.name == environment.name]
    errors = budget_problems(environment, [(plan.config.name, plan.cost) for plan in ours])
    per_trial = replace(environment, budget=replace(environment.budget, total_usd_per_month=None))
    candidates = [
        (f"{plan.config.name} (candidate {candidate.config.trial_name})", candidate.cost)
        for plan in ours
        for candidate in plan.candidates
    ]
    errors += budget_problems(per_trial, candidates)
    evaluations = [
        (f"{plan.config.name} (trial {trial.config.trial_name})", cost)
        for plan in ours
        for trial in plan.trials
        if (cost := trial.evaluation_cost) is not None
    ]
    return errors + evaluation_budget_problems(environment, evaluations)


def _plan(
    fine_tuning: FineTuningConfig, checks: _FileChecks, errors: list[FieldError], warnings: list[str]
) -> FineTuningPlan | None:
    """The fine-tuning's plan: its own trial, one per candidate, and its evaluation dataset."""
    main = _plan_trial(fine_tuning, checks, errors, warnings)
    candidates = []
    for trial in fine_tuning.trials[1:]:
        if main is not None and _trains_the_main_data_format(main, trial, errors):
            candidate = _plan_trial(trial, checks, errors, warnings)
            if candidate is not None:
                candidates.append(candidate)
    evaluation = _evaluation_plan(fine_tuning, checks, errors)
    if main is None or len(candidates) != len(fine_tuning.candidates):
        return None
    if fine_tuning.evaluation is not None and evaluation is None:
        return None
    errors.extend(_same_trials(main, candidates))
    return replace(
        main,
        candidates=tuple(replace(candidate, evaluation=evaluation) for candidate in candidates),
        evaluation=evaluation,
    )


def _trains_the_main_data_format(
    main: FineTuningPlan, trial: FineTuningConfig, errors: list[FieldError]
) -> bool:
    """A candidate trains on the fine-tuning's own files: only if its model takes their format.

    No two of Bedrock's data formats are documented as equivalent, so none is converted: a candidate
    on a model of another format is refused here, with the reason, rather than line by line.
    """
    ours = catalog.find_model(main.config.base_model)
    theirs = catalog.find_model(trial.base_model)
    if ours is None or theirs is None:
        return True  # the candidate's own checks name an unknown model
    mine = ours.dataset_limits(main.config.customization_type)
    other = theirs.dataset_limits(trial.customization_type)
    if mine is None or other is None or mine.data_format == other.data_format:
        return True
    errors.append(
        FieldError(
            trial.path_of("base_model"),
            f"{theirs.name} trains on {other.data_format} data, but the fine-tuning's data is in "
            f"{mine.data_format} format (for {ours.name}); no conversion between the two is documented, so "
            "a candidate must take the same format: choose a model that does",
        )
    )
    return False


def _same_trials(main: FineTuningPlan, candidates: list[FineTuningPlan]) -> list[FieldError]:
    seen = {main.job_spec.digest: MAIN_TRIAL}
    problems = []
    for candidate in candidates:
        other = seen.setdefault(candidate.job_spec.digest, candidate.config.trial_name)
        if other != candidate.config.trial_name:
            problems.append(
                FieldError(
                    f"{main.config.path_of('candidates')}.{candidate.config.trial_name}",
                    f"trains exactly what {other!r} trains (same model, hyperparameters and data): "
                    "change what the candidate is to try, or remove it",
                )
            )
    return problems


def _evaluation_plan(
    fine_tuning: FineTuningConfig, checks: _FileChecks, errors: list[FieldError]
) -> EvaluationPlan | None:
    settings, file = fine_tuning.evaluation, fine_tuning.evaluation_data
    if settings is None or file is None:
        return None
    check = checks.evaluation(file, settings)
    field_path = fine_tuning.path_of("evaluation.dataset")
    for problem in check.problems:  # "FILE:LINE: message"
        location, message = problem.split(": ", 1)
        errors.append(FieldError(location, f"{message} (data of {field_path})"))
    if check.problems:
        return None
    digest = checks.digest(file)
    # Prompt tokens for the cost of a trial: the file's size / 6, an upper bound of the prompts'
    # characters / 6 (it counts keys and reference responses too).
    return EvaluationPlan(
        settings, DataPlan(file, digest, check.records, digest.size_bytes // CHARS_PER_TOKEN)
    )


def _plan_trial(
    fine_tuning: FineTuningConfig, checks: _FileChecks, errors: list[FieldError], warnings: list[str]
) -> FineTuningPlan | None:
    problems = catalog_checks.check_fine_tuning(fine_tuning)
    model = catalog.find_model(fine_tuning.base_model)
    limits = model.dataset_limits(fine_tuning.customization_type) if model is not None else None
    if problems or model is None or limits is None:
        errors.extend(problems)
        return None
    hyperparameters = catalog_checks.resolve_hyperparameters(fine_tuning, model)
    batch_size = batch_size_of(hyperparameters)

    def data_plan(file: DataFile, *, validation: bool) -> DataPlan | None:
        report = checks.report(file, limits, validation=validation, batch_size=batch_size)
        field_path = fine_tuning.path_of("validation_data" if validation else "training_data")
        if fine_tuning.trial_name != MAIN_TRIAL:
            field_path += f", as candidate {fine_tuning.trial_name} ({fine_tuning.base_model}) trains on it"
        for issue in report.errors:
            errors.append(FieldError(_location(issue), f"{issue.message} (data of {field_path})"))
        warnings.extend(str(issue) for issue in report.warnings)
        if not report.ok:
            return None
        return DataPlan(file, checks.digest(file), report.records, report.estimated_tokens)

    training = data_plan(fine_tuning.training_data, validation=False)
    validation = None
    if fine_tuning.validation_data is not None:
        validation = data_plan(fine_tuning.validation_data, validation=True)
        if validation is None:
            return None
    if training is None:
        return None
    warnings.extend(_settings_warnings(fine_tuning, model))
    data = DataSize(training.estimated_tokens, training.records, TOKEN_ESTIMATE_METHOD)
    cost = estimate_cost(fine_tuning, model, data)
    warnings.extend(_unknown_serving_price(fine_tuning, cost))
    return FineTuningPlan(fine_tuning, training, validation, hyperparameters, cost)


def _unknown_serving_price(fine_tuning: FineTuningConfig, cost: CostEstimate) -> list[str]:
    """A provisioned throughput nobody publishes a price for: synth passes without a budget that
    needs it (a budget check fails instead), but a user should hear that its hourly bill is unknown."""
    if fine_tuning.serving.mode != "provisioned" or cost.serving_per_30_days.value is not None:
        return []
    field_name = PT_FIELDS[fine_tuning.serving.commitment]
    return [
        f"{fine_tuning.path_of('serving.commitment')}: no published price for a {fine_tuning.serving.commitment!r} "
        f"provisioned throughput of {cost.model_name} in {cost.region}, so its cost shows as unknown; "
        f"environments.{fine_tuning.environment.name}.pricing.{fine_tuning.base_model}.{field_name} sets one"
    ]


def _settings_warnings(fine_tuning: FineTuningConfig, model: catalog.ModelEntry) -> list[str]:
    """What synth accepts but a user should hear about: settings without effect, a model whose
    customization may no longer be offered."""
    warnings = []
    serving = fine_tuning.serving
    if serving.mode != "provisioned":
        for key, value, default in (
            ("model_units", serving.model_units, 1),
            ("commitment", serving.commitment, "none"),
        ):
            if value != default:
                warnings.append(
                    f"{fine_tuning.path_of(f'serving.{key}')}: {value!r} has no effect with serving.mode "
                    f"{serving.mode!r} (it applies to provisioned throughput only)"
                )
    if model.lifecycle != catalog.LIFECYCLE_CURRENT:
        warnings.append(
            f"{fine_tuning.path_of('base_model')}: {model.name} is {model.lifecycle} ({model.lifecycle_source}): "
            "a job may be refused; check the Bedrock console before paying for data preparation"
        )
    return warnings


def _location(issue: dataset.DataIssue) -> str:
    return issue.file if issue.line is None else f"{issue.file}:{issue.line}"


def plans_by_environment(plans: tuple[FineTuningPlan, ...]) -> Mapping[str, list[FineTuningPlan]]:
    grouped: dict[str, list[FineTuningPlan]] = {}
    for plan in plans:
        grouped.setdefault(plan.config.environment.name, []).append(plan)
    return grouped
