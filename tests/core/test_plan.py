"""finetune.core.plan: what synth decides per stack, and what it warns about."""

from __future__ import annotations

import copy
import json

import pytest

from finetune.core.config import ConfigError, parse_config
from finetune.core.plan import plan_app
from tests.conftest import DATA_ROOT, PROJECT_ROOT, sample_context

ON_DEMAND_PROJECT = PROJECT_ROOT / "tests" / "fixtures" / "on_demand"
ON_DEMAND_DATA = ON_DEMAND_PROJECT / "training_data"


def plan_warnings(context: dict[str, object]) -> list[str]:
    _plans, warnings = plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    return warnings


def test_serving_settings_without_effect_and_models_that_may_be_gone_are_warned_about() -> None:
    context = copy.deepcopy(sample_context())
    context["fine_tunings"]["support-assistant"]["serving"] = {"mode": "none", "model_units": 2}
    context["fine_tunings"]["sql-generator"]["base_model"] = "amazon.titan-text-express-v1:0:8k"
    warnings = plan_warnings(context)
    assert (
        "fine_tunings.support-assistant.serving.model_units: 2 has no effect with serving.mode 'none' "
        "(it applies to provisioned throughput only)"
    ) in warnings
    assert any(
        warning.startswith("fine_tunings.sql-generator.base_model: Titan Text G1 - Express is dropped")
        for warning in warnings
    ), warnings
    # Once per environment's configuration is enough: a shared setting is warned about once.
    assert len(warnings) == len(set(warnings))


def test_a_budget_exceeded_fails_the_plan_with_its_path_and_both_figures() -> None:
    context = copy.deepcopy(sample_context())
    context["environments"]["prod"]["budget"] = {"serving_usd_per_month": 1000}
    with pytest.raises(ConfigError) as raised:
        plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    [error] = raised.value.errors
    assert error.path == "environments.prod.budget.serving_usd_per_month"
    assert error.message.startswith(
        "support-assistant: estimated serving per 30 days $95,040.00 (1 unit(s) x 720 h) exceeds the budget of "
        "$1,000.00 by $94,040.00"
    )
    plans, _ = plan_app(parse_config(context, DATA_ROOT), DATA_ROOT, check_budgets=False)
    assert len(plans) == 4, "the cost command plans without failing on budgets"


def test_a_budget_needing_an_unknown_price_fails_and_an_override_fixes_it() -> None:
    """Llama 3.3 70B has no published Provisioned Throughput price."""
    context = json.loads((ON_DEMAND_PROJECT / "cdk.json").read_text())["context"]
    context["fine_tunings"]["support-assistant"]["serving"] = {"mode": "provisioned"}
    context["environments"]["dev"]["budget"] = {"serving_usd_per_month": 50_000}
    with pytest.raises(ConfigError) as raised:
        plan_app(parse_config(context, ON_DEMAND_DATA), ON_DEMAND_DATA)
    [error] = raised.value.errors
    assert error.path == "environments.dev.budget.serving_usd_per_month"
    assert error.message == (
        "support-assistant: estimated serving per 30 days is unknown, and the budget check needs it: the price "
        "pt_no_commitment_per_hour of meta.llama3-3-70b-instruct-v1:0:128k in us-west-2 is unknown: set "
        "environments.dev.pricing.meta.llama3-3-70b-instruct-v1:0:128k.pt_no_commitment_per_hour"
    )
    context["environments"]["dev"]["pricing"] = {
        "meta.llama3-3-70b-instruct-v1:0:128k": {"pt_no_commitment_per_hour": 60.0}
    }
    [plan], _ = plan_app(parse_config(context, ON_DEMAND_DATA), ON_DEMAND_DATA)
    assert plan.cost.serving_per_30_days.value == pytest.approx(43_200.0)  # $60 x 720 h, within $50,000


def test_the_budget_and_the_estimates_are_recorded_for_reviewers() -> None:
    context = copy.deepcopy(sample_context())
    context["environments"]["prod"]["budget"] = {"training_usd": 10, "total_usd_per_month": 100_000}
    del context["environments"]["dev"]["budget"]
    plans, _ = plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    prod = next(p for p in plans if p.config.stack_name == "prod-support-assistant")
    assert prod.training_budget is not None and prod.training_budget.limit_usd == 10.0
    assert prod.training_budget.field == "environments.prod.budget.training_usd"
    assert prod.describe()["budget"] == {
        "environment": "prod",
        "limits": {"training_usd": "$10.00", "total_usd_per_month": "$100,000.00"},
        "estimates": {
            "training": prod.cost.training.render(),
            "servingPer30Days": "$95,040.00",
            "servingAndStoragePer30Days": "$95,060.00",
        },
    }
    dev = next(p for p in plans if p.config.stack_name == "dev-support-assistant")
    assert "budget" not in dev.describe() and dev.training_budget is None
