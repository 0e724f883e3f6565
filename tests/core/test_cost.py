"""Cost arithmetic against hand-computed cases, and how unknown and unverified figures render."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from finetune.core.catalog import (
    CATALOG,
    OVERRIDE_SOURCE,
    SOURCE_STORAGE_PRICE,
    ModelEntry,
    find_model,
    prices_for,
)
from finetune.core.config import (
    CustomizationType,
    DataFile,
    EnvironmentConfig,
    FineTuningConfig,
    HyperparameterValue,
)
from finetune.core.contracts import MODES, Commitment, Mode, ServingSettings
from finetune.core.cost import CostEstimate, estimate_cost
from finetune.core.formats import TOKEN_ESTIMATE_METHOD

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"


def entry(model_id: str) -> ModelEntry:
    found = find_model(model_id)
    assert found is not None
    return found


def make_ft(
    directory: Path,
    *,
    base_model: str = HAIKU,
    customization_type: CustomizationType = "FINE_TUNING",
    hyperparameters: dict[str, HyperparameterValue] | None = None,
    mode: Mode = "none",
    commitment: Commitment = "none",
    model_units: int = 1,
    pricing: Mapping[str, Mapping[str, float]] | None = None,
) -> FineTuningConfig:
    path = directory / "train.jsonl"
    path.write_text("{}\n", encoding="utf-8")
    return FineTuningConfig(
        name="tune",
        environment=EnvironmentConfig(
            name="dev", region="us-west-2", allow_commitment=True, pricing=pricing or {}
        ),
        base_model=base_model,
        region="us-west-2",
        training_data=DataFile("train.jsonl", path),
        customization_type=customization_type,
        hyperparameters=hyperparameters or {},
        serving=ServingSettings(mode=mode, model_units=model_units, commitment=commitment),
    )


def estimate(ft: FineTuningConfig, tokens: int = 1_000_000) -> CostEstimate:
    return estimate_cost(ft, entry(ft.base_model), tokens, TOKEN_ESTIMATE_METHOD)


def test_training_with_an_override_price_and_the_default_epochs(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, pricing={HAIKU: {"training_per_1k_tokens": 0.008}})
    cost = estimate(ft, tokens=1_500_000)
    # 1,500,000 tokens x 2 epochs (catalog default) / 1000 x $0.008 = $24.00
    assert cost.epochs == 2 and cost.billed_tokens == 3_000_000
    assert cost.training.value == pytest.approx(24.0)
    assert cost.training.source == OVERRIDE_SOURCE and not cost.training.unverified
    assert cost.training.render() == "$24.00"
    assert "epochCount default of the catalog" in cost.epochs_note


def test_training_uses_the_configured_epochs(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path, hyperparameters={"epochCount": 5}, pricing={HAIKU: {"training_per_1k_tokens": 0.01}}
    )
    cost = estimate(ft, tokens=200_000)
    # 200,000 x 5 / 1000 x $0.01 = $10.00
    assert cost.training.value == pytest.approx(10.0)
    assert cost.epochs_note == "epochCount from the configuration"


def test_unknown_training_price_renders_unknown(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path))
    assert cost.training_price.value is None and cost.training.value is None
    assert cost.training.render() == "unknown"
    assert "training unknown" in cost.summary()
    assert any(
        line.strip().startswith("training (one job)") and line.endswith("unknown") for line in cost.lines()
    )


def test_storage_is_unverified_and_rendered_with_a_marker(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path))
    assert cost.storage.value == 1.95 and cost.storage.unverified
    assert "storage ~$1.95/month (unverified)" in cost.summary()
    assert any("~$1.95 (unverified)" in line and SOURCE_STORAGE_PRICE in line for line in cost.lines())


def test_storage_override_is_verified(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, pricing={HAIKU: {"storage_per_month": 2.5}}))
    assert cost.storage.value == 2.5 and not cost.storage.unverified
    assert "storage $2.50/month;" in cost.summary()


def test_serving_none_is_a_real_zero(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, mode="none"))
    assert cost.serving_per_hour is not None and cost.serving_per_hour.value == 0.0
    assert cost.serving_per_30_days is not None and cost.serving_per_30_days.value == 0.0
    assert cost.serving_price is None and cost.commitment_total is None
    assert cost.summary().endswith("serving none ($0)")


def test_provisioned_no_commitment_per_hour_and_per_30_days(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path, mode="provisioned", model_units=2, pricing={HAIKU: {"pt_no_commitment_per_hour": 20.5}}
    )
    cost = estimate(ft)
    # 2 units x $20.50 = $41.00 per hour; x 720 hours = $29,520.00 per 30 days
    assert cost.serving_per_hour is not None and cost.serving_per_hour.value == pytest.approx(41.0)
    assert cost.serving_per_30_days is not None and cost.serving_per_30_days.value == pytest.approx(29_520.0)
    assert cost.commitment_total is None
    assert "serving PT 2 units $41.00/h" in cost.summary()
    assert any("$29,520.00" in line for line in cost.lines())
    assert any("bills every hour until it is deleted" in note for note in cost.notes)


def test_provisioned_six_months_commitment_total(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path,
        mode="provisioned",
        commitment="SixMonths",
        model_units=2,
        pricing={HAIKU: {"pt_six_months_per_hour": 10.0, "pt_no_commitment_per_hour": 99.0}},
    )
    cost = estimate(ft)
    # 2 units x $10 x 720 h = $14,400 per 30 days; x 6 = $86,400 for the term
    assert cost.serving_price is not None and cost.serving_price.value == 10.0
    assert cost.serving_per_30_days is not None and cost.serving_per_30_days.value == pytest.approx(14_400.0)
    assert cost.commitment_total is not None and cost.commitment_total.value == pytest.approx(86_400.0)
    assert "PT 2 units SixMonths $20.00/h" in cost.summary()
    assert any("committed term (6 x 30 days)" in line and "$86,400.00" in line for line in cost.lines())


def test_provisioned_with_an_unknown_price(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, mode="provisioned", commitment="OneMonth"))
    assert cost.serving_per_hour is not None and cost.serving_per_hour.value is None
    assert cost.commitment_total is not None and cost.commitment_total.value is None
    assert "serving PT 1 unit OneMonth unknown" in cost.summary()
    assert any("cannot be deleted before its term ends" in note for note in cost.notes)


def test_on_demand_is_usage_based(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, base_model=NOVA_MICRO, mode="on_demand"))
    assert cost.serving_per_hour is None and cost.serving_per_30_days is None
    assert cost.summary().endswith("serving on-demand (per token)")
    assert any("usage-based" in line for line in cost.lines())


def test_model_without_epoch_count_assumes_one_pass(tmp_path: Path) -> None:
    model_id = "amazon.titan-image-generator-v2:0"
    ft = make_ft(
        tmp_path,
        base_model=model_id,
        hyperparameters={"stepCount": "auto"},
        pricing={model_id: {"training_per_1k_tokens": 0.5}},
    )
    cost = estimate(ft, tokens=4_000)
    assert cost.epochs == 1 and "assumed one pass" in cost.epochs_note
    assert cost.training.value == pytest.approx(2.0)


def test_epoch_count_chosen_by_bedrock_makes_training_unknown(tmp_path: Path) -> None:
    model_id = "amazon.titan-embed-image-v1:0"
    pricing = {model_id: {"training_per_1k_tokens": 0.5}}
    auto = estimate(
        make_ft(tmp_path, base_model=model_id, hyperparameters={"epochCount": "Auto"}, pricing=pricing)
    )
    assert auto.epochs is None and auto.billed_tokens is None
    assert auto.training.value is None and "chosen by Bedrock" in auto.epochs_note
    omitted = estimate(make_ft(tmp_path, base_model=model_id, pricing=pricing))
    assert omitted.training.value is None and "no default documented" in omitted.epochs_note


def test_distillation_says_teacher_inference_is_not_included(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, base_model=NOVA_MICRO, customization_type="DISTILLATION"))
    assert any("teacher model's inference" in note for note in cost.notes)


def test_lines_show_inputs_and_sources(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, mode="provisioned", pricing={HAIKU: {"training_per_1k_tokens": 0.008}})
    lines = estimate(ft, tokens=1_234_567).lines()
    text = "\n".join(lines)
    assert lines[0] == f"Cost estimate for Claude 3 Haiku ({HAIKU}), FINE_TUNING, in USD"
    assert "1,234,567, counted as characters / 6" in text
    assert "2,469,134" in text
    assert f"$0.008  [source: {OVERRIDE_SOURCE}]" in text
    assert "Provisioned Throughput, 1 model unit, no commitment" in text
    assert "set environments.<env>.pricing in cdk.json" in text, "unknown PT price names its source"


@pytest.mark.parametrize("model", CATALOG, ids=[m.model_id for m in CATALOG])
@pytest.mark.parametrize("mode", MODES)
def test_summary_fits_a_stack_description(model: ModelEntry, mode: Mode, tmp_path: Path) -> None:
    pricing = {model.model_id: {"training_per_1k_tokens": 123456.789, "pt_six_months_per_hour": 98765.4321}}
    ft = make_ft(
        tmp_path,
        base_model=model.model_id,
        mode=mode,
        commitment="SixMonths",
        model_units=99,
        pricing=pricing,
    )
    summary = estimate_cost(ft, model, 10**12, TOKEN_ESTIMATE_METHOD).summary()
    assert len(summary) <= 200 and "\n" not in summary
    assert summary.startswith("Est. cost (USD): training ")


def test_training_cost_line_uses_the_default_epochs_and_says_when_the_price_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from finetune.core import cost

    llama = find_model("meta.llama3-1-8b-instruct-v1:0:128k")
    assert llama is not None
    line = cost.training_cost_line(llama, 23_581)
    assert line.startswith("estimated training cost: unknown for 23,581 tokens x 5 epochs")
    monkeypatch.setattr(
        cost,
        "prices_for",
        lambda model, _overrides: prices_for(model, {model.model_id: {"training_per_1k_tokens": 0.01}}),
    )
    # 23,581 tokens x 5 epochs / 1000 x $0.01 = $1.17905
    assert cost.training_cost_line(llama, 23_581).startswith(
        "estimated training cost: $1.18 for 23,581 tokens"
    )
