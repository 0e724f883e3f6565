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


def test_cost_prints_inputs_and_unknown_prices_as_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "prod", "support-assistant", "--project", str(SAMPLE_PROJECT)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"prod-support-assistant: FINE_TUNING of {HAIKU} in us-west-2")
    assert "(60 records)" in out
    assert "characters / 6" in out
    assert "unknown" in out and "$0.00" not in out  # never an unknown price shown as zero
    assert "~$1.95 (unverified)" in out


def test_cost_with_a_pricing_override_is_computed_from_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = sample_context()
    context["environments"]["prod"]["pricing"] = {
        HAIKU: {"training_per_1k_tokens": 0.008, "pt_no_commitment_per_hour": 40.0}
    }
    project = project_with(tmp_path, context)
    assert main(["cost", "prod", "support-assistant", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    tokens = training_tokens()
    billed = tokens * 2  # epochCount 2 in prod
    assert f"{billed:,}" in out
    assert f"${billed / 1000 * 0.008:,.2f}" in out
    assert "$40.00" in out and "$28,800.00" in out  # 1 unit x 720 h
    assert "cdk.json pricing override" in out


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
