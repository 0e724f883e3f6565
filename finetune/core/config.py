"""The user-facing configuration: cdk.json context `environments` and `fine_tunings`.

`parse_config(context, data_root)` turns the raw context into frozen dataclasses, one
`FineTuningConfig` per (environment, fine-tuning): the typed parameter of one stack. Every problem is
collected in one pass and raised together as a `ConfigError`, each naming its field path
(`fine_tunings.support-assistant.hyperparameters.epochCount`). A value that comes from
`environments.<env>.overrides.<fine-tuning>` is reported under that override path instead, so the
user is sent to the line that set it.

This module checks shapes, types, required fields, unknown keys and file existence. Checks against
what Bedrock accepts (models, regions, hyperparameter ranges, serving modes) live in
`finetune.core.checks`, and checks of the data files themselves in `finetune.core.dataset`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from finetune.core import evaluation as evaluation_rules
from finetune.core.contracts import COMMITMENTS, MODES, Commitment, Mode, ServingSettings, serving_problems
from finetune.core.evaluation import EvaluationSettings, Gate
from finetune.core.names import MAIN_TRIAL, resource_tags
from finetune.core.prices import PRICE_FIELDS

RemovalPolicy = Literal["retain", "destroy"]
CustomizationType = Literal["FINE_TUNING", "CONTINUED_PRE_TRAINING", "DISTILLATION"]

REMOVAL_POLICIES: tuple[RemovalPolicy, ...] = ("retain", "destroy")
CUSTOMIZATION_TYPES: tuple[CustomizationType, ...] = (
    "FINE_TUNING",
    "CONTINUED_PRE_TRAINING",
    "DISTILLATION",
)

# Names end up in stack names, construct IDs, S3 prefixes and Bedrock job names (at most 63
# characters: "<environment>-<fine-tuning>-<12 hex digits of the data digest>"), hence the bounds.
# Bedrock's custom model names allow no "--" and no trailing "-" (`([0-9a-zA-Z][_-]?){1,63}`).
ENVIRONMENT_NAME = re.compile(r"^(?=.{1,16}$)[a-z](?:-?[a-z0-9])*$")
FINE_TUNING_NAME = re.compile(r"^(?=.{1,32}$)[a-z](?:-?[a-z0-9])*$")
CANDIDATE_NAME = re.compile(r"^(?=.{1,16}$)[a-z](?:-?[a-z0-9])*$")
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ENVIRONMENT_KEYS = (
    "account",
    "region",
    "removal_policy",
    "notification_emails",
    "allow_commitment",
    "stop_jobs_on_destroy",
    "stop_superseded_jobs",
    "pricing",
    "budget",
    "overrides",
)
BUDGET_KEYS = ("training_usd", "serving_usd_per_month", "total_usd_per_month", "evaluation_usd")
TRAFFIC_KEYS = ("input", "output")
FINE_TUNING_KEYS = (
    "base_model",
    "customization_type",
    "teacher_model",
    "region",
    "training_data",
    "validation_data",
    "hyperparameters",
    "serving",
    "evaluation",
    "candidates",
)
CANDIDATE_KEYS = ("base_model", "hyperparameters")
EVALUATION_KEYS = (
    "dataset",
    "task_type",
    "metrics",
    "judge_model",
    "gate",
    "max_hours",
    "max_tokens",
    "temperature",
)
GATE_KEYS = ("minimums", "maximums", "beat_base")
SERVING_KEYS = ("mode", "model_units", "commitment", "idle_alarm_hours", "expected_tokens_per_month")
# Fields of a fine-tuning that are maps: an override merges into them key by key.
MERGED_FIELDS = ("hyperparameters", "serving")

HyperparameterValue = int | float | str


@dataclass(frozen=True)
class FieldError:
    """One problem in the configuration, at a field path (or a FILE:LINE location)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `errors` holds every problem found, in document order."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(error) for error in self.errors))

    def report(self) -> str:
        """What synth and the commands print: a heading, then one indented line per problem."""
        lines = [f"cdk.json: invalid configuration ({len(self.errors)} problems):"]
        lines.extend(f"  {error}" for error in self.errors)
        return "\n".join(lines)


@dataclass(frozen=True)
class DataFile:
    """A training or validation file under the training data folder."""

    relative_path: str  # as written in cdk.json, relative to training_data/
    path: Path  # absolute

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Budget:
    """An environment's cost policy (USD); None: no limit. Synth fails when an estimate exceeds one."""

    training_usd: float | None = None  # per customization job
    serving_usd_per_month: float | None = None  # per fine-tuning, per 30 days
    total_usd_per_month: float | None = None  # the environment: serving and storage of every stack
    evaluation_usd: float | None = None  # per trial of an evaluation gate, at most

    @property
    def limits(self) -> dict[str, float]:
        """The limits that are set, by cdk.json key."""
        return {key: value for key in BUDGET_KEYS if (value := getattr(self, key)) is not None}


@dataclass(frozen=True)
class ExpectedTraffic:
    """`serving.expected_tokens_per_month`: the inference a served model should see per 30 days."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class EnvironmentConfig:
    """One deployment environment (one `cdk.Stage`)."""

    name: str
    region: str
    account: str | None = None  # None: the CLI's default account
    removal_policy: RemovalPolicy = "retain"
    notification_emails: tuple[str, ...] = ()
    allow_commitment: bool = False
    stop_jobs_on_destroy: bool = False
    # Stop a job still running when a newer deploy or upload replaces it (it would never be served).
    stop_superseded_jobs: bool = False
    # {base model id: {price field: USD}} overriding the catalog's prices.
    pricing: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    budget: Budget = Budget()


@dataclass(frozen=True)
class Candidate:
    """`fine_tunings.<ft>.candidates.<name>`: another base model and/or hyperparameters, trained on
    the same data and evaluated against the same gate as the fine-tuning's own settings."""

    name: str
    base_model: str
    hyperparameters: Mapping[str, HyperparameterValue]


@dataclass(frozen=True)
class FineTuningConfig:
    """One fine-tuning in one environment: the parameter of one stack, decided at synth time.

    With candidates, each is a trial of its own (`trial()`): the same fine-tuning with another base
    model and/or hyperparameters; `trial_name` says which (MAIN_TRIAL: the fine-tuning's own).
    """

    name: str
    environment: EnvironmentConfig
    base_model: str
    region: str
    training_data: DataFile
    customization_type: CustomizationType = "FINE_TUNING"
    teacher_model: str | None = None
    validation_data: DataFile | None = None
    hyperparameters: Mapping[str, HyperparameterValue] = field(default_factory=dict)
    serving: ServingSettings = field(default_factory=ServingSettings)
    expected_traffic: ExpectedTraffic | None = None
    evaluation: EvaluationSettings | None = None
    evaluation_data: DataFile | None = None  # evaluation.dataset, resolved
    candidates: tuple[Candidate, ...] = ()
    trial_name: str = MAIN_TRIAL
    # Relative field path -> full path, for every field an environment override set.
    overridden: Mapping[str, str] = field(default_factory=dict)

    @property
    def stack_name(self) -> str:
        return f"{self.environment.name}-{self.name}"

    def tags(self) -> dict[str, str]:
        """The tags that identify this fine-tuning's resources, in CloudFormation and Bedrock alike."""
        return resource_tags(self.environment.name, self.name)

    def trial(self, candidate: Candidate) -> FineTuningConfig:
        """The candidate's trial: this fine-tuning with the candidate's model and hyperparameters.

        A candidate on the same base model varies what it names: its hyperparameters merge onto the
        fine-tuning's. A candidate on another model starts from that model's catalog defaults (the
        fine-tuning's hyperparameters may not even exist there): "start simple, with defaults".
        """
        base_model = candidate.base_model or self.base_model
        inherited = self.hyperparameters if base_model == self.base_model else {}
        return replace(
            self,
            base_model=base_model,
            hyperparameters={**inherited, **candidate.hyperparameters},
            candidates=(),
            trial_name=candidate.name,
        )

    @property
    def trials(self) -> tuple[FineTuningConfig, ...]:
        """The main trial (this configuration) first, then one per candidate."""
        return (self, *(self.trial(candidate) for candidate in self.candidates))

    def path_of(self, relative: str) -> str:
        """The full config path of a field (`hyperparameters.epochCount`), override-aware; in a
        candidate's trial, its model and hyperparameters are the candidate's fields."""
        if self.trial_name != MAIN_TRIAL and relative.split(".", 1)[0] in CANDIDATE_KEYS:
            root = self.overridden.get("candidates", f"fine_tunings.{self.name}.candidates")
            return f"{root}.{self.trial_name}.{relative}"
        parts = relative.split(".")
        for depth in range(len(parts), 0, -1):
            prefix = ".".join(parts[:depth])
            if prefix in self.overridden:
                return ".".join([self.overridden[prefix], *parts[depth:]])
        return f"fine_tunings.{self.name}.{relative}"


@dataclass(frozen=True)
class AppConfig:
    """The whole app: every environment and, per environment, its fine-tunings in cdk.json order."""

    environments: tuple[EnvironmentConfig, ...]
    fine_tunings: tuple[FineTuningConfig, ...]

    def fine_tunings_of(self, environment: str) -> tuple[FineTuningConfig, ...]:
        return tuple(ft for ft in self.fine_tunings if ft.environment.name == environment)

    def get(self, environment: str, fine_tuning: str) -> FineTuningConfig:
        for ft in self.fine_tunings:
            if ft.environment.name == environment and ft.name == fine_tuning:
                return ft
        known = ", ".join(f"{ft.environment.name}/{ft.name}" for ft in self.fine_tunings)
        raise KeyError(f"no fine-tuning {fine_tuning!r} in environment {environment!r} (known: {known})")


def parse_config(context: Mapping[str, Any], data_root: Path) -> AppConfig:
    """Parse cdk.json context into an `AppConfig`, or raise `ConfigError` with every problem."""
    errors: list[FieldError] = []
    environments_raw = _mapping(context.get("environments"), "environments", errors, required=True)
    fine_tunings_raw = _mapping(context.get("fine_tunings"), "fine_tunings", errors, required=True)
    if errors:
        raise ConfigError(errors)
    errors.extend(_unknown_top_level_keys(context))
    if not environments_raw:
        errors.append(FieldError("environments", "define at least one environment"))
    if not fine_tunings_raw:
        errors.append(FieldError("fine_tunings", "define at least one fine-tuning"))
    for name in fine_tunings_raw:
        if not FINE_TUNING_NAME.match(name):
            errors.append(FieldError(f"fine_tunings.{name}", _NAME_RULE.format(max=32)))

    environments: list[EnvironmentConfig] = []
    fine_tunings: list[FineTuningConfig] = []
    for env_name, env_raw in environments_raw.items():
        env_path = f"environments.{env_name}"
        if not ENVIRONMENT_NAME.match(env_name):
            errors.append(FieldError(env_path, _NAME_RULE.format(max=16)))
        env_fields = _mapping(env_raw, env_path, errors, required=True)
        environment = _parse_environment(env_name, env_fields, errors)
        environments.append(environment)
        overrides = _mapping(env_fields.get("overrides"), f"{env_path}.overrides", errors)
        for unknown in overrides.keys() - fine_tunings_raw.keys():
            errors.append(
                FieldError(
                    f"{env_path}.overrides.{unknown}",
                    f"no fine-tuning named {unknown!r}{_suggest(unknown, fine_tunings_raw)}",
                )
            )
        for ft_name, ft_raw in fine_tunings_raw.items():
            base = _mapping(ft_raw, f"fine_tunings.{ft_name}", errors, required=True)
            merged, overridden = _apply_override(
                base, overrides.get(ft_name), f"{env_path}.overrides.{ft_name}", errors
            )
            parsed = _parse_fine_tuning(ft_name, environment, merged, overridden, data_root, errors)
            if parsed is not None:
                fine_tunings.append(parsed)
    errors.extend(_name_collisions(fine_tunings))
    if errors:
        raise ConfigError(_deduplicate(errors))
    return AppConfig(environments=tuple(environments), fine_tunings=tuple(fine_tunings))


# The context keys this app reads; others belong to CDK (`@aws-cdk/...` feature flags,
# `aws:cdk:...`, cached look-ups such as `availability-zones:account=...`) when namespaced.
APP_CONTEXT_KEYS = ("environments", "fine_tunings", "finetune:cloudformation-validation")


def _unknown_top_level_keys(context: Mapping[str, Any]) -> list[FieldError]:
    """A misspelled top-level key (`fine_tuning`, `enviroments`) would otherwise be ignored."""
    return [
        FieldError(
            key,
            f"unknown top-level context key{_suggest(key, APP_CONTEXT_KEYS)}; this app reads: {', '.join(APP_CONTEXT_KEYS)}",
        )
        for key in context
        if key not in APP_CONTEXT_KEYS and ":" not in key and not key.startswith("@")
    ]


def _name_collisions(fine_tunings: list[FineTuningConfig]) -> list[FieldError]:
    """Pairs whose `<environment>-<fine-tuning>` is the same string (`dev` + `support-assistant`,
    `dev-support` + `assistant`) would share a stack, jobs, endpoints, alarms and tags."""
    first: dict[str, FineTuningConfig] = {}
    errors = []
    for ft in fine_tunings:
        other = first.setdefault(ft.stack_name, ft)
        if other is not ft:
            errors.append(
                FieldError(
                    f"environments.{ft.environment.name}",
                    f"with fine-tuning {ft.name!r} it names the stack {ft.stack_name!r}, and so the same "
                    f"jobs, endpoints and tags, as environment {other.environment.name!r} with fine-tuning "
                    f"{other.name!r}: rename the environment or one of the fine-tunings",
                )
            )
    return errors


_NAME_RULE = (
    "name must be lowercase letters, digits and single '-' between them, start with a letter, "
    "at most {max} characters"
)


def _deduplicate(errors: list[FieldError]) -> list[FieldError]:
    """A fine-tuning is parsed once per environment: report each shared problem once."""
    return list(dict.fromkeys(errors))


def _suggest(word: str, choices: Mapping[str, Any] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _mapping(value: Any, path: str, errors: list[FieldError], *, required: bool = False) -> dict[str, Any]:
    if value is None:
        if required:
            errors.append(FieldError(path, "required: an object (JSON map) is missing"))
        return {}
    if not isinstance(value, Mapping):
        errors.append(FieldError(path, f"expected an object (JSON map), got {_type_name(value)}"))
        return {}
    return dict(value)


def _unknown_keys(fields: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> Iterator[FieldError]:
    for key in fields:
        if key not in allowed:
            accepted = ", ".join(allowed)
            yield FieldError(f"{path}.{key}", f"unknown key{_suggest(key, allowed)}; accepted: {accepted}")


def _string(
    fields: Mapping[str, Any],
    key: str,
    path: str,
    errors: list[FieldError],
    *,
    required: bool = False,
    pattern: re.Pattern[str] | None = None,
    rule: str = "",
) -> str | None:
    value = fields.get(key)
    if value is None:
        if required:
            errors.append(FieldError(path, "required field is missing (a string)"))
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(path, f"expected a non-empty string, got {_type_name(value)} {value!r}"))
        return None
    if pattern is not None and not pattern.match(value):
        errors.append(FieldError(path, f"{value!r} is not valid: {rule}"))
        return None
    return value


def _choice(
    fields: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...], errors: list[FieldError]
) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if value not in choices:
        accepted = " | ".join(repr(choice) for choice in choices)
        hint = _suggest(value, choices) if isinstance(value, str) else ""
        errors.append(FieldError(path, f"got {value!r}{hint}; accepted: {accepted}"))
        return None
    return cast(str, value)


def _boolean(fields: Mapping[str, Any], key: str, path: str, errors: list[FieldError]) -> bool | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        errors.append(FieldError(path, f"expected true or false, got {_type_name(value)} {value!r}"))
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_environment(name: str, fields: Mapping[str, Any], errors: list[FieldError]) -> EnvironmentConfig:
    path = f"environments.{name}"
    errors.extend(_unknown_keys(fields, ENVIRONMENT_KEYS, path))
    region = _string(
        fields,
        "region",
        f"{path}.region",
        errors,
        required=True,
        pattern=REGION,
        rule="an AWS region such as 'us-west-2'",
    )
    account = _string(
        fields, "account", f"{path}.account", errors, pattern=ACCOUNT_ID, rule="a 12-digit AWS account id"
    )
    removal_policy = _choice(fields, "removal_policy", f"{path}.removal_policy", REMOVAL_POLICIES, errors)
    emails: list[str] = []
    raw_emails = fields.get("notification_emails", [])
    if not isinstance(raw_emails, list):
        errors.append(
            FieldError(
                f"{path}.notification_emails", f"expected a list of e-mail addresses, got {raw_emails!r}"
            )
        )
    else:
        for index, email in enumerate(raw_emails):
            if isinstance(email, str) and EMAIL.match(email):
                emails.append(email)
            else:
                errors.append(
                    FieldError(f"{path}.notification_emails[{index}]", f"{email!r} is not an e-mail address")
                )
    allow_commitment = _boolean(fields, "allow_commitment", f"{path}.allow_commitment", errors)
    stop_jobs = _boolean(fields, "stop_jobs_on_destroy", f"{path}.stop_jobs_on_destroy", errors)
    stop_superseded = _boolean(fields, "stop_superseded_jobs", f"{path}.stop_superseded_jobs", errors)
    policy = cast(RemovalPolicy, removal_policy or "retain")
    return EnvironmentConfig(
        name=name,
        region=region or "",
        account=account,
        removal_policy=policy,
        notification_emails=tuple(emails),
        allow_commitment=bool(allow_commitment),
        # A destroyable environment stops its running jobs on destroy unless told otherwise.
        stop_jobs_on_destroy=stop_jobs if stop_jobs is not None else policy == "destroy",
        stop_superseded_jobs=stop_superseded if stop_superseded is not None else policy == "destroy",
        pricing=_parse_pricing(fields.get("pricing"), f"{path}.pricing", errors),
        budget=_parse_budget(fields.get("budget"), f"{path}.budget", errors),
    )


def _parse_budget(value: Any, path: str, errors: list[FieldError]) -> Budget:
    fields = _mapping(value, path, errors)
    errors.extend(_unknown_keys(fields, BUDGET_KEYS, path))
    limits: dict[str, float] = {}
    for key in BUDGET_KEYS:
        if key not in fields:
            continue
        amount = fields[key]
        if _is_number(amount) and amount >= 0:
            limits[key] = float(amount)
        else:
            errors.append(FieldError(f"{path}.{key}", f"expected an amount in USD >= 0, got {amount!r}"))
    return Budget(**limits)


def _parse_pricing(value: Any, path: str, errors: list[FieldError]) -> dict[str, dict[str, float]]:
    pricing: dict[str, dict[str, float]] = {}
    for model_id, prices_raw in _mapping(value, path, errors).items():
        model_path = f"{path}.{model_id}"
        prices = _mapping(prices_raw, model_path, errors, required=True)
        errors.extend(_unknown_keys(prices, PRICE_FIELDS, model_path))
        pricing[model_id] = {}
        for key, price in prices.items():
            if key not in PRICE_FIELDS:
                continue
            if not _is_number(price) or price < 0:
                errors.append(
                    FieldError(f"{model_path}.{key}", f"expected a price in USD >= 0, got {price!r}")
                )
            else:
                pricing[model_id][key] = float(price)
    return pricing


def _apply_override(
    base: dict[str, Any], override_raw: Any, override_path: str, errors: list[FieldError]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge an environment's override into a fine-tuning; remember which fields it set."""
    if override_raw is None:
        return base, {}
    override = _mapping(override_raw, override_path, errors)
    merged = dict(base)
    overridden: dict[str, str] = {}
    for key, value in override.items():
        if key in MERGED_FIELDS and isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            merged[key] = {**base[key], **value}
            for inner in value:
                overridden[f"{key}.{inner}"] = f"{override_path}.{key}.{inner}"
        else:
            merged[key] = value
            overridden[key] = f"{override_path}.{key}"
    return merged, overridden


def _parse_fine_tuning(
    name: str,
    environment: EnvironmentConfig,
    fields: Mapping[str, Any],
    overridden: dict[str, str],
    data_root: Path,
    errors: list[FieldError],
) -> FineTuningConfig | None:
    # A throwaway instance only to resolve paths the same way the finished config does.
    where = FineTuningConfig(
        name=name,
        environment=environment,
        base_model="",
        region="",
        training_data=DataFile("", data_root),
        overridden=overridden,
    ).path_of
    before = len(errors)
    for error in _unknown_keys(fields, FINE_TUNING_KEYS, "fine_tunings." + name):
        key = error.path.rsplit(".", 1)[1]
        errors.append(FieldError(where(key), error.message))

    base_model = _string(fields, "base_model", where("base_model"), errors, required=True)
    customization_type = _choice(
        fields, "customization_type", where("customization_type"), CUSTOMIZATION_TYPES, errors
    )
    teacher_model = _string(fields, "teacher_model", where("teacher_model"), errors)
    region = _string(
        fields, "region", where("region"), errors, pattern=REGION, rule="an AWS region such as 'us-west-2'"
    )
    training = _data_file(fields, "training_data", where("training_data"), data_root, errors, required=True)
    validation = _data_file(fields, "validation_data", where("validation_data"), data_root, errors)
    hyperparameters = _parse_hyperparameters(fields.get("hyperparameters"), where, errors)
    serving = _parse_serving(fields.get("serving"), where, errors)
    traffic = _parse_traffic(fields.get("serving"), where, errors)
    evaluation, evaluation_data = _parse_evaluation(fields.get("evaluation"), where, data_root, errors)
    candidates = _parse_candidates(fields.get("candidates"), where, errors)
    if candidates and fields.get("evaluation") is None:
        errors.append(
            FieldError(
                where("candidates"),
                "candidates need an evaluation to be chosen among: add fine_tunings.<ft>.evaluation with a gate, "
                "or leave candidates out",
            )
        )

    if training is not None and validation is not None and training.path == validation.path:
        errors.append(
            FieldError(
                where("validation_data"),
                f"is the training file itself ({training.relative_path}): a validation set must be data the "
                "model does not train on; give another file or leave validation_data out",
            )
        )
    if len(errors) > before or base_model is None or training is None:
        return None
    return FineTuningConfig(
        name=name,
        environment=environment,
        base_model=base_model,
        customization_type=cast(CustomizationType, customization_type or "FINE_TUNING"),
        teacher_model=teacher_model,
        region=region or environment.region,
        training_data=training,
        validation_data=validation,
        hyperparameters=hyperparameters,
        serving=serving,
        expected_traffic=traffic,
        evaluation=evaluation,
        evaluation_data=evaluation_data,
        candidates=candidates,
        overridden=overridden,
    )


def _parse_evaluation(
    value: Any, where: Any, data_root: Path, errors: list[FieldError]
) -> tuple[EvaluationSettings | None, DataFile | None]:
    """`evaluation`: its settings (the rules are finetune.core.evaluation's) and its dataset."""
    if value is None:
        return None, None
    path = where("evaluation")
    before = len(errors)
    fields = _mapping(value, path, errors, required=True)
    errors.extend(_unknown_keys(fields, EVALUATION_KEYS, path))
    dataset = _data_file(fields, "dataset", f"{path}.dataset", data_root, errors, required=True)
    metrics = fields.get("metrics")
    if not isinstance(metrics, list) or not all(isinstance(metric, str) for metric in metrics):
        errors.append(
            FieldError(
                f"{path}.metrics",
                f'expected a list of metric names such as ["Builtin.Correctness"], got {metrics!r}',
            )
        )
        metrics = []
    judge_model = _string(fields, "judge_model", f"{path}.judge_model", errors)
    if judge_model is not None and "task_type" in fields:
        errors.append(
            FieldError(
                f"{path}.task_type",
                f"a judge evaluates as task type {evaluation_rules.JUDGE_TASK_TYPE!r}: leave task_type out",
            )
        )
    task_type = _string(fields, "task_type", f"{path}.task_type", errors) or "Generation"
    gate = _parse_gate(fields.get("gate"), f"{path}.gate", errors)
    numbers = {}
    defaults = EvaluationSettings(dataset="", metrics=(), gate=Gate())
    for key, whole in (("max_hours", True), ("max_tokens", True), ("temperature", False)):
        number = fields.get(key, getattr(defaults, key))
        if not _is_number(number) or (whole and not isinstance(number, int)):
            kind = "a whole number" if whole else "a number"
            errors.append(
                FieldError(f"{path}.{key}", f"expected {kind}, got {_type_name(number)} {number!r}")
            )
            number = getattr(defaults, key)
        numbers[key] = number
    settings = EvaluationSettings(
        dataset=dataset.relative_path if dataset else "",
        metrics=tuple(metrics),
        gate=gate,
        task_type=task_type,
        judge_model=judge_model,
        **numbers,
    )
    if len(errors) == before:  # the rules between fields, once each field has the right shape
        errors.extend(
            FieldError(f"{path}.{relative}", message)
            for relative, message in evaluation_rules.settings_problems(settings)
        )
    if len(errors) > before or dataset is None:
        return None, None
    return settings, dataset


def _parse_gate(value: Any, path: str, errors: list[FieldError]) -> Gate:
    fields = _mapping(value, path, errors, required=True)
    errors.extend(_unknown_keys(fields, GATE_KEYS, path))
    limits: dict[str, dict[str, float]] = {}
    for key in ("minimums", "maximums"):
        limits[key] = {}
        for metric, limit in _mapping(fields.get(key), f"{path}.{key}", errors).items():
            if _is_number(limit):
                limits[key][metric] = float(limit)
            else:
                errors.append(
                    FieldError(f"{path}.{key}.{metric}", f"expected a number from 0 to 1, got {limit!r}")
                )
    beat_base = _boolean(fields, "beat_base", f"{path}.beat_base", errors)
    return Gate(minimums=limits["minimums"], maximums=limits["maximums"], beat_base=bool(beat_base))


def _parse_candidates(value: Any, where: Any, errors: list[FieldError]) -> tuple[Candidate, ...]:
    candidates: list[Candidate] = []
    for name, raw in _mapping(value, where("candidates"), errors).items():
        path = f"{where('candidates')}.{name}"
        if name == MAIN_TRIAL or not CANDIDATE_NAME.match(name):
            errors.append(
                FieldError(
                    path, _NAME_RULE.format(max=16) + f", and not {MAIN_TRIAL!r} (the fine-tuning's own)"
                )
            )
            continue
        fields = _mapping(raw, path, errors, required=True)
        errors.extend(_unknown_keys(fields, CANDIDATE_KEYS, path))
        if not fields.get("base_model") and not fields.get("hyperparameters"):
            errors.append(
                FieldError(path, "give a base_model and/or hyperparameters: what this candidate changes")
            )
            continue
        base_model = _string(fields, "base_model", f"{path}.base_model", errors)
        hyperparameters = _parse_hyperparameters(
            fields.get("hyperparameters"), lambda relative, root=path: f"{root}.{relative}", errors
        )
        candidates.append(Candidate(name, base_model or "", hyperparameters))
    return tuple(candidates)


def _data_file(
    fields: Mapping[str, Any],
    key: str,
    path: str,
    data_root: Path,
    errors: list[FieldError],
    *,
    required: bool = False,
) -> DataFile | None:
    relative = _string(fields, key, path, errors, required=required)
    if relative is None:
        return None
    # Written next to cdk.json, a path often starts with the data folder itself
    # (`training_data/assistant/train.jsonl`): that is the same file.
    folder_prefix = f"{data_root.name}/"
    if relative.startswith(folder_prefix) and not (data_root / relative).is_file():
        relative = relative[len(folder_prefix) :]
    candidate = Path(relative)
    resolved = (data_root / candidate).resolve()
    if candidate.is_absolute() or not resolved.is_relative_to(data_root.resolve()):
        errors.append(FieldError(path, f"{relative!r} must be a path inside {data_root.name}/ (relative)"))
        return None
    if not resolved.is_file():
        errors.append(FieldError(path, f"file not found: {data_root.name}/{relative}"))
        return None
    return DataFile(relative_path=relative, path=resolved)


def _parse_hyperparameters(
    value: Any, where: Any, errors: list[FieldError]
) -> dict[str, HyperparameterValue]:
    parsed: dict[str, HyperparameterValue] = {}
    for key, raw in _mapping(value, where("hyperparameters"), errors).items():
        if _is_number(raw) or (isinstance(raw, str) and raw.strip()):
            parsed[key] = raw
        else:
            errors.append(
                FieldError(
                    where(f"hyperparameters.{key}"),
                    f'expected a number (or a special value such as "auto"), got {_type_name(raw)} {raw!r}',
                )
            )
    return parsed


def _parse_serving(value: Any, where: Any, errors: list[FieldError]) -> ServingSettings:
    fields = _mapping(value, where("serving"), errors)
    for error in _unknown_keys(fields, SERVING_KEYS, "serving"):
        errors.append(FieldError(where(error.path), error.message))
    settings = ServingSettings()
    values = {key: fields.get(key, getattr(settings, key)) for key in SERVING_KEYS if hasattr(settings, key)}
    problems = serving_problems(**values)
    for key, message in problems.items():
        hint = (
            _suggest(values[key], MODES if key == "mode" else COMMITMENTS)
            if key in ("mode", "commitment") and isinstance(values[key], str)
            else ""
        )
        errors.append(
            FieldError(where(f"serving.{key}"), message.replace(";", f"{hint};", 1) if hint else message)
        )
    if problems:
        return settings
    return ServingSettings(
        mode=cast(Mode, values["mode"]),
        model_units=values["model_units"],
        commitment=cast(Commitment, values["commitment"]),
        idle_alarm_hours=values["idle_alarm_hours"],
    )


def _parse_traffic(value: Any, where: Any, errors: list[FieldError]) -> ExpectedTraffic | None:
    """`serving.expected_tokens_per_month`: {"input": N, "output": N}, whole numbers of tokens."""
    raw = value.get("expected_tokens_per_month") if isinstance(value, Mapping) else None
    if raw is None:
        return None
    path = where("serving.expected_tokens_per_month")
    fields = _mapping(raw, path, errors)
    for error in _unknown_keys(fields, TRAFFIC_KEYS, "traffic"):
        errors.append(FieldError(f"{path}.{error.path.rsplit('.', 1)[1]}", error.message))
    tokens: dict[str, int] = {}
    for key in TRAFFIC_KEYS:
        amount = fields.get(key, 0)
        if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
            tokens[key] = amount
        else:
            errors.append(
                FieldError(f"{path}.{key}", f"expected a whole number of tokens >= 0, got {amount!r}")
            )
    if len(tokens) < len(TRAFFIC_KEYS) or set(fields) - set(TRAFFIC_KEYS):
        return None
    if not any(tokens.values()):
        errors.append(FieldError(path, 'give "input" and/or "output" tokens per 30 days (both are 0)'))
        return None
    return ExpectedTraffic(input_tokens=tokens["input"], output_tokens=tokens["output"])
