#!/usr/bin/env python3
"""The CDK app: cdk.json context -> validated plans -> one `cdk.Stage` per environment.

The configuration is read, parsed and checked (shapes, model catalog, data files) before aws_cdk is
imported: starting jsii costs seconds, and a configuration with an error must fail fast, with every
problem listed, before any construct exists. This is the only module that reads the CDK context or
the process environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.core.config import ConfigError, parse_config
from finetune.core.plan import FineTuningPlan, plan_app, plans_by_environment
from finetune.core.project import (
    DATA_FOLDER,
    ProjectFileError,
    load_context,
    parse_json_object,
    read_json_object,
)

if TYPE_CHECKING:
    import aws_cdk as cdk

PROJECT_ROOT = Path(__file__).resolve().parent
DATA_ROOT = PROJECT_ROOT / DATA_FOLDER
# CDK's built-in CloudFormation validation (a WASM rule engine, on by default since 2.262) takes
# more than half of this app's synth time. The templates' structure is fixed by the code, and the
# test suite synthesizes the app with it on, then runs cfn-lint and cdk-nag on every template; a
# configuration change only changes values, which finetune/ has already checked. So everyday
# synth runs without it; `-c finetune:cloudformation-validation=true` turns it on.
CLOUDFORMATION_VALIDATION = "finetune:cloudformation-validation"
# The CDK CLI runs this app for every command (synth, diff, deploy, destroy) and does not say which.
# The stack table is for synth only, so `make synth` sets this variable and nothing else does:
# `FINETUNE_STACK_TABLE=1 cdk synth` prints it too.
STACK_TABLE = "FINETUNE_STACK_TABLE"


def read_context(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The context the CDK CLI hands the app, or cdk.json's (+ cdk.context.json) when run directly.

    Raises ProjectFileError (`SOURCE:LINE:COLUMN: ...`) when the context is not a JSON object.
    """
    if "CDK_CONTEXT_JSON" in environ:
        return parse_json_object(environ["CDK_CONTEXT_JSON"], "CDK_CONTEXT_JSON")
    if "CONTEXT_OVERFLOW_LOCATION_ENV" in environ:  # the CLI's file for contexts too big for a variable
        return read_json_object(Path(environ["CONTEXT_OVERFLOW_LOCATION_ENV"]))
    return load_context(PROJECT_ROOT)


def cloudformation_validation(context: Mapping[str, Any]) -> bool:
    """Whether CDK's built-in CloudFormation validation runs (`-c` passes "true" as a string)."""
    return str(context.get(CLOUDFORMATION_VALIDATION, False)).lower() == "true"


def prints_stack_table(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run prints the stack table: only when STACK_TABLE is set (by `make synth`)."""
    return environ.get(STACK_TABLE, "").strip().lower() not in ("", "0", "false")


def summary_table(plans: tuple[FineTuningPlan, ...]) -> str:
    """The table `make synth` prints: one row per stack."""
    header = ("stage", "stack", "base model", "type", "region", "serving", "gate", "cost estimate")
    rows = [header] + [
        (
            plan.config.environment.name,
            plan.config.stack_name,
            plan.config.base_model,
            plan.config.customization_type,
            plan.config.region,
            plan.config.serving.mode,
            f"{len(plan.trials)} trial(s)" if plan.evaluation is not None else "none",
            plan.cost_summary,
        )
        for plan in plans
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(lines)


def create_app(
    plans: tuple[FineTuningPlan, ...],
    *,
    context: Mapping[str, Any],
    default_account: str | None = None,
    outdir: str | None = None,
) -> cdk.App:
    """Build the app: a stage per environment, a stack per fine-tuning, cdk-nag as a gate."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks

    from finetune.core.config import EnvironmentConfig
    from stacks.environment_stage import EnvironmentStage

    app = cdk.App(
        context=dict(context),
        outdir=outdir,
        builtin_cloud_formation_validation=cloudformation_validation(context),
        # Creation stack traces of a Python app hold only jsii frames: no use to a reader, and slow.
        stack_traces=False,
    )
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app), ServerlessChecks(app), NIST80053R5Checks(app)
    )
    environments: dict[str, EnvironmentConfig] = {
        plan.config.environment.name: plan.config.environment for plan in plans
    }
    for name, env_plans in plans_by_environment(plans).items():
        EnvironmentStage(app, environments[name], env_plans, default_account=default_account)
    return app


def main() -> int:
    try:
        context = read_context()
    except (ProjectFileError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 1
    try:
        plans, warnings = plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    except ConfigError as error:
        print(error.report(), file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if prints_stack_table():
        print(summary_table(plans), file=sys.stderr)
    create_app(plans, context=context, default_account=os.environ.get("CDK_DEFAULT_ACCOUNT")).synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
