"""The project on disk: cdk.json's context and the training data folder, for commands run outside CDK.

`app.py` gets its context from the CDK CLI; the `python -m finetune` commands read the same cdk.json
(and cdk.context.json, as the CLI does) through `load_context`, so both see one configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune.core.config import AppConfig, parse_config
from finetune.core.plan import FineTuningPlan, plan_app

DATA_FOLDER = "training_data"


def load_context(project_root: Path) -> dict[str, Any]:
    """cdk.json's `context`, updated with cdk.context.json when it exists (the CDK CLI's order)."""
    cdk_json = project_root / "cdk.json"
    if not cdk_json.is_file():
        raise FileNotFoundError(
            f"{cdk_json}: no cdk.json here (run from the project folder or pass --project)"
        )
    context = dict(json.loads(cdk_json.read_text()).get("context", {}))
    cached = project_root / "cdk.context.json"
    if cached.is_file():
        context.update(json.loads(cached.read_text()))
    return context


def load_config(project_root: Path) -> AppConfig:
    """The parsed configuration (raises ConfigError)."""
    return parse_config(load_context(project_root), project_root / DATA_FOLDER)


def load_plans(project_root: Path) -> tuple[tuple[FineTuningPlan, ...], list[str]]:
    """Every stack's plan, as synth computes it (raises ConfigError)."""
    data_root = project_root / DATA_FOLDER
    return plan_app(parse_config(load_context(project_root), data_root), data_root)
