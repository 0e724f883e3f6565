"""`python -m finetune cost ENV FINE_TUNING`: the estimate with its inputs; exit codes 0, 1, 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune.cli.main import main
from tests.conftest import PROJECT_ROOT, SAMPLE_PROJECT, sample_context

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"


def project_with(tmp_path: Path, context: dict[str, object]) -> Path:
    shutil.copytree(PROJECT_ROOT / "training_data", tmp_path / "training_data")
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "unused", "context": context}))
    return tmp_path


def training_tokens() -> int:
    """The token estimate the validator makes of the sample training file."""
    from finetune.core import catalog, dataset

    model = catalog.find_model(HAIKU)
    assert model is not None
    limits = model.dataset_limits("FINE_TUNING")
    assert limits is not None
    report = dataset.validate_file(
        PROJECT_ROOT / "training_data/support-assistant/train.jsonl", limits=limits
    )
    return report.estimated_tokens


def test_cost_prints_inputs_and_sourced_list_prices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "prod", "support-assistant", "--project", str(SAMPLE_PROJECT)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"prod-support-assistant: FINE_TUNING of {HAIKU} in us-west-2")
    assert "(60 records)" in out
    assert "characters / 6" in out
    tokens = training_tokens()
    billed = tokens * 2  # epochCount 2 in prod
    assert f"billed tokens        {billed:,}" in out
    # $0.012 per 1k tokens (the Price List API)
    assert f"training (one job)   ${billed / 1000 * 0.012:.4f}" in out
    assert "$0.012  [source: AWS Price List API, service AmazonBedrock, https://pricing.us-east-1" in out
    assert "per 30 days (720 h)  $95,040.00" in out  # 1 unit x $132 x 720 h


def test_cost_with_a_pricing_override_uses_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    context = sample_context()
    context["environments"]["prod"]["pricing"] = {
        HAIKU: {"training_per_1k_tokens": 0.008, "pt_no_commitment_per_hour": 40.0}
    }
    project = project_with(tmp_path, context)
    assert main(["cost", "prod", "support-assistant", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    billed = training_tokens() * 2
    assert f"${billed / 1000 * 0.008:.4f}" in out
    assert "$40.00" in out and "$28,800.00" in out  # 1 unit x 720 h
    assert "[source: cdk.json pricing override]" in out


def test_cost_without_arguments_tables_every_stack_with_environment_totals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["cost", "--project", str(SAMPLE_PROJECT)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ENV",
        "FINE-TUNING",
        "MODEL",
        "REGION",
        "TRAINING",
        "STORAGE/MO",
        "SERVING/30D",
        "SERVING",
        "TOTAL/30D",
    ]
    rows = [line.split() for line in lines[1:5]]
    assert [(row[0], row[1]) for row in rows] == [
        ("dev", "support-assistant"),
        ("dev", "sql-generator"),
        ("prod", "support-assistant"),
        ("prod", "sql-generator"),
    ]
    prod_haiku = rows[2]
    assert prod_haiku[5:] == ["$20.00", "$95,040.00", "PT", "1u", "$95,060.00"]
    assert any(line.startswith("  prod: training ") and "$95,061.95 per 30 days" in line for line in lines)


def test_cost_over_budget_lists_what_synth_would_refuse_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = sample_context()
    context["environments"]["prod"]["budget"] = {"serving_usd_per_month": 1000, "training_usd": 100}
    project = project_with(tmp_path, context)
    assert main(["cost", "--project", str(project)]) == 1
    out = capsys.readouterr().out
    assert "budget: training_usd $100.00, serving_usd_per_month $1,000.00" in out
    assert (
        "  environments.prod.budget.serving_usd_per_month: support-assistant: estimated serving per 30 days "
        "$95,040.00 (1 unit(s) x 720 h) exceeds the budget of $1,000.00 by $94,040.00"
    ) in out


def test_cost_on_another_model(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["cost", "dev", "sql-generator", "--model", "meta.llama3-2-1b-instruct-v1:0:128k"]
    assert main([*args, "--project", str(SAMPLE_PROJECT)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "dev-sql-generator: the same data and hyperparameters on meta.llama3-2-1b-instruct-v1:0:128k "
        "instead of meta.llama3-1-8b-instruct-v1:0:128k"
    )
    assert "price per 1k tokens  $0.0005" in out
    assert "Configured model for comparison: Est. cost (USD): training $" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "dev"], "give both ENV and FINE_TUNING, or neither"),
        (["cost", "--model", "x"], "--model needs ENV and FINE_TUNING"),
        (["cost", "dev", "sql-generator", "--model", "llama-nope"], "unknown model id 'llama-nope'"),
    ],
)
def test_cost_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--project", str(SAMPLE_PROJECT)]) == 2
    assert message in capsys.readouterr().err


def test_cost_of_an_unknown_stack_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "prod", "nope", "--project", str(SAMPLE_PROJECT)]) == 2
    assert "known: dev support-assistant" in capsys.readouterr().err


def test_cost_without_a_project_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "dev", "support-assistant", "--project", str(tmp_path)]) == 2
    assert "no cdk.json" in capsys.readouterr().err


def test_cost_of_an_invalid_configuration_lists_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = sample_context()
    context["fine_tunings"]["support-assistant"]["hyperparameters"]["batchSize"] = 1000
    project = project_with(tmp_path, context)
    assert main(["cost", "dev", "support-assistant", "--project", str(project)]) == 1
    err = capsys.readouterr().err
    assert "fine_tunings.support-assistant.hyperparameters.batchSize" in err


def test_cost_of_a_gated_fine_tuning_shows_its_candidates_and_what_each_trial_costs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from finetune.core.config import parse_config
    from finetune.core.plan import plan_app
    from tests.conftest import DATA_ROOT

    plans, _ = plan_app(parse_config(sample_context(), DATA_ROOT), DATA_ROOT)
    plan = next(p for p in plans if p.config.stack_name == "prod-sql-generator")
    assert main(["cost", "prod", "sql-generator", "--project", str(SAMPLE_PROJECT)]) == 0
    out = capsys.readouterr().out
    [gentle] = plan.candidates
    assert f"  Candidate gentle (meta.llama3-1-8b-instruct-v1:0:128k): {gentle.cost.summary()}" in out
    assert "  Evaluation gate (24 prompts, us.amazon.nova-pro-v1:0), per trial, at most:" in out
    for trial in plan.trials:
        cost = trial.evaluation_cost
        assert cost is not None
        block = "\n".join([f"    {trial.config.trial_name}:", *(f"      {line}" for line in cost.lines())])
        assert block in out
    # The overview trains every trial's job: the gated fine-tuning's row counts both.
    assert main(["cost", "--project", str(SAMPLE_PROJECT)]) == 0
    row = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("prod  sql-generator")
    )
    both = plan.cost.training.value + gentle.cost.training.value  # type: ignore[operator]
    assert f"${both:.4f} (2 jobs)" in row
    # Not gated: neither section.
    assert main(["cost", "prod", "support-assistant", "--project", str(SAMPLE_PROJECT)]) == 0
    assert "Evaluation gate" not in capsys.readouterr().out
