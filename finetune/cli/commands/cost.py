"""`python -m finetune cost [ENV FINE_TUNING [--model ID]]`: what the configuration will cost.

Without arguments: one table, one row per stack of every environment, then each environment's
totals next to its budget. With ENV and FINE_TUNING: that stack's estimate with every input and the
source of every price; with `--model ID`, the same data and hyperparameters on another model.

Budgets do not stop this command (it is how a user finds what to change): estimates over budget are
listed after the table, exactly as synth would report them, and the exit code is then 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from finetune.cli.commands.models import format_table
from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError, project_input
from finetune.core import catalog
from finetune.core.config import EnvironmentConfig
from finetune.core.cost import CostEstimate, add, estimate_on
from finetune.core.plan import FineTuningPlan, budget_errors
from finetune.core.prices import format_usd
from finetune.core.project import load_plans


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="estimate what every stack, or one fine-tuning, costs (with price sources and budgets)",
        description="Without arguments: every stack of every environment, with per-environment totals and "
        "budgets. With ENV FINE_TUNING: training (estimated tokens x epochs x price), storage, serving per "
        "hour and per 30 days, on-demand vs provisioned throughput, every input and every price's source.",
    )
    parser.add_argument("environment", metavar="ENV", nargs="?", help="an environment of cdk.json, e.g. dev")
    parser.add_argument(
        "fine_tuning",
        metavar="FINE_TUNING",
        nargs="?",
        help="a fine-tuning of cdk.json, e.g. support-assistant",
    )
    parser.add_argument(
        "--model",
        metavar="ID",
        help="price the same data and hyperparameters on another customizable model (needs ENV FINE_TUNING)",
    )
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if (args.environment is None) != (args.fine_tuning is None):
        raise UsageError("give both ENV and FINE_TUNING, or neither (for every stack)")
    if args.model and args.fine_tuning is None:
        raise UsageError("--model needs ENV and FINE_TUNING: whose data and hyperparameters to price")
    plans, _warnings = project_input(lambda root: load_plans(root, check_budgets=False), args.project)
    if args.fine_tuning is None:
        lines, over_budget = overview(plans)
        for line in lines:
            print(line)
        return EXIT_INVALID if over_budget else EXIT_OK
    plan = _find(plans, args.environment, args.fine_tuning)
    config = plan.config
    estimate = plan.cost
    if args.model:
        other = catalog.find_model(args.model)
        if other is None:
            close = catalog.suggest_models(args.model)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise UsageError(f"unknown model id {args.model!r}{hint} (`python -m finetune models` lists all)")
        model = catalog.find_model(config.base_model)
        assert model is not None  # planned: the catalog knows it
        estimate = estimate_on(config, plan.cost.data, model, other)
        print(
            f"{config.stack_name}: the same data and hyperparameters on {other.model_id} instead of {model.model_id}"
        )
    else:
        print(f"{config.stack_name}: {config.customization_type} of {config.base_model} in {config.region}")
    print(f"  training data: {config.training_data.relative_path} ({plan.training.records} records)")
    for line in estimate.lines():
        print(f"  {line}")
    if args.model:
        print(f"  Configured model for comparison: {plan.cost.summary()}")
    else:
        for line in trial_lines(plan):
            print(f"  {line}")
    return EXIT_OK


def trial_lines(plan: FineTuningPlan) -> list[str]:
    """The candidates' own estimates and what evaluating each trial costs (an evaluation gate)."""
    lines: list[str] = []
    for candidate in plan.candidates:
        config = candidate.config
        lines.append(f"Candidate {config.trial_name} ({config.base_model}): {candidate.cost.summary()}")
    if plan.evaluation is not None:
        settings = plan.evaluation.settings
        judge = settings.judge_model or f"programmatic, {settings.task_type}"
        lines.append(
            f"Evaluation gate ({plan.evaluation.data.records} prompts, {judge}), per trial, at most:"
        )
        for trial in plan.trials:
            cost = trial.evaluation_cost
            if cost is not None:
                lines.append(f"  {trial.config.trial_name}:")
                lines.extend(f"    {line}" for line in cost.lines())
    return lines


def _find(plans: Sequence[FineTuningPlan], environment: str, fine_tuning: str) -> FineTuningPlan:
    for plan in plans:
        if plan.config.environment.name == environment and plan.config.name == fine_tuning:
            return plan
    known = ", ".join(f"{plan.config.environment.name} {plan.config.name}" for plan in plans)
    raise UsageError(f"no fine-tuning {fine_tuning!r} in environment {environment!r}; known: {known}")


def overview(plans: Sequence[FineTuningPlan]) -> tuple[list[str], bool]:
    """The table of every stack, each environment's totals and budget, and any budget problems."""
    header = (
        "ENV",
        "FINE-TUNING",
        "MODEL",
        "REGION",
        "TRAINING",
        "STORAGE/MO",
        "SERVING/30D",
        "SERVING",
        "TOTAL/30D",
    )
    rows = [
        (
            plan.config.environment.name,
            plan.config.name,
            plan.config.base_model,
            plan.config.region,
            _training_cell(plan),
            plan.cost.storage.render(),
            _serving_cell(plan.cost),
            _serving_kind(plan.cost),
            plan.cost.per_30_days.render(),
        )
        for plan in plans
    ]
    lines = format_table(header, rows)
    environments: dict[str, EnvironmentConfig] = {}
    for plan in plans:
        environments.setdefault(plan.config.environment.name, plan.config.environment)
    problems: list[str] = []
    lines.append("")
    lines.append("Per environment (USD):")
    for name, environment in environments.items():
        ours = [p for p in plans if p.config.environment.name == name]
        training = add(*(trial.cost.training for p in ours for trial in p.trials))
        monthly = add(*(p.cost.per_30_days for p in ours))
        budget = environment.budget
        lines.append(
            f"  {name}: training {training.render()} (every job once), serving and storage "
            f"{monthly.render()} per 30 days; budget: {_budget_text(environment)}"
        )
        if budget.limits:
            problems += [str(problem) for problem in budget_errors(plans, environment)]
    lines.append(
        "Token counts are estimates (characters / 6, the Bedrock user guide's rule). Sources and inputs: "
        "python -m finetune cost ENV FINE_TUNING; another model: add --model ID."
    )
    if problems:
        lines += ["", f"Over budget or not checkable ({len(problems)}): synth fails with these:"]
        lines += [f"  {problem}" for problem in problems]
    return lines, bool(problems)


def _training_cell(plan: FineTuningPlan) -> str:
    """The fine-tuning's training, with its candidates' (every job of an evaluation gate trains)."""
    if not plan.candidates:
        return plan.cost.training.render()
    return f"{add(*(trial.cost.training for trial in plan.trials)).render()} ({len(plan.trials)} jobs)"


def _serving_cell(cost: CostEstimate) -> str:
    if cost.serving_mode == "on_demand" and cost.traffic is None:
        return "per token"
    return cost.serving_per_30_days.render()


def _serving_kind(cost: CostEstimate) -> str:
    if cost.serving_mode == "none":
        return "none"
    if cost.serving_mode == "on_demand":
        return "on-demand"
    commitment = "" if cost.commitment == "none" else f" {cost.commitment}"
    return f"PT {cost.model_units}u{commitment}"


def _budget_text(environment: EnvironmentConfig) -> str:
    limits = environment.budget.limits
    if not limits:
        return "none set"
    return ", ".join(f"{key} {format_usd(value)}" for key, value in limits.items())
