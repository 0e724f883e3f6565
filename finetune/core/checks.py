"""Checks of a parsed configuration against the model catalog, and the resolved hyperparameters.

`finetune.core.config` has already checked shapes (types of fields, enums, model_units >= 1); this module
checks what Bedrock would accept: the base model, customization type, region, teacher, every
hyperparameter, the validation set, the serving mode and commitment, and pricing overrides.

Every check returns all problems at once as `FieldError`s whose paths come from
`FineTuningConfig.path_of`, so a value set by `environments.<env>.overrides.<fine-tuning>` is
reported at the override. `check_environment` is separate from `check_fine_tuning` because an
environment's pricing block is shared by all its fine-tunings and must be reported once.
"""

from __future__ import annotations

import difflib
import math

from finetune.core.catalog import (
    ALL_HYPERPARAMETER_KEYS,
    CATALOG,
    DISTILLATION,
    HyperparameterSpec,
    ModelEntry,
    find_model,
    format_number,
    suggest_models,
)
from finetune.core.config import EnvironmentConfig, FieldError, FineTuningConfig, HyperparameterValue
from finetune.core.names import JobSpec

MODELS_HINT = "`python -m finetune models` lists every model"


def check_fine_tuning(ft: FineTuningConfig) -> list[FieldError]:
    """Every problem of one fine-tuning against the catalog, in field order."""
    errors: list[FieldError] = []
    model = find_model(ft.base_model)
    if model is None:
        errors.append(FieldError(ft.path_of("base_model"), _unknown_model_message(ft.base_model)))
    elif ft.base_model != model.model_id:
        errors.append(
            FieldError(
                ft.path_of("base_model"),
                f"{ft.base_model!r} is the foundation-model id of {model.name}; a customization job "
                f"needs the identifier with the context-window suffix: {model.model_id!r}",
            )
        )

    type_supported = False
    if model is not None:
        type_supported = _check_type_and_region(ft, model, errors)
    errors.extend(_check_teacher(ft, model, type_supported))
    if model is not None:
        errors.extend(check_hyperparameters(ft, model))
        errors.extend(_check_validation_data(ft, model))
    errors.extend(_check_serving(ft, model))
    return errors


def check_environment(env: EnvironmentConfig) -> list[FieldError]:
    """Problems of one environment against the catalog: pricing overrides naming unknown models."""
    errors: list[FieldError] = []
    for model_id in env.pricing:
        if find_model(model_id) is None:
            errors.append(
                FieldError(
                    f"environments.{env.name}.pricing.{model_id}",
                    f"pricing override for a model not in the catalog: {_unknown_model_message(model_id)}",
                )
            )
    return errors


def check_hyperparameter_value(spec: HyperparameterSpec, value: object) -> str | None:
    """What is wrong with one value for one hyperparameter, or None when Bedrock accepts it."""
    accepted = _accepted_text(spec)
    if isinstance(value, str):
        if value in spec.special_values:
            return None
        close = [s for s in spec.special_values if s.lower() == value.lower()]
        if close:
            return f"got {value!r}; the special value is spelled {close[0]!r} for this key"
        return f"expected {accepted}, got the string {value!r} (write numbers without quotes)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected {accepted}, got {type(value).__name__} {value!r}"
    if spec.kind == "int" and not isinstance(value, int):
        return f"expected a whole number (int) {accepted.removeprefix('an int ')}, got {value!r}"
    if math.isnan(value) or not spec.in_range(value):
        return f"{value!r} is out of range: accepted {spec.range_text()}{_specials_text(spec)}"
    return None


def check_hyperparameters(ft: FineTuningConfig, model: ModelEntry) -> list[FieldError]:
    """Unknown keys, keys the model does not take, wrong types, out-of-range and missing values."""
    errors: list[FieldError] = []
    accepted_keys = ", ".join(model.hyperparameter_keys) or "none"
    for key, value in ft.hyperparameters.items():
        path = ft.path_of(f"hyperparameters.{key}")
        spec = model.hyperparameter(key)
        if spec is None:
            if key in ALL_HYPERPARAMETER_KEYS:
                message = f"{model.name} takes no hyperparameter {key!r}; accepted: {accepted_keys}"
            else:
                close = difflib.get_close_matches(
                    key, model.hyperparameter_keys or ALL_HYPERPARAMETER_KEYS, n=1
                )
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                message = f"unknown hyperparameter {key!r}{hint}; accepted for {model.name}: {accepted_keys}"
            errors.append(FieldError(path, message))
            continue
        problem = check_hyperparameter_value(spec, value)
        if problem is not None:
            errors.append(FieldError(path, problem))
    for spec in model.hyperparameters:
        if spec.required and spec.key not in ft.hyperparameters:
            errors.append(
                FieldError(
                    ft.path_of(f"hyperparameters.{spec.key}"),
                    f"required by {model.name} and missing: {_accepted_text(spec)}",
                )
            )
    return errors


def resolve_hyperparameters(ft: FineTuningConfig, model: ModelEntry) -> dict[str, str]:
    """The `hyperParameters` map of the job: the user's values plus the catalog defaults.

    Every value is a string, as the API requires: ints as "5", floats in Python's shortest
    round-tripping repr ("1e-05", "0.0001", "1.0"), special values verbatim ("auto"). Keys come in
    the catalog's order (the user guide's), then any key the catalog does not know, sorted (a checked
    configuration has none). Keys without a user value and without a default are left out, so
    Bedrock applies its own choice.
    """
    resolved: dict[str, str] = {}
    for spec in model.hyperparameters:
        value: HyperparameterValue | None = ft.hyperparameters.get(spec.key, spec.default)
        if value is None:
            continue
        if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        resolved[spec.key] = _render(value)
    for key in sorted(ft.hyperparameters.keys() - resolved.keys()):
        resolved[key] = _render(ft.hyperparameters[key])
    return resolved


def _render(value: HyperparameterValue) -> str:
    return value if isinstance(value, str) else format_number(value)


def _unknown_model_message(identifier: str) -> str:
    suggestions = suggest_models(identifier)
    hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
    return f"unknown base model {identifier!r}{hint} ({MODELS_HINT})"


def _check_type_and_region(ft: FineTuningConfig, model: ModelEntry, errors: list[FieldError]) -> bool:
    """Add type and region problems; True when the model supports the customization type."""
    customization = model.customization(ft.customization_type)
    if customization is None:
        supported = ", ".join(model.customization_types)
        errors.append(
            FieldError(
                ft.path_of("customization_type"),
                f"{model.name} does not support {ft.customization_type}; it supports: {supported}",
            )
        )
        return False
    if ft.region not in customization.regions:
        regions = ", ".join(customization.regions)
        errors.append(
            FieldError(
                ft.path_of("region"),
                f"{ft.customization_type} of {model.name} is not available in {ft.region}; "
                f"available in: {regions}",
            )
        )
    return True


def _check_teacher(ft: FineTuningConfig, model: ModelEntry | None, type_supported: bool) -> list[FieldError]:
    path = ft.path_of("teacher_model")
    if ft.customization_type != DISTILLATION:
        if ft.teacher_model is not None:
            return [
                FieldError(
                    path,
                    f"a teacher model is only used by DISTILLATION, not {ft.customization_type}; "
                    "remove teacher_model or set customization_type to DISTILLATION",
                )
            ]
        return []
    if model is None or not type_supported:
        return []  # the base model or type error already says what to fix first
    teachers = model.teachers_for(DISTILLATION)
    allowed = ", ".join(teachers)
    if ft.teacher_model is None:
        return [FieldError(path, f"required for DISTILLATION; allowed teachers for {model.name}: {allowed}")]
    if ft.teacher_model not in teachers:
        return [
            FieldError(
                path,
                f"{ft.teacher_model!r} is not an allowed teacher for {model.name}; allowed: {allowed}",
            )
        ]
    return []


def _check_validation_data(ft: FineTuningConfig, model: ModelEntry) -> list[FieldError]:
    limits = model.dataset_limits(ft.customization_type)
    if ft.validation_data is None or limits is None or limits.validation_allowed:
        return []
    return [
        FieldError(
            ft.path_of("validation_data"),
            f"{model.name} takes no validation set for {ft.customization_type}; remove validation_data",
        )
    ]


def _check_serving(ft: FineTuningConfig, model: ModelEntry | None) -> list[FieldError]:
    errors: list[FieldError] = []
    serving = ft.serving
    if model is not None:
        if serving.mode == "on_demand" and not model.serving.on_demand:
            errors.append(
                FieldError(
                    ft.path_of("serving.mode"),
                    f"{model.name} cannot be served on demand; accepted: 'provisioned' or 'none' "
                    f"(on-demand is documented for: {', '.join(_on_demand_model_names())})",
                )
            )
        elif serving.mode == "on_demand" and ft.region not in model.serving.on_demand_regions:
            errors.append(
                FieldError(
                    ft.path_of("serving.mode"),
                    f"on-demand deployment of {model.name} is not available in {ft.region}; "
                    f"available in: {', '.join(model.serving.on_demand_regions)}",
                )
            )
        elif serving.mode == "provisioned" and not model.serving.provisioned:
            errors.append(
                FieldError(ft.path_of("serving.mode"), f"{model.name} cannot use Provisioned Throughput")
            )
    if serving.commitment != "none":
        path = ft.path_of("serving.commitment")
        if serving.mode != "provisioned":
            errors.append(
                FieldError(
                    path,
                    f"a {serving.commitment} commitment applies only to serving.mode 'provisioned', "
                    f"not {serving.mode!r}; use 'none'",
                )
            )
        if not ft.environment.allow_commitment:
            errors.append(
                FieldError(
                    path,
                    f"a {serving.commitment} commitment cannot be ended early and renews by itself; "
                    f"environment {ft.environment.name!r} does not allow commitments (set "
                    f"environments.{ft.environment.name}.allow_commitment to true, or use 'none')",
                )
            )
    return errors


def _accepted_text(spec: HyperparameterSpec) -> str:
    kind = "an int" if spec.kind == "int" else "a number"
    return f"{kind} from {spec.range_text()}{_specials_text(spec)}"


def _specials_text(spec: HyperparameterSpec) -> str:
    if not spec.special_values:
        return ""
    return " or " + " | ".join(f'"{value}"' for value in spec.special_values)


def _on_demand_model_names() -> list[str]:
    return [entry.name for entry in CATALOG if entry.serving.on_demand]


def check_job_spec(spec: JobSpec, region: str | None = None) -> list[str]:
    """Every problem of a job as it crosses a construct's boundary (hyperparameters as the strings
    Bedrock takes): the same catalog rules as the configuration, for code that builds a
    `CustomizationJobTrigger` without a cdk.json. `region`: checked when it is a concrete name."""
    model = find_model(spec.base_model)
    if model is None:
        return [f"base_model: {_unknown_model_message(spec.base_model)}"]
    problems = []
    customization = model.customization(spec.customization_type)
    if customization is None:
        supported = ", ".join(model.customization_types)
        problems.append(
            f"customization_type: {model.name} does not support {spec.customization_type}; it supports: {supported}"
        )
    elif region and "${Token" not in region and region not in customization.regions:
        problems.append(
            f"region: {spec.customization_type} of {model.name} is not available in {region}; available in: {', '.join(customization.regions)}"
        )
    if spec.customization_type == DISTILLATION and spec.teacher_model not in model.teachers_for(DISTILLATION):
        problems.append(
            f"teacher_model: {spec.teacher_model!r} is not an allowed teacher for {model.name}; allowed: {', '.join(model.teachers_for(DISTILLATION))}"
        )
    for key, text in spec.hyperparameters.items():
        hyperparameter = model.hyperparameter(key)
        if hyperparameter is None:
            problems.append(
                f"hyperparameters.{key}: {model.name} takes no hyperparameter {key!r}; accepted: {', '.join(model.hyperparameter_keys) or 'none'}"
            )
            continue
        problem = check_hyperparameter_value(hyperparameter, _parsed(str(text), hyperparameter))
        if problem is not None:
            problems.append(f"hyperparameters.{key}: {problem}")
    problems += [
        f"hyperparameters.{h.key}: required by {model.name} and missing: {_accepted_text(h)}"
        for h in model.hyperparameters
        if h.required and h.key not in spec.hyperparameters
    ]
    return problems


def _parsed(text: str, hyperparameter: HyperparameterSpec) -> HyperparameterValue:
    """A hyperparameter string as the number it spells (a special value stays a string)."""
    if text in hyperparameter.special_values:
        return text
    try:
        return int(text) if hyperparameter.kind == "int" and text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text
