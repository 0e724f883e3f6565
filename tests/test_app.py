"""app.py: where context comes from, and a bad configuration failing before any construct (or jsii) exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import app as app_module
from finetune.core.config import ConfigError, parse_config
from finetune.core.plan import plan_app
from tests.conftest import PROJECT_ROOT, sample_context


def run_app(context: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run app.py as the CDK CLI does, and report whether aws_cdk (jsii) was ever imported."""
    code = "import sys, app; code = app.main(); print('aws_cdk imported:', 'aws_cdk' in sys.modules); sys.exit(code)"
    environment = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context)}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_context_comes_from_the_cli_variable_then_its_overflow_file_then_cdk_json(tmp_path: Path) -> None:
    assert app_module.read_context({"CDK_CONTEXT_JSON": '{"a": 1}'}) == {"a": 1}
    overflow = tmp_path / "context.json"
    overflow.write_text('{"b": 2}')
    assert app_module.read_context({"CONTEXT_OVERFLOW_LOCATION_ENV": str(overflow)}) == {"b": 2}
    cdk_json = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    assert app_module.read_context({})["fine_tunings"] == cdk_json["fine_tunings"]


def test_an_invalid_configuration_exits_1_listing_every_problem_before_jsii_starts() -> None:
    context = sample_context()
    context["fine_tunings"]["support-assistant"]["hyperparameters"]["epochCount"] = 99
    context["fine_tunings"]["sql-generator"]["base_model"] = "meta.llama3-1-8b-instruct"
    context["environments"]["prod"]["overrides"]["support-assistant"]["serving"]["commitment"] = "SixMonths"
    result = run_app(context)
    assert result.returncode == 1
    assert "aws_cdk imported: False" in result.stdout
    assert "cdk.json: invalid configuration" in result.stderr
    assert "fine_tunings.support-assistant.hyperparameters.epochCount" in result.stderr
    assert "fine_tunings.sql-generator.base_model" in result.stderr
    assert "environments.prod.overrides.support-assistant.serving.commitment" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_data_file_fails_synth_with_file_and_line(tmp_path: Path) -> None:
    context = sample_context()
    source = PROJECT_ROOT / "training_data" / "sql-generator"
    (tmp_path / "sql-generator").mkdir()
    lines = (source / "train.jsonl").read_text().splitlines()
    lines[41] = '{"prompt": "Schema: ...", "completion": ""}'  # line 42: empty completion
    (tmp_path / "sql-generator" / "train.jsonl").write_text("\n".join(lines) + "\n")
    for name in ("validation.jsonl", "evaluation.jsonl"):
        (tmp_path / "sql-generator" / name).write_text((source / name).read_text())
    del context["fine_tunings"]["support-assistant"]
    for environment in context["environments"].values():
        environment["overrides"].pop("support-assistant", None)
    with pytest.raises(ConfigError) as raised:
        plan_app(parse_config(context, tmp_path), tmp_path)
    locations = {error.path for error in raised.value.errors}
    assert locations == {f"{tmp_path.name}/sql-generator/train.jsonl:42"}
    message = str(raised.value)
    assert "completion" in message and "fine_tunings.sql-generator.training_data" in message


def test_the_sample_configuration_plans_every_stack_with_resolved_hyperparameters() -> None:
    plans, warnings = plan_app(
        parse_config(sample_context(), PROJECT_ROOT / "training_data"), PROJECT_ROOT / "training_data"
    )
    by_stack = {plan.config.stack_name: plan for plan in plans}
    assert set(by_stack) == {
        "dev-support-assistant",
        "dev-sql-generator",
        "prod-support-assistant",
        "prod-sql-generator",
    }
    haiku = by_stack["prod-support-assistant"]
    # Catalog defaults fill what the configuration left out; values are strings, as Bedrock expects.
    assert haiku.hyperparameters["epochCount"] == "2"
    assert haiku.hyperparameters["batchSize"] == "8"
    assert set(haiku.hyperparameters) >= {"earlyStoppingThreshold", "earlyStoppingPatience"}
    assert by_stack["dev-support-assistant"].hyperparameters["epochCount"] == "1"
    assert haiku.training.records == 60 and haiku.validation is not None and haiku.validation.records == 36
    assert by_stack["dev-sql-generator"].training.records == 120
    assert warnings == []


def test_summary_table_has_a_row_per_stack_and_aligned_columns() -> None:
    plans, _ = plan_app(
        parse_config(sample_context(), PROJECT_ROOT / "training_data"), PROJECT_ROOT / "training_data"
    )
    table = app_module.summary_table(plans).splitlines()
    assert table[0].split()[:4] == ["stage", "stack", "base", "model"]
    assert len(table) == 5
    assert table[1].startswith("dev    dev-support-assistant")
    assert {line.index("us-west-2") for line in table[1:]} == {table[0].index("region")}
    # The gated sql-generator evaluates its own settings and one candidate before serving.
    gate = table[0].index("gate")
    assert [line[gate:].split()[0] for line in table[1:]] == ["none", "2", "none", "2"]


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, False), (False, False), ("false", False), (True, True), ("true", True), ("True", True)],
)
def test_builtin_cloudformation_validation_is_off_unless_the_context_turns_it_on(
    value: Any, enabled: bool
) -> None:
    context = {} if value is None else {app_module.CLOUDFORMATION_VALIDATION: value}
    assert app_module.cloudformation_validation(context) is enabled


def test_the_projects_own_configuration_is_valid_whatever_it_holds() -> None:
    """What `make synth` deploys: every fine-tuning of cdk.json plans (the tests pin the sample)."""
    context = app_module.read_context({})
    plans, _warnings = plan_app(
        parse_config(context, PROJECT_ROOT / "training_data"), PROJECT_ROOT / "training_data"
    )
    configured = {(env, ft) for env in context["environments"] for ft in context["fine_tunings"]}
    assert {(plan.config.environment.name, plan.config.name) for plan in plans} == configured


class _SynthesizedNothing:
    def synth(self) -> None:
        pass


@pytest.mark.parametrize(("value", "printed"), [(None, False), ("", False), ("0", False), ("1", True)])
def test_the_stack_table_is_printed_only_when_make_synth_asks_for_it(
    value: str | None, printed: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CDK_CONTEXT_JSON", "CONTEXT_OVERFLOW_LOCATION_ENV", app_module.STACK_TABLE):
        monkeypatch.delenv(name, raising=False)
    if value is not None:
        monkeypatch.setenv(app_module.STACK_TABLE, value)
    monkeypatch.setattr(app_module, "create_app", lambda *args, **kwargs: _SynthesizedNothing())
    assert app_module.main() == 0
    err = capsys.readouterr().err
    assert ("stage  stack" in err) is printed
    assert ("dev    dev-support-assistant" in err) is printed


def test_synth_refuses_images_in_local_data_as_the_deploy_would_saying_how_to_ship_them(
    tmp_path: Path,
) -> None:
    """The deploy-time check wants media under media/ of the stack's bucket, whose name synth cannot
    know: synth refuses them (finding 51) instead of passing data every deploy would fail on."""
    image = {"format": "png", "source": {"s3Location": {"uri": "s3://some-bucket/media/router.png"}}}
    records = [
        {
            "schemaVersion": "bedrock-conversation-2024",
            "messages": [
                {"role": "user", "content": [{"image": image}, {"text": f"What is shown ({n})?"}]},
                {"role": "assistant", "content": [{"text": "A router."}]},
            ],
        }
        for n in range(8)
    ]
    (tmp_path / "screens").mkdir()
    (tmp_path / "screens" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    context = {
        "environments": {"dev": {"region": "us-east-1", "notification_emails": ["a@example.com"]}},
        "fine_tunings": {
            "screens": {"base_model": "amazon.nova-lite-v1:0:300k", "training_data": "screens/train.jsonl"}
        },
    }
    with pytest.raises(ConfigError) as raised:
        plan_app(parse_config(context, tmp_path), tmp_path)
    [error] = raised.value.errors
    assert error.path == f"{tmp_path.name}/screens/train.jsonl:1"
    assert "images and videos cannot be deployed from a local file" in error.message
    assert "s3://TRAINING_BUCKET/media/" in error.message and "incoming/" in error.message
