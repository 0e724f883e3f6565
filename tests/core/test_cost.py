"""Cost arithmetic against hand-computed cases: each price kind, commitment and region, the
on-demand vs provisioned comparison, budgets, and how unknown figures are never a pass."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from finetune.core.catalog import CATALOG, ModelEntry, find_model
from finetune.core.config import (
    Budget,
    CustomizationType,
    DataFile,
    EnvironmentConfig,
    ExpectedTraffic,
    FineTuningConfig,
    HyperparameterValue,
)
from finetune.core.contracts import MODES, Commitment, Mode, ServingSettings
from finetune.core.cost import (
    CostEstimate,
    DataSize,
    budget_problems,
    default_estimate,
    estimate_cost,
    estimate_on,
    training_budget,
    training_cost_line,
)
from finetune.core.formats import TOKEN_ESTIMATE_METHOD
from finetune.core.prices import OVERRIDE, PRICE_LIST_2025, PRICING_PAGE_2026

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
NOVA_LITE = "amazon.nova-lite-v1:0:300k"
LLAMA_8B = "meta.llama3-1-8b-instruct-v1:0:128k"
LLAMA_33 = "meta.llama3-3-70b-instruct-v1:0:128k"
TITAN_IMAGE = "amazon.titan-image-generator-v2:0"
TITAN_EMBED = "amazon.titan-embed-image-v1:0"


def entry(model_id: str) -> ModelEntry:
    found = find_model(model_id)
    assert found is not None
    return found


def make_ft(
    directory: Path,
    *,
    base_model: str = HAIKU,
    region: str = "us-west-2",
    customization_type: CustomizationType = "FINE_TUNING",
    teacher_model: str | None = None,
    hyperparameters: dict[str, HyperparameterValue] | None = None,
    mode: Mode = "none",
    commitment: Commitment = "none",
    model_units: int = 1,
    traffic: ExpectedTraffic | None = None,
    pricing: Mapping[str, Mapping[str, float]] | None = None,
    budget: Budget | None = None,
) -> FineTuningConfig:
    path = directory / "train.jsonl"
    path.write_text("{}\n", encoding="utf-8")
    return FineTuningConfig(
        name="tune",
        environment=EnvironmentConfig(
            name="dev", region=region, allow_commitment=True, pricing=pricing or {}, budget=budget or Budget()
        ),
        base_model=base_model,
        region=region,
        training_data=DataFile("train.jsonl", path),
        customization_type=customization_type,
        teacher_model=teacher_model,
        hyperparameters=hyperparameters or {},
        serving=ServingSettings(mode=mode, model_units=model_units, commitment=commitment),
        expected_traffic=traffic,
    )


def estimate(ft: FineTuningConfig, tokens: int = 1_000_000, records: int = 100) -> CostEstimate:
    return estimate_cost(ft, entry(ft.base_model), DataSize(tokens, records, TOKEN_ESTIMATE_METHOD))


# -- training -------------------------------------------------------------------------------------


def test_training_at_the_list_price_and_the_default_epochs(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path), tokens=1_500_000)
    # 1,500,000 tokens x 2 epochs (catalog default) / 1000 x $0.012 = $36.00
    assert cost.epochs == 2 and cost.billed_tokens == 3_000_000
    assert cost.training.value == pytest.approx(36.0)
    assert cost.training.source == PRICE_LIST_2025 and not cost.training.unverified
    assert cost.training_rate is not None
    assert cost.training_rate.basis == "tokens x 2 epochs x $0.012 per 1k tokens"
    assert "epochCount default of the catalog" in cost.epochs_note


def test_training_uses_the_configured_epochs_and_an_override_wins(tmp_path: Path) -> None:
    ft = make_ft(
        tmp_path, hyperparameters={"epochCount": 5}, pricing={HAIKU: {"training_per_1k_tokens": 0.01}}
    )
    cost = estimate(ft, tokens=200_000)
    # 200,000 x 5 / 1000 x $0.01 = $10.00
    assert cost.training.value == pytest.approx(10.0)
    assert cost.training.source == OVERRIDE
    assert cost.epochs_note == "epochCount from the configuration"


def test_training_in_another_region_of_the_same_model(tmp_path: Path) -> None:
    # Titan Text Express is priced alike in both regions: 100,000 x 5 epochs / 1000 x $0.008 = $4.00
    for region in ("us-east-1", "us-west-2"):
        cost = estimate(
            make_ft(tmp_path, base_model="amazon.titan-text-express-v1:0:8k", region=region), 100_000
        )
        assert cost.training.value == pytest.approx(4.0), region


def test_a_region_without_prices_makes_training_unknown_and_names_the_override(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, region="eu-central-1"))
    assert cost.training.value is None and cost.training.render() == "unknown"
    assert cost.training_unknown == (
        f"the price training_per_1k_tokens of {HAIKU} in eu-central-1 is unknown: "
        f"set environments.dev.pricing.{HAIKU}.training_per_1k_tokens"
    )
    assert "training unknown" in cost.summary()


def test_image_generator_training_is_steps_times_batch_images(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model=TITAN_IMAGE, hyperparameters={"stepCount": 500, "batchSize": 64})
    cost = estimate(ft, tokens=4_000, records=1000)
    # $0.005 per image x 500 steps x 64 images per step = $160.00 (the pricing page's example)
    assert cost.training.value == pytest.approx(160.0)
    assert cost.billed_tokens is None
    auto = estimate(make_ft(tmp_path, base_model=TITAN_IMAGE, hyperparameters={"stepCount": "auto"}))
    assert auto.training.value is None and "not known before the job" in auto.training_unknown


def test_embeddings_training_is_records_times_epochs_images(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model=TITAN_EMBED, hyperparameters={"epochCount": 3})
    cost = estimate(ft, records=10_000)
    # 10,000 images x 3 epochs x $0.0002 = $6.00
    assert cost.training.value == pytest.approx(6.0)
    omitted = estimate(make_ft(tmp_path, base_model=TITAN_EMBED))
    assert omitted.training.value is None and "no default documented" in omitted.epochs_note
    chosen = estimate(make_ft(tmp_path, base_model=TITAN_EMBED, hyperparameters={"epochCount": "Auto"}))
    assert chosen.training.value is None and "chosen by Bedrock" in chosen.epochs_note


def test_distillation_adds_the_teacher_reading_the_prompts_and_says_it_is_a_lower_bound(
    tmp_path: Path,
) -> None:
    ft = make_ft(
        tmp_path,
        base_model=NOVA_MICRO,
        region="us-east-1",
        customization_type="DISTILLATION",
        teacher_model="amazon.nova-pro-v1:0",
    )
    cost = estimate(ft, tokens=1_000_000)
    # student: 1,000,000 x 2 epochs / 1000 x $0.001 = $2.00; teacher input: 1,000,000 / 1000 x $0.0008 = $0.80
    assert cost.training.value == pytest.approx(2.80)
    assert any(note.startswith("Distillation: a lower bound.") for note in cost.notes)


# -- storage and serving ---------------------------------------------------------------------------


def test_serving_none_is_a_real_zero_and_storage_is_the_monthly_total(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, mode="none"))
    assert cost.serving_per_30_days.value == 0.0 and cost.serving_price is None
    assert cost.storage.value == 20.0  # Claude 3 Haiku's storage SKU
    assert cost.per_30_days.value == 20.0
    assert cost.comparison is None
    assert cost.summary().endswith("serving none ($0)")


def test_provisioned_no_commitment_per_hour_and_per_30_days(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, mode="provisioned", model_units=2))
    # 2 units x $132 = $264 per hour; x 720 h = $190,080 per 30 days
    assert cost.serving_per_hour is not None and cost.serving_per_hour.value == pytest.approx(264.0)
    assert cost.serving_per_30_days.value == pytest.approx(190_080.0)
    assert cost.per_30_days.value == pytest.approx(190_100.0)
    assert cost.commitment_total is None
    assert "serving PT 2 units $264.00/h" in cost.summary()
    assert any("bills every hour until it is deleted" in note for note in cost.notes)


@pytest.mark.parametrize(("commitment", "rate", "months"), [("OneMonth", 120.0, 1), ("SixMonths", 66.0, 6)])
def test_provisioned_commitments(tmp_path: Path, commitment: Commitment, rate: float, months: int) -> None:
    cost = estimate(make_ft(tmp_path, mode="provisioned", commitment=commitment))
    assert cost.serving_price is not None and cost.serving_price.value == rate
    assert cost.serving_per_30_days.value == pytest.approx(rate * 720)
    assert cost.commitment_total is not None and cost.commitment_total.value == pytest.approx(
        rate * 720 * months
    )
    assert any("cannot be deleted before its term ends" in note for note in cost.notes)


def test_on_demand_without_traffic_is_usage_based_and_states_the_break_even(tmp_path: Path) -> None:
    cost = estimate(make_ft(tmp_path, base_model=NOVA_MICRO, region="us-east-1", mode="on_demand"))
    assert cost.serving_per_hour is None and cost.serving_per_30_days.value is None
    assert cost.summary().endswith("serving on-demand (per token)")
    comparison = cost.comparison
    assert comparison is not None and comparison.on_demand is None
    # one no-commitment unit: $60.50 x 720 = $43,560; / $0.000035 per 1k in = 1,244,571,428,571 tokens
    assert comparison.provisioned.value == pytest.approx(43_560.0)
    assert comparison.break_even() == (1_244_571_428_571, 311_142_857_143)
    assert comparison.verdict() == "depends on traffic: set serving.expected_tokens_per_month to compare"
    text = "\n".join(cost.lines())
    assert "usage-based: set serving.expected_tokens_per_month for a figure" in text
    assert "1,244,571,428,571 input tokens or 311,142,857,143 output tokens per 30 days" in text


def test_on_demand_at_the_expected_traffic_is_compared_with_provisioned_throughput(tmp_path: Path) -> None:
    traffic = ExpectedTraffic(input_tokens=30_000_000, output_tokens=10_000_000)
    cost = estimate(
        make_ft(tmp_path, base_model=NOVA_LITE, region="us-east-1", mode="on_demand", traffic=traffic)
    )
    # 30,000k x $0.00006 + 10,000k x $0.00024 = $1.80 + $2.40 = $4.20 per 30 days
    assert cost.serving_per_30_days.value == pytest.approx(4.20)
    assert cost.per_30_days.value == pytest.approx(6.15)  # + $1.95 storage
    assert cost.comparison is not None
    assert cost.comparison.verdict() == "on-demand is cheaper by $43,555.80 per 30 days"
    assert "serving on-demand $4.20/30d" in cost.summary()


def test_provisioned_is_named_cheaper_when_the_traffic_is_large(tmp_path: Path) -> None:
    traffic = ExpectedTraffic(input_tokens=10**12, output_tokens=0)
    cost = estimate(
        make_ft(tmp_path, base_model=NOVA_MICRO, region="us-east-1", mode="provisioned", traffic=traffic)
    )
    # on demand: 10^9 x $0.000035 = $35,000; provisioned: $43,560 -> no: provisioned costs $8,560 more
    assert cost.comparison is not None
    on_demand = cost.comparison.on_demand
    assert on_demand is not None and on_demand.value == pytest.approx(35_000.0)
    assert cost.comparison.verdict() == "on-demand is cheaper by $8,560.00 per 30 days"
    bigger = estimate(
        make_ft(
            tmp_path,
            base_model=NOVA_MICRO,
            region="us-east-1",
            mode="provisioned",
            traffic=ExpectedTraffic(input_tokens=2 * 10**12, output_tokens=0),
        )
    )
    assert bigger.comparison is not None
    assert bigger.comparison.verdict() == (
        "provisioned throughput (1 unit, no commitment) is cheaper by $26,440.00 per 30 days"
    )


def test_no_comparison_where_the_model_is_not_served_on_demand(tmp_path: Path) -> None:
    assert estimate(make_ft(tmp_path, mode="provisioned")).comparison is None
    llama = estimate(make_ft(tmp_path, base_model=LLAMA_33, mode="on_demand"))
    assert llama.comparison is not None
    assert llama.comparison.verdict() == "cannot be compared: a price is unknown"


def test_lines_show_inputs_and_every_source(tmp_path: Path) -> None:
    lines = estimate(make_ft(tmp_path, base_model=LLAMA_8B, mode="provisioned"), tokens=1_234_567).lines()
    text = "\n".join(lines)
    assert (
        lines[0] == f"Cost estimate for Llama 3.1 8B Instruct ({LLAMA_8B}), FINE_TUNING, in us-west-2, in USD"
    )
    assert "1,234,567, counted as characters / 6" in text
    assert "6,172,835" in text  # x 5 epochs
    assert f"$0.00149  [source: {PRICING_PAGE_2026.cite()}]" in text
    assert "Provisioned Throughput, 1 model unit, no commitment" in text


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
    summary = estimate_cost(ft, model, DataSize(10**12, 10**9, TOKEN_ESTIMATE_METHOD)).summary()
    assert len(summary) <= 200 and "\n" not in summary
    assert summary.startswith("Est. cost (USD): training ")


def test_training_cost_line_prices_the_default_hyperparameters() -> None:
    # 23,581 tokens x 5 epochs / 1000 x $0.00149 = $0.17568
    estimate = default_estimate(entry(LLAMA_8B), "us-west-2", DataSize(23_581, 50, TOKEN_ESTIMATE_METHOD))
    line = training_cost_line(estimate, "default hyperparameters")
    assert line.startswith(
        "estimated training cost in us-west-2: $0.1757 (tokens x 5 epochs x $0.00149 per 1k tokens; "
        "default hyperparameters)"
    )


# -- another model ---------------------------------------------------------------------------------


def test_the_same_data_on_a_cheaper_model(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, base_model=LLAMA_8B, hyperparameters={"epochCount": 3, "learningRate": 0.0001})
    data = DataSize(1_000_000, 100, TOKEN_ESTIMATE_METHOD)
    other = estimate_on(ft, data, entry(LLAMA_8B), entry("meta.llama3-2-1b-instruct-v1:0:128k"))
    # 1,000,000 x 3 epochs / 1000 x $0.0005 = $1.50 (the 8B costs $4.47)
    assert other.training.value == pytest.approx(1.50)
    assert other.model_id == "meta.llama3-2-1b-instruct-v1:0:128k" and other.region == "us-west-2"
    assert other.notes[:1] != ("",)


def test_another_model_elsewhere_and_with_other_hyperparameters_says_what_changed(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, hyperparameters={"epochCount": 2, "batchSize": 8, "learningRateMultiplier": 1.0})
    data = DataSize(1_000_000, 100, TOKEN_ESTIMATE_METHOD)
    other = estimate_on(ft, data, entry(HAIKU), entry(NOVA_MICRO))
    assert other.region == "us-east-1"
    assert "Nova Micro is not customizable in us-west-2: priced in us-east-1" in other.notes
    assert "Nova Micro takes no batchSize: left out" in other.notes
    assert any("it would need converting" in note for note in other.notes)
    # epochCount 2 is kept: 1,000,000 x 2 / 1000 x $0.001 = $2.00
    assert other.training.value == pytest.approx(2.0)


# -- budgets -----------------------------------------------------------------------------------------


def problems(ft: FineTuningConfig, tokens: int = 1_000_000) -> dict[str, str]:
    found = budget_problems(ft.environment, [(ft.name, estimate(ft, tokens))])
    return {problem.path: problem.message for problem in found}


def test_a_training_estimate_over_budget_names_the_field_and_both_figures(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, budget=Budget(training_usd=20.0))
    # 1,000,000 x 2 / 1000 x $0.012 = $24.00
    assert problems(ft) == {
        "environments.dev.budget.training_usd": (
            "tune: estimated training $24.00 (tokens x 2 epochs x $0.012 per 1k tokens) exceeds the budget "
            "of $20.00 by $4.00: lower epochCount, train on less data, or try a cheaper model "
            "(python -m finetune cost dev tune --model ID), or raise the budget"
        )
    }
    assert problems(ft, tokens=500_000) == {}  # $12.00


def test_an_unknown_price_fails_the_check_and_names_the_override(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, region="eu-central-1", budget=Budget(training_usd=1000.0))
    message = problems(ft)["environments.dev.budget.training_usd"]
    assert message.startswith("tune: estimated training is unknown, and the budget check needs it:")
    assert f"set environments.dev.pricing.{HAIKU}.training_per_1k_tokens" in message
    overridden = make_ft(
        tmp_path,
        region="eu-central-1",
        budget=Budget(training_usd=1000.0),
        pricing={HAIKU: {"training_per_1k_tokens": 0.012}},
    )
    assert problems(overridden) == {}


def test_serving_budget_for_provisioned_and_on_demand(tmp_path: Path) -> None:
    pt = make_ft(tmp_path, mode="provisioned", budget=Budget(serving_usd_per_month=90_000.0))
    assert (
        "estimated serving per 30 days $95,040.00 (1 unit(s) x 720 h) exceeds the budget of $90,000.00"
        in (problems(pt)["environments.dev.budget.serving_usd_per_month"])
    )
    on_demand = make_ft(
        tmp_path,
        base_model=NOVA_MICRO,
        region="us-east-1",
        mode="on_demand",
        budget=Budget(serving_usd_per_month=10.0),
    )
    assert problems(on_demand)["environments.dev.budget.serving_usd_per_month"].endswith(
        "on-demand bills per token: set fine_tunings.tune.serving.expected_tokens_per_month"
    )


def test_the_environment_total_adds_serving_and_storage_of_every_stack(tmp_path: Path) -> None:
    budget = Budget(total_usd_per_month=30.0)
    one = make_ft(tmp_path, budget=budget)  # $20.00 storage
    two = make_ft(tmp_path, base_model=LLAMA_8B, budget=budget)  # $1.95 storage
    estimates = [("one", estimate(one)), ("two", estimate(two)), ("three", estimate(one))]
    found = budget_problems(one.environment, estimates)
    assert [(p.path, p.message) for p in found] == [
        (
            "environments.dev.budget.total_usd_per_month",
            "serving and storage of the environment are estimated at $41.95 per 30 days (one $20.00, two $1.95, "
            "three $20.00), over the budget of $30.00 by $11.95",
        )
    ]
    assert budget_problems(one.environment, estimates[:2]) == []


def test_the_runtime_budget_carries_the_rate_synth_used(tmp_path: Path) -> None:
    ft = make_ft(tmp_path, budget=Budget(training_usd=20.0))
    cost = estimate(ft, tokens=500_000)
    budget = training_budget(ft.environment, cost)
    assert budget is not None and budget.field == "environments.dev.budget.training_usd"
    assert budget.rate.cost(500_000, 100) == pytest.approx(cost.training.value or -1)
    assert budget.excess(500_000, 100) is None
    assert budget.excess(1_000_000, 200) == (
        "the estimated training cost $24.00 (1,000,000 estimated tokens in 200 records; tokens x 2 epochs x "
        "$0.012 per 1k tokens) exceeds environments.dev.budget.training_usd = $20.00 by $4.00"
    )
    assert training_budget(make_ft(tmp_path).environment, cost) is None
