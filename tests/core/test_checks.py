"""Config checks against the catalog: every rejection names its field path and what is accepted."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune.core.catalog import CATALOG, HyperparameterSpec, ModelEntry, find_model
from finetune.core.checks import (
    check_environment,
    check_fine_tuning,
    check_hyperparameter_value,
    resolve_hyperparameters,
)
from finetune.core.config import (
    CUSTOMIZATION_TYPES,
    CustomizationType,
    DataFile,
    EnvironmentConfig,
    FieldError,
    FineTuningConfig,
    HyperparameterValue,
    parse_config,
)
from finetune.core.contracts import Commitment, Mode, ServingSettings

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
NOVA_PRO = "amazon.nova-pro-v1:0:300k"
LLAMA_33 = "meta.llama3-3-70b-instruct-v1:0:128k"
TITAN_IMAGE = "amazon.titan-image-generator-v2:0"
TITAN_EMBEDDINGS = "amazon.titan-embed-image-v1:0"
PREFIX = "fine_tunings.tune"


def data_file(directory: Path, name: str = "train.jsonl") -> DataFile:
    path = directory / name
    path.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    return DataFile(relative_path=name, path=path)


def make_ft(
    directory: Path,
    *,
    base_model: str = HAIKU,
    region: str = "us-west-2",
    customization_type: CustomizationType = "FINE_TUNING",
    teacher_model: str | None = None,
    hyperparameters: dict[str, HyperparameterValue] | None = None,
    validation: bool = False,
    mode: Mode = "none",
    commitment: Commitment = "none",
    allow_commitment: bool = False,
    model_units: int = 1,
) -> FineTuningConfig:
    environment = EnvironmentConfig(name="dev", region=region, allow_commitment=allow_commitment)
    return FineTuningConfig(
        name="tune",
        environment=environment,
        base_model=base_model,
        region=region,
        training_data=data_file(directory),
        customization_type=customization_type,
        teacher_model=teacher_model,
        validation_data=data_file(directory, "validation.jsonl") if validation else None,
        hyperparameters=hyperparameters or {},
        serving=ServingSettings(mode=mode, model_units=model_units, commitment=commitment),
    )


def only(errors: list[FieldError]) -> FieldError:
    assert len(errors) == 1, errors
    return errors[0]


def entry(model_id: str) -> ModelEntry:
    found = find_model(model_id)
    assert found is not None
    return found


def valid_setup(model: ModelEntry) -> tuple[CustomizationType, str, dict[str, HyperparameterValue]] | None:
    """A customization type the config accepts, its first region and the required hyperparameters."""
    for customization_type in CUSTOMIZATION_TYPES:
        if customization_type in model.customization_types and customization_type != "DISTILLATION":
            required: dict[str, HyperparameterValue] = {
                spec.key: spec.special_values[0] if spec.special_values else spec.minimum
                for spec in model.hyperparameters
                if spec.required
            }
            return customization_type, model.regions_for(customization_type)[0], required
    return None


CONFIGURABLE = [m for m in CATALOG if valid_setup(m) is not None]


# ---------------------------------------------------------------------------------------------
# Accepted configurations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", CONFIGURABLE, ids=[m.model_id for m in CONFIGURABLE])
def test_a_minimal_valid_config_passes_for_every_model(model: ModelEntry, tmp_path: Path) -> None:
    setup = valid_setup(model)
    assert setup is not None
    customization_type, region, required = setup
    ft = make_ft(
        tmp_path,
        base_model=model.model_id,
        region=region,
        customization_type=customization_type,
        hyperparameters=required,
        mode="provisioned",
    )
    assert check_fine_tuning(ft) == []


def test_every_model_has_a_type_the_configuration_accepts() -> None:
    # The catalog offers only what the configuration can carry to a job (no reinforcement fine-tuning).
    assert {m.name for m in CATALOG} == {m.name for m in CONFIGURABLE}


def test_nova_2_lite_fine_tuning_as_aws_samples_configure_it_passes(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path,
        base_model="amazon.nova-2-lite-v1:0:256k",
        region="us-east-1",
        customization_type="FINE_TUNING",
        hyperparameters={"epochCount": 2, "batchSize": 1, "learningRate": 0.00001},
        mode="on_demand",
    )
    assert check_fine_tuning(ft) == []


def test_distillation_with_an_allowed_teacher_passes(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path,
        base_model=NOVA_MICRO,
        region="us-east-1",
        customization_type="DISTILLATION",
        teacher_model="amazon.nova-premier-v1:0",
        mode="on_demand",
    )
    assert check_fine_tuning(ft) == []


def test_committed_provisioned_throughput_passes_when_the_environment_allows_it(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, mode="provisioned", commitment="SixMonths", allow_commitment=True, model_units=2)
    assert check_fine_tuning(ft) == []


# ---------------------------------------------------------------------------------------------
# Model, type, region, teacher
# ---------------------------------------------------------------------------------------------


def test_unknown_base_model_suggests_the_closest_ids(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, base_model="amazon.nova-lite-v1:0:128k")))
    assert error.path == f"{PREFIX}.base_model"
    assert "unknown base model 'amazon.nova-lite-v1:0:128k'" in error.message
    assert "closest: amazon.nova-lite-v1:0:300k" in error.message
    assert "python -m finetune models" in error.message


def test_foundation_model_id_without_suffix_names_the_identifier_to_use(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, base_model="anthropic.claude-3-haiku-20240307-v1:0")))
    assert error.path == f"{PREFIX}.base_model"
    assert "context-window suffix" in error.message and repr(HAIKU) in error.message


def test_customization_type_the_model_does_not_support(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, customization_type="CONTINUED_PRE_TRAINING")))
    assert error.path == f"{PREFIX}.customization_type"
    assert "Claude 3 Haiku does not support CONTINUED_PRE_TRAINING" in error.message
    assert "it supports: FINE_TUNING" in error.message


def test_region_where_the_type_is_not_available(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, region="us-east-1")))
    assert error.path == f"{PREFIX}.region"
    assert "not available in us-east-1" in error.message and "available in: us-west-2" in error.message


def test_distillation_without_a_teacher(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model=NOVA_MICRO, region="us-east-1", customization_type="DISTILLATION")
    error = only(check_fine_tuning(ft))
    assert error.path == f"{PREFIX}.teacher_model"
    assert "required for DISTILLATION" in error.message
    assert "amazon.nova-pro-v1:0, amazon.nova-premier-v1:0" in error.message


def test_distillation_with_a_teacher_not_allowed_for_the_student(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path,
        base_model=NOVA_PRO,
        region="us-east-1",
        customization_type="DISTILLATION",
        teacher_model="amazon.nova-pro-v1:0",
    )
    error = only(check_fine_tuning(ft))
    assert error.path == f"{PREFIX}.teacher_model"
    assert "'amazon.nova-pro-v1:0' is not an allowed teacher for Nova Pro" in error.message
    assert "allowed: amazon.nova-premier-v1:0" in error.message


def test_teacher_given_for_fine_tuning(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, teacher_model="amazon.nova-pro-v1:0")))
    assert error.path == f"{PREFIX}.teacher_model"
    assert "only used by DISTILLATION, not FINE_TUNING" in error.message


def test_distillation_on_a_model_without_it_reports_the_type_only(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, customization_type="DISTILLATION", teacher_model="amazon.nova-pro-v1:0")
    error = only(check_fine_tuning(ft))
    assert error.path == f"{PREFIX}.customization_type"
    assert "does not support DISTILLATION" in error.message


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------


def test_unknown_hyperparameter_suggests_the_closest_key(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, hyperparameters={"epochs": 3})))
    assert error.path == f"{PREFIX}.hyperparameters.epochs"
    assert "unknown hyperparameter 'epochs' (did you mean 'epochCount'?)" in error.message
    assert (
        "accepted for Claude 3 Haiku: epochCount, batchSize, learningRateMultiplier, "
        "earlyStoppingThreshold, earlyStoppingPatience" in error.message
    )


def test_hyperparameter_the_model_does_not_take(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model=NOVA_MICRO, region="us-east-1", hyperparameters={"batchSize": 8})
    error = only(check_fine_tuning(ft))
    assert error.path == f"{PREFIX}.hyperparameters.batchSize"
    assert "Nova Micro takes no hyperparameter 'batchSize'" in error.message
    assert "accepted: epochCount, learningRate, learningRateWarmupSteps" in error.message


def test_float_for_an_int_hyperparameter(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, hyperparameters={"epochCount": 2.5})))
    assert error.path == f"{PREFIX}.hyperparameters.epochCount"
    assert "expected a whole number (int) from 1 to 10 (inclusive), got 2.5" in error.message


def test_bool_is_never_a_number(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, hyperparameters={"learningRateMultiplier": True})))
    assert error.path == f"{PREFIX}.hyperparameters.learningRateMultiplier"
    assert "got bool True" in error.message and "0.1 to 2.0 (inclusive)" in error.message


def test_numeric_string_is_rejected_with_a_hint(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, hyperparameters={"batchSize": "32"})))
    assert error.path == f"{PREFIX}.hyperparameters.batchSize"
    assert "got the string '32' (write numbers without quotes)" in error.message


def test_out_of_range_states_the_inclusive_bounds(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, hyperparameters={"batchSize": 3, "earlyStoppingThreshold": 0.2})
    errors = check_fine_tuning(ft)
    assert [e.path for e in errors] == [
        f"{PREFIX}.hyperparameters.batchSize",
        f"{PREFIX}.hyperparameters.earlyStoppingThreshold",
    ]
    assert errors[0].message == "3 is out of range: accepted 4 to 256 (inclusive)"
    assert errors[1].message == "0.2 is out of range: accepted 0.0 to 0.1 (inclusive)"


def test_nan_is_out_of_range(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, hyperparameters={"learningRateMultiplier": math.nan})))
    assert "out of range" in error.message


def test_special_value_where_the_catalog_allows_it(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model=TITAN_IMAGE, region="us-east-1", hyperparameters={"stepCount": "auto"})
    assert check_fine_tuning(ft) == []


def test_special_value_where_the_catalog_does_not_allow_it(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, hyperparameters={"epochCount": "auto"})))
    assert error.path == f"{PREFIX}.hyperparameters.epochCount"
    assert "expected an int from 1 to 10 (inclusive), got the string 'auto'" in error.message


def test_special_value_with_the_wrong_case(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path, base_model=TITAN_EMBEDDINGS, region="us-west-2", hyperparameters={"epochCount": "auto"}
    )
    error = only(check_fine_tuning(ft))
    assert error.path == f"{PREFIX}.hyperparameters.epochCount"
    assert "spelled 'Auto'" in error.message


def test_required_hyperparameter_missing(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, base_model=TITAN_IMAGE, region="us-east-1")))
    assert error.path == f"{PREFIX}.hyperparameters.stepCount"
    assert "required by Titan Image Generator G1 v2 and missing" in error.message
    assert 'from 10 to 40000 (inclusive) or "auto"' in error.message


# ---------------------------------------------------------------------------------------------
# Validation data, serving, commitment
# ---------------------------------------------------------------------------------------------


def test_validation_data_where_the_model_takes_none(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path,
        base_model=TITAN_IMAGE,
        region="us-east-1",
        hyperparameters={"stepCount": 100},
        validation=True,
    )
    error = only(check_fine_tuning(ft))
    assert error.path == f"{PREFIX}.validation_data"
    assert "takes no validation set for FINE_TUNING" in error.message


def test_validation_data_where_allowed(tmp_path: Path) -> None:
    assert check_fine_tuning(make_ft(tmp_path, validation=True)) == []


def test_on_demand_for_a_model_without_it(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, mode="on_demand")))
    assert error.path == f"{PREFIX}.serving.mode"
    assert "Claude 3 Haiku cannot be served on demand" in error.message
    assert "accepted: 'provisioned' or 'none'" in error.message
    assert "Nova Micro" in error.message and "Llama 3.3 70B Instruct" in error.message


def test_on_demand_in_a_region_without_it(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model=NOVA_MICRO, region="us-west-2", mode="on_demand")
    errors = check_fine_tuning(ft)
    assert [e.path for e in errors] == [f"{PREFIX}.region", f"{PREFIX}.serving.mode"]
    assert "on-demand deployment of Nova Micro is not available in us-west-2" in errors[1].message


def test_on_demand_for_llama_33_in_us_west_2(tmp_path: Path) -> None:
    assert check_fine_tuning(make_ft(tmp_path, base_model=LLAMA_33, mode="on_demand")) == []


def test_commitment_without_allow_commitment(tmp_path: Path) -> None:
    error = only(check_fine_tuning(make_ft(tmp_path, mode="provisioned", commitment="OneMonth")))
    assert error.path == f"{PREFIX}.serving.commitment"
    assert "environment 'dev' does not allow commitments" in error.message
    assert "environments.dev.allow_commitment" in error.message


def test_commitment_without_provisioned_throughput(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path,
        base_model=NOVA_MICRO,
        region="us-east-1",
        mode="on_demand",
        commitment="SixMonths",
        allow_commitment=True,
    )
    error = only(check_fine_tuning(ft))
    assert error.path == f"{PREFIX}.serving.commitment"
    assert "applies only to serving.mode 'provisioned', not 'on_demand'" in error.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path,
        region="us-east-1",
        teacher_model="amazon.nova-pro-v1:0",
        hyperparameters={"epochCount": 0, "bogus": 1},
        mode="on_demand",
        commitment="OneMonth",
    )
    paths = [e.path for e in check_fine_tuning(ft)]
    assert paths == [
        f"{PREFIX}.region",
        f"{PREFIX}.teacher_model",
        f"{PREFIX}.hyperparameters.epochCount",
        f"{PREFIX}.hyperparameters.bogus",
        f"{PREFIX}.serving.mode",
        f"{PREFIX}.serving.commitment",
        f"{PREFIX}.serving.commitment",
    ]


def test_unknown_model_still_checks_teacher_and_commitment(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model="nope", teacher_model="x", mode="provisioned", commitment="OneMonth")
    paths = [e.path for e in check_fine_tuning(ft)]
    assert paths == [f"{PREFIX}.base_model", f"{PREFIX}.teacher_model", f"{PREFIX}.serving.commitment"]


# ---------------------------------------------------------------------------------------------
# Environment: pricing overrides; override paths through parse_config
# ---------------------------------------------------------------------------------------------


def test_pricing_override_for_an_unknown_model() -> None:
    env = EnvironmentConfig(
        name="prod",
        region="us-west-2",
        pricing={HAIKU: {"storage_per_month": 2.0}, "anthropic.claude-3-haiku": {"storage_per_month": 2.0}},
    )
    error = only(check_environment(env))
    assert error.path == "environments.prod.pricing.anthropic.claude-3-haiku"
    assert "pricing override for a model not in the catalog" in error.message
    assert f"closest: {HAIKU}" in error.message


def test_pricing_override_for_known_models_and_aliases() -> None:
    env = EnvironmentConfig(
        name="prod",
        region="us-west-2",
        pricing={HAIKU: {"storage_per_month": 2.0}, "amazon.nova-micro-v1:0": {"storage_per_month": 1.0}},
    )
    assert check_environment(env) == []


def test_environment_override_errors_carry_the_override_path(tmp_path: Path) -> None:
    (tmp_path / "tune").mkdir()
    (tmp_path / "tune" / "train.jsonl").write_text('{"system": "", "messages": []}\n', encoding="utf-8")
    context: dict[str, Any] = {
        "environments": {
            "dev": {"region": "us-west-2"},
            "prod": {
                "region": "us-west-2",
                "overrides": {
                    "tune": {
                        "hyperparameters": {"epochCount": 11},
                        "serving": {"mode": "provisioned", "commitment": "OneMonth"},
                        "teacher_model": "amazon.nova-pro-v1:0",
                    }
                },
            },
        },
        "fine_tunings": {
            "tune": {
                "base_model": HAIKU,
                "training_data": "tune/train.jsonl",
                "hyperparameters": {"epochCount": 3, "batchSize": 2},
            }
        },
    }
    app = parse_config(json.loads(json.dumps(context)), tmp_path)
    dev_errors = check_fine_tuning(app.get("dev", "tune"))
    assert [e.path for e in dev_errors] == ["fine_tunings.tune.hyperparameters.batchSize"]
    prod_errors = check_fine_tuning(app.get("prod", "tune"))
    override = "environments.prod.overrides.tune."
    assert all(e.path.startswith(override) for e in prod_errors if "batchSize" not in e.path)
    assert [e.path for e in prod_errors] == [
        f"{override}teacher_model",
        f"{override}hyperparameters.epochCount",
        "fine_tunings.tune.hyperparameters.batchSize",
        f"{override}serving.commitment",
    ]
    assert "11 is out of range: accepted 1 to 10 (inclusive)" in prod_errors[1].message


# ---------------------------------------------------------------------------------------------
# Property tests: every (model, hyperparameter) pair, bounds inclusive
# ---------------------------------------------------------------------------------------------

SPECS = [(m, spec) for m in CATALOG for spec in m.hyperparameters]
SPEC_IDS = [f"{m.name}:{spec.key}" for m, spec in SPECS]


def in_range(spec: HyperparameterSpec) -> st.SearchStrategy[int | float]:
    ints = st.integers(math.ceil(spec.minimum), math.floor(spec.maximum))
    if spec.kind == "int":
        return ints
    floats = st.floats(float(spec.minimum), float(spec.maximum), allow_nan=False)
    return floats | ints if math.ceil(spec.minimum) <= math.floor(spec.maximum) else floats


def out_of_range(spec: HyperparameterSpec) -> st.SearchStrategy[int | float]:
    if spec.kind == "int":
        return st.integers(max_value=int(spec.minimum) - 1) | st.integers(min_value=int(spec.maximum) + 1)
    below = st.floats(max_value=float(spec.minimum), exclude_max=True, allow_nan=False)
    above = st.floats(min_value=float(spec.maximum), exclude_min=True, allow_nan=False)
    return below | above


@pytest.mark.parametrize(("model", "spec"), SPECS, ids=SPEC_IDS)
@given(data=st.data())
def test_values_in_range_are_accepted(
    model: ModelEntry, spec: HyperparameterSpec, data: st.DataObject
) -> None:
    value = data.draw(in_range(spec))
    assert check_hyperparameter_value(spec, value) is None, (model.name, spec.key, value)


@pytest.mark.parametrize(("model", "spec"), SPECS, ids=SPEC_IDS)
@given(data=st.data())
def test_values_out_of_range_are_rejected(
    model: ModelEntry, spec: HyperparameterSpec, data: st.DataObject
) -> None:
    value = data.draw(out_of_range(spec))
    problem = check_hyperparameter_value(spec, value)
    assert problem is not None and "out of range" in problem, (model.name, spec.key, value)
    assert spec.range_text() in problem


@pytest.mark.parametrize(("model", "spec"), SPECS, ids=SPEC_IDS)
def test_both_boundaries_are_accepted_exactly(model: ModelEntry, spec: HyperparameterSpec) -> None:
    assert check_hyperparameter_value(spec, spec.minimum) is None
    assert check_hyperparameter_value(spec, spec.maximum) is None


@pytest.mark.parametrize(("model", "spec"), SPECS, ids=SPEC_IDS)
def test_special_values_only_where_listed(model: ModelEntry, spec: HyperparameterSpec) -> None:
    for special in ("auto", "Auto"):
        problem = check_hyperparameter_value(spec, special)
        assert (problem is None) == (special in spec.special_values), (model.name, spec.key, special)


CONFIGURABLE_SPECS = [(m, spec) for m, spec in SPECS if m in CONFIGURABLE]


@pytest.mark.parametrize(
    ("model", "spec"), CONFIGURABLE_SPECS, ids=[f"{m.name}:{s.key}" for m, s in CONFIGURABLE_SPECS]
)
@settings(max_examples=30)  # end to end per (model, key); the bounds themselves get 100 above
@given(data=st.data())
def test_check_fine_tuning_agrees_with_the_bounds(
    model: ModelEntry, spec: HyperparameterSpec, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    setup = valid_setup(model)
    assert setup is not None
    customization_type, region, required = setup
    accept = data.draw(st.booleans())
    value = data.draw(in_range(spec) if accept else out_of_range(spec))
    ft = make_ft(
        tmp_path_factory.getbasetemp(),
        base_model=model.model_id,
        region=region,
        customization_type=customization_type,
        hyperparameters={**required, spec.key: value},
    )
    errors = check_fine_tuning(ft)
    if accept:
        assert errors == []
    else:
        assert [e.path for e in errors] == [f"{PREFIX}.hyperparameters.{spec.key}"]


# ---------------------------------------------------------------------------------------------
# Resolved hyperparameters
# ---------------------------------------------------------------------------------------------


def test_resolve_adds_defaults_in_catalog_order(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, hyperparameters={"earlyStoppingPatience": 4, "epochCount": 3})
    resolved = resolve_hyperparameters(ft, entry(HAIKU))
    assert list(resolved.items()) == [
        ("epochCount", "3"),
        ("batchSize", "32"),
        ("learningRateMultiplier", "1.0"),
        ("earlyStoppingThreshold", "0.001"),
        ("earlyStoppingPatience", "4"),
    ]


def test_resolve_renders_floats_stably(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path, base_model=NOVA_MICRO, region="us-east-1", hyperparameters={"learningRate": 0.0001}
    )
    assert resolve_hyperparameters(ft, entry(NOVA_MICRO)) == {
        "epochCount": "2",
        "learningRate": "0.0001",
        "learningRateWarmupSteps": "10",
    }
    default_rate = resolve_hyperparameters(make_ft(tmp_path, base_model=NOVA_MICRO), entry(NOVA_MICRO))
    assert default_rate["learningRate"] == "1e-05"


def test_resolve_writes_an_int_given_for_a_float_key_as_a_float(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, hyperparameters={"learningRateMultiplier": 2})
    assert resolve_hyperparameters(ft, entry(HAIKU))["learningRateMultiplier"] == "2.0"


def test_resolve_keeps_special_values_and_omits_keys_without_default(tmp_path: Path) -> None:
    image = make_ft(tmp_path, base_model=TITAN_IMAGE, hyperparameters={"stepCount": "auto"})
    assert resolve_hyperparameters(image, entry(TITAN_IMAGE)) == {
        "batchSize": "8",
        "stepCount": "auto",
        "learningRate": "1e-05",
    }
    embeddings = make_ft(tmp_path, base_model=TITAN_EMBEDDINGS)
    resolved = resolve_hyperparameters(embeddings, entry(TITAN_EMBEDDINGS))
    assert "epochCount" not in resolved
    assert resolved == {"batchSize": "576", "learningRate": "5e-05"}


def test_resolve_keeps_unknown_keys_last_and_sorted(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, hyperparameters={"zeta": 1, "alpha": 0.5})
    assert list(resolve_hyperparameters(ft, entry(HAIKU)))[-2:] == ["alpha", "zeta"]


def test_a_job_spec_from_other_code_is_checked_against_the_catalog() -> None:
    from dataclasses import replace

    from finetune.core.checks import check_job_spec
    from finetune.core.names import JobSpec

    spec = JobSpec(
        "dev",
        "x",
        HAIKU,
        "FINE_TUNING",
        {"epochCount": "99", "batchSize": "8", "learningRateMultiplier": "1.0"},
        "a" * 64,
    )
    assert check_job_spec(spec, "us-west-2") == [
        "hyperparameters.epochCount: 99 is out of range: accepted 1 to 10 (inclusive)"
    ]
    assert check_job_spec(replace(spec, hyperparameters={"epochCount": "2", "steps": "3"}), "us-east-1") == [
        "region: FINE_TUNING of Claude 3 Haiku is not available in us-east-1; available in: us-west-2",
        "hyperparameters.steps: Claude 3 Haiku takes no hyperparameter 'steps'; accepted: epochCount, "
        "batchSize, learningRateMultiplier, earlyStoppingThreshold, earlyStoppingPatience",
    ]
    assert check_job_spec(replace(spec, hyperparameters={"epochCount": "2"}), "${Token[AWS.Region.1]}") == []
    assert check_job_spec(replace(spec, base_model="nope"), None)[0].startswith(
        "base_model: unknown base model 'nope'"
    )
