"""`python -m finetune rehearse ENV FINE_TUNING`: the deployed lifecycle, run locally against moto's server."""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError, project_input
from finetune.core.contracts import MODES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rehearse",
        help="run a fine-tuning's whole lifecycle locally, against moto's server",
        description="Starts moto's server on 127.0.0.1 and drives the handlers the stack deploys with the "
        "events CloudFormation and EventBridge send: stage data, start the job (and retry), complete it, "
        "serve the model, deliver a duplicate event, tear down. Prints a timeline; exit 0 when every step "
        "behaves as deployed code must, 1 at the first step that deviates.",
    )
    parser.add_argument("environment", metavar="ENV", help="an environment of cdk.json, e.g. dev")
    parser.add_argument(
        "fine_tuning", metavar="FINE_TUNING", help="a fine-tuning of cdk.json, e.g. support-assistant"
    )
    parser.add_argument(
        "--bad-data",
        action="store_true",
        help="stage a corrupted copy of the training file and rehearse the rejection paths instead",
    )
    parser.add_argument(
        "--serving",
        choices=MODES,
        default=None,
        help="serve the model this way in the rehearsal (default: the configuration's serving.mode)",
    )
    parser.add_argument(
        "--gate-fails",
        action="store_true",
        help="with an evaluation gate: score every trial below it (nothing is served, temporary endpoints go)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print the handlers' log lines under each step"
    )
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from finetune.cli import rehearsal
    from finetune.core.project import load_plans

    plans, _warnings = project_input(load_plans, args.project)
    try:
        plan = rehearsal.find_plan(plans, args.environment, args.fine_tuning)
    except LookupError as error:
        raise UsageError(str(error.args[0])) from error
    mode = args.serving or plan.config.serving.mode
    if mode != plan.config.serving.mode:
        try:
            plan = rehearsal.with_serving_mode(plan, mode)
        except ValueError as error:
            raise UsageError(str(error)) from error
    if args.gate_fails and plan.evaluation is None:
        raise UsageError(
            f"--gate-fails: {plan.config.stack_name} has no evaluation gate (fine_tunings.<ft>.evaluation)"
        )
    what = "rejection of corrupted training data" if args.bad_data else f"lifecycle, serving mode {mode}"
    if plan.evaluation is not None and not args.bad_data:
        what += ", evaluation gate " + ("failing" if args.gate_fails else "passing")
    print(f"Rehearsing {plan.config.stack_name} ({what}) against moto's server on 127.0.0.1")
    result = rehearsal.Rehearsal(
        plan,
        bad_data=args.bad_data,
        gate_fails=args.gate_fails,
        verbose=args.verbose,
        out=lambda line: print(line, flush=True),
    ).run()
    print(result.summary())
    return EXIT_OK if result.ok else EXIT_INVALID
