"""finetune.core.plan: what synth decides per stack, and what it warns about."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetune.core.config import ConfigError, parse_config
from finetune.core.plan import plan_app
from finetune.core.prices import base_inference
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
    # Titan's on-demand price is not listed: the evaluation budget (base model's answers) could not be checked.
    del context["environments"]["prod"]["budget"]["evaluation_usd"]
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


# Evaluation and candidates -----------------------------------------------------------------------


def sql_generator(context: dict[str, Any]) -> dict[str, Any]:
    return context["fine_tunings"]["sql-generator"]  # type: ignore[no-any-return]


def plan_errors(context: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    return {error.path: error.message for error in raised.value.errors}


def test_the_sample_plans_a_gate_and_a_candidate_per_environment() -> None:
    plans, _ = plan_app(parse_config(sample_context(), DATA_ROOT), DATA_ROOT)
    prod = next(p for p in plans if p.config.environment.name == "prod" and p.config.name == "sql-generator")
    assert prod.evaluation is not None and prod.evaluation.data.records == 24
    [gentle] = prod.candidates
    assert gentle.config.trial_name == "gentle" and gentle.evaluation == prod.evaluation
    assert gentle.hyperparameters["learningRate"] == "5e-05" and gentle.hyperparameters["epochCount"] == "2"
    assert gentle.job_spec.job_name != prod.job_spec.job_name
    assert gentle.job_spec.custom_model_name != prod.job_spec.custom_model_name
    described = prod.describe()
    assert described["candidates"]["gentle"]["jobName"] == gentle.job_spec.job_name
    assert described["evaluation"]["gate"] == {
        "minimums": {"Builtin.Correctness": "0.7"},
        "maximums": {},
        "beatBase": True,
    }
    assert set(described["evaluation"]["costPerTrial"]) == {"main", "gentle"}


def test_a_trials_cost_is_its_temporary_endpoint_base_and_judge_inference() -> None:
    plans, _ = plan_app(parse_config(sample_context(), DATA_ROOT), DATA_ROOT)
    prod = next(p for p in plans if p.config.environment.name == "prod" and p.config.name == "sql-generator")
    cost = prod.evaluation_cost
    assert cost is not None and prod.evaluation is not None
    # Llama 3.1 8B has no on-demand deployment: one no-commitment PT unit for max_hours (8 h).
    hourly = prod.cost.prices.pt_per_hour("none").value
    assert hourly is not None and cost.endpoint.value == pytest.approx(8 * hourly)
    assert cost.endpoint_how == "1 no-commitment PT unit for at most 8 h (max_hours)"
    tokens, prompts = prod.evaluation.data.estimated_tokens, prod.evaluation.data.records
    responses = prompts * 512
    # beat_base: the base model answers once; the judge (Nova Pro) scores 2 metrics of both models.
    base_price = base_inference(prod.config.base_model)
    judge_price = base_inference("us.amazon.nova-pro-v1:0")
    assert (
        base_price.input_per_1k_tokens.value is not None and judge_price.input_per_1k_tokens.value is not None
    )
    assert (
        base_price.output_per_1k_tokens.value is not None
        and judge_price.output_per_1k_tokens.value is not None
    )
    assert cost.base.value == pytest.approx(
        tokens / 1000 * base_price.input_per_1k_tokens.value
        + responses / 1000 * base_price.output_per_1k_tokens.value
    )
    assert cost.judge.value == pytest.approx(
        2 * 2 * (tokens + responses) / 1000 * judge_price.input_per_1k_tokens.value
        + 2 * 2 * prompts * 300 / 1000 * judge_price.output_per_1k_tokens.value
    )
    parts = [cost.endpoint.value, cost.base.value, cost.judge.value]
    assert None not in parts and cost.total.value == pytest.approx(sum(p for p in parts if p is not None))


def test_a_candidate_on_a_model_of_another_data_format_is_rejected_with_the_reason() -> None:
    context = copy.deepcopy(sample_context())
    sql_generator(context)["candidates"] = {"nova": {"base_model": "amazon.nova-micro-v1:0:128k"}}
    errors = plan_errors(context)
    message = errors["fine_tunings.sql-generator.candidates.nova.base_model"]
    assert message.startswith(
        "Nova Micro trains on bedrock-conversation-2024 data, but the fine-tuning's data"
    )
    assert "prompt-completion format" in message and "no conversion between the two is documented" in message


def test_a_candidate_that_trains_what_the_main_trial_trains_is_rejected() -> None:
    context = copy.deepcopy(sample_context())
    sql_generator(context)["candidates"] = {"same": {"hyperparameters": {"epochCount": 3}}}
    context["environments"]["dev"]["overrides"].pop("sql-generator")
    errors = plan_errors(context)
    assert errors["fine_tunings.sql-generator.candidates.same"].startswith(
        "trains exactly what 'main' trains"
    )


def test_a_candidates_hyperparameters_are_checked_against_its_own_model() -> None:
    context = copy.deepcopy(sample_context())
    sql_generator(context)["candidates"] = {"hot": {"hyperparameters": {"learningRate": 5}}}
    errors = plan_errors(context)
    assert any(
        path == "fine_tunings.sql-generator.candidates.hot.hyperparameters.learningRate" for path in errors
    ), errors


def test_an_evaluation_dataset_error_is_reported_at_its_file_and_line(tmp_path: Path) -> None:
    data_root = tmp_path / "training_data"
    shutil.copytree(DATA_ROOT, data_root)
    (data_root / "sql-generator" / "evaluation.jsonl").write_text('{"prompt": "p"}\n{"promt": "q"}\n')
    with pytest.raises(ConfigError) as raised:
        plan_app(parse_config(sample_context(), data_root), data_root)
    messages = [str(error) for error in raised.value.errors]
    assert (
        "training_data/sql-generator/evaluation.jsonl:2: unknown key 'promt'; accepted: prompt, referenceResponse, "
        "category (data of fine_tunings.sql-generator.evaluation.dataset)"
    ) in messages, messages


def test_a_candidate_over_the_training_budget_fails_with_its_name() -> None:
    context = copy.deepcopy(sample_context())
    sql_generator(context)["candidates"] = {"long": {"hyperparameters": {"epochCount": 10}}}
    context["environments"]["prod"]["budget"]["training_usd"] = 0.2
    errors = plan_errors(context)
    message = errors["environments.prod.budget.training_usd"]
    assert message.startswith("sql-generator (candidate long): estimated training"), message


def test_a_provisioned_throughput_without_a_published_price_is_warned_about() -> None:
    """Llama 3.3 70B has no published Provisioned Throughput price (finding 59)."""
    context = json.loads((ON_DEMAND_PROJECT / "cdk.json").read_text())["context"]
    context["fine_tunings"]["support-assistant"]["serving"] = {"mode": "provisioned"}
    _plans, warnings = plan_app(parse_config(context, ON_DEMAND_DATA), ON_DEMAND_DATA)
    assert (
        "fine_tunings.support-assistant.serving.commitment: no published price for a 'none' provisioned "
        "throughput of Llama 3.3 70B Instruct in us-west-2, so its cost shows as unknown; "
        "environments.dev.pricing.meta.llama3-3-70b-instruct-v1:0:128k.pt_no_commitment_per_hour sets one"
    ) in warnings
    context["environments"]["dev"]["pricing"] = {
        "meta.llama3-3-70b-instruct-v1:0:128k": {"pt_no_commitment_per_hour": 50.0}
    }
    _plans, warnings = plan_app(parse_config(context, ON_DEMAND_DATA), ON_DEMAND_DATA)
    assert not any("no published price" in warning for warning in warnings)


def test_a_trial_over_the_evaluation_budget_fails_with_its_path_and_both_figures() -> None:
    context = copy.deepcopy(sample_context())
    context["environments"]["prod"]["budget"]["evaluation_usd"] = 100
    with pytest.raises(ConfigError) as raised:
        plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    main, gentle = (
        e.message for e in raised.value.errors if e.path == "environments.prod.budget.evaluation_usd"
    )
    assert "(trial gentle)" in gentle
    message = main
    assert message.startswith(
        "sql-generator (trial main): estimated evaluation per trial, at most, $192.15 (1 no-commitment PT unit "
        "for at most 8 h (max_hours)) exceeds the budget of $100.00 by $92.15: lower evaluation.max_hours"
    ), message
    # Four hours fit: the temporary endpoint is what the budget holds.
    sql_generator(context)["evaluation"]["max_hours"] = 4
    plans, _ = plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    prod = next(p for p in plans if p.config.stack_name == "prod-sql-generator")
    assert prod.describe()["budget"]["estimates"]["evaluationPerTrial"] == {
        "main": "$96.15",
        "gentle": "$96.15",
    }


def test_an_evaluation_budget_that_needs_an_unknown_price_fails() -> None:
    context = copy.deepcopy(sample_context())
    context["environments"]["prod"]["budget"]["evaluation_usd"] = 1000
    sql_generator(context)["evaluation"]["judge_model"] = "anthropic.claude-haiku-4-5-20251001-v1:0"
    from finetune.core.prices import base_inference

    # The catalog lists no on-demand price for Claude Haiku 4.5 (a judge the service offers).
    assert base_inference("anthropic.claude-haiku-4-5-20251001-v1:0").input_per_1k_tokens.value is None
    errors = plan_errors(context)
    assert errors["environments.prod.budget.evaluation_usd"].endswith(
        "is unknown, and the budget check needs it: the judge's price is unknown: a pricing override of "
        "that model sets it"
    )
