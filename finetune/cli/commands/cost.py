"""`python -m finetune cost ENV FINE_TUNING`: the cost estimate synth records, with its inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune.cli.main import EXIT_OK, UsageError, project_input
from finetune.core.project import load_plans


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="estimate the cost of one fine-tuning in one environment",
        description="Training (estimated tokens x epochs x price), storage per month and serving per hour "
        "and per 30 days, with every input and the source of every price.",
    )
    parser.add_argument("environment", metavar="ENV", help="an environment of cdk.json, e.g. dev")
    parser.add_argument(
        "fine_tuning", metavar="FINE_TUNING", help="a fine-tuning of cdk.json, e.g. support-assistant"
    )
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    plans, _warnings = project_input(load_plans, args.project)
    for plan in plans:
        if plan.config.environment.name == args.environment and plan.config.name == args.fine_tuning:
            config = plan.config
            print(
                f"{config.stack_name}: {config.customization_type} of {config.base_model} in {config.region}"
            )
            print(f"  training data: {config.training_data.relative_path} ({plan.training.records} records)")
            for line in plan.cost.lines():
                print(f"  {line}")
            return EXIT_OK
    known = ", ".join(f"{plan.config.environment.name} {plan.config.name}" for plan in plans)
    raise UsageError(
        f"no fine-tuning {args.fine_tuning!r} in environment {args.environment!r}; known: {known}"
    )
