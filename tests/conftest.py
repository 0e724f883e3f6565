"""Shared fixtures. Each distinct CDK app is synthesized once per test session (jsii is slow)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = PROJECT_ROOT / "training_data"
REGION = "us-west-2"


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and region for moto, and no endpoint override that could send calls elsewhere."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


# The sample configuration the tests are written against: a copy of the cdk.json this project ships
# (its data is the project's training_data/, through a link). A team that adds its own fine-tunings
# to cdk.json changes what `make synth` deploys, not what these tests expect.
SAMPLE_PROJECT = PROJECT_ROOT / "tests" / "fixtures" / "sample"


def sample_context() -> dict[str, Any]:
    """The sample's cdk.json context, as the CDK CLI hands it to the app."""
    context: dict[str, Any] = json.loads((SAMPLE_PROJECT / "cdk.json").read_text())["context"]
    return context


@dataclass
class SynthesizedApp:
    """The sample app, synthesized: its stacks by (environment, fine-tuning) and the assembly folder."""

    app: Any  # aws_cdk.App
    stages: dict[str, Any]
    assembly_dir: Path
    plans: tuple[Any, ...]

    def stack(self, environment: str, fine_tuning: str) -> Any:
        return self.stages[environment].stacks[fine_tuning]

    def template(self, environment: str, fine_tuning: str) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_stack(self.stack(environment, fine_tuning))

    def template_files(self) -> list[Path]:
        return sorted(self.assembly_dir.glob("assembly-*/*.template.json"))


@pytest.fixture(scope="session")
def sample_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynthesizedApp]:
    import aws_cdk as cdk

    import app as app_module
    from finetune.core.config import parse_config
    from finetune.core.plan import plan_app

    # The tests synthesize with CDK's built-in CloudFormation validation on (app.py turns it off
    # for everyday synth, see CLOUDFORMATION_VALIDATION): its findings fail the session here.
    context = {**sample_context(), app_module.CLOUDFORMATION_VALIDATION: True}
    plans, _warnings = plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = app_module.create_app(plans, context=context, outdir=str(outdir))
    app.synth()  # raises if cdk-nag finds anything unacknowledged
    stages = {child.node.id: child for child in app.node.children if isinstance(child, cdk.Stage)}
    yield SynthesizedApp(app=app, stages=stages, assembly_dir=outdir, plans=plans)
