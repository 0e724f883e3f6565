"""`python -m finetune whoami [ENV]` and the Makefile targets that need AWS credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from finetune.cli.aws_access import NO_CREDENTIALS
from finetune.cli.main import main
from tests.conftest import PROJECT_ROOT, SAMPLE_PROJECT, sample_context

MOTO_ACCOUNT = "123456789012"


def without_credentials(tmp_path: Path) -> dict[str, str]:
    """An environment in which no credential provider finds anything (no keys, files, metadata)."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return {
        **kept,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in without_credentials(tmp_path).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


def test_whoami_prints_the_account_and_identity(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whoami", "dev", "--project", str(SAMPLE_PROJECT)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"AWS credentials: account {MOTO_ACCOUNT}, arn:aws:")
    assert out.rstrip().endswith("(STS in us-west-2)")


def test_whoami_without_an_environment_needs_no_cdk_json(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["whoami", "--project", str(tmp_path)]) == 0
    assert f"account {MOTO_ACCOUNT}" in capsys.readouterr().out


def test_credentials_of_another_account_than_cdk_json_exit_1(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = sample_context()
    context["environments"]["prod"]["account"] = "210987654321"
    (tmp_path / "cdk.json").write_text(json.dumps({"context": context}))
    shutil.copytree(PROJECT_ROOT / "training_data", tmp_path / "training_data")
    assert main(["whoami", "prod", "--project", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"the credentials are for account {MOTO_ACCOUNT}, but cdk.json deploys environment 'prod'" in err
    assert "environments.prod.account" in err


def test_no_credentials_is_a_usage_error_with_the_hint(
    no_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["whoami", "dev", "--project", str(SAMPLE_PROJECT)]) == 2
    err = capsys.readouterr().err
    assert err == f"python -m finetune whoami: error: {NO_CREDENTIALS}\n"
    assert "AWS_PROFILE" in err and "`make synth`" in err


def test_an_unknown_environment_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whoami", "qa", "--project", str(SAMPLE_PROJECT)]) == 2
    assert "no environment 'qa' in cdk.json; known: dev, prod" in capsys.readouterr().err


# -- the Makefile -----------------------------------------------------------------------------------


def make(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """make in the project, never remaking the set-up stamps (the suite runs after `make setup`)."""
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "-o", "node_modules/.installed", *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("target", ["diff", "deploy", "destroy"])
def test_cdk_targets_without_credentials_stop_with_one_hint_before_cdk_runs(
    target: str, tmp_path: Path
) -> None:
    result = make(target, "ENV=dev", env=without_credentials(tmp_path))
    assert result.returncode != 0
    assert result.stderr.count(NO_CREDENTIALS) == 1
    assert "Unable to resolve AWS account" not in result.stderr + result.stdout
    assert result.stdout == ""  # the CDK CLI never ran


def test_only_synth_asks_app_py_for_the_stack_table() -> None:
    commands = make("-n", "synth", "diff", "deploy", "destroy", "ENV=dev").stdout.splitlines()
    assert commands == [
        "FINETUNE_STACK_TABLE=1 cdk synth --quiet '**'",
        "python -m finetune whoami dev",
        "cdk diff 'dev/*'",
        "cdk deploy 'dev/*'",
        "cdk destroy 'dev/*'",
    ]
