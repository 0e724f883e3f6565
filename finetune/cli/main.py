"""Command-line interface: `python -m finetune COMMAND ...`.

Exit codes, for every command: 0 ok, 1 the input was checked and is invalid (bad data, bad config),
2 usage error (unknown option, unknown model, unreadable file). Errors go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from finetune.core.config import AppConfig, ConfigError, FineTuningConfig
from finetune.core.project import ProjectFileError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

# Command modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "validate",
    "models",
    "cost",
    "status",
    "report",
    "compare",
    "rehearse",
    "retry",
    "whoami",
)


class UsageError(Exception):
    """A problem with how the command was called: printed without a traceback, exit code 2."""


class InvalidInput(Exception):  # noqa: N818 (named for the exit code it stands for)
    """The input was checked and is invalid (e.g. cdk.json): printed as it is, exit code 1."""


Loaded = TypeVar("Loaded")


def project_input(load: Callable[[Path], Loaded], project: Path) -> Loaded:
    """The project's configuration for a command: no cdk.json is a usage error; one that is not
    valid JSON (`cdk.json:LINE:COLUMN: ...`) or not a valid configuration is invalid input."""
    try:
        return load(project)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    except ProjectFileError as error:
        raise InvalidInput(str(error)) from error
    except ConfigError as error:
        raise InvalidInput(error.report()) from error


def find_fine_tuning(config: AppConfig, environment: str, fine_tuning: str) -> FineTuningConfig:
    """The fine-tuning of cdk.json in `environment`; a UsageError naming the known ones otherwise."""
    environments = [item.name for item in config.environments]
    if environment not in environments:
        raise UsageError(f"no environment {environment!r} in cdk.json; known: {', '.join(environments)}")
    names = [item.name for item in config.fine_tunings_of(environment)]
    if fine_tuning not in names:
        raise UsageError(
            f"no fine-tuning {fine_tuning!r} in environment {environment!r}; known: {', '.join(names)}"
        )
    return config.get(environment, fine_tuning)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finetune",
        description="Validate training data, browse models, estimate cost and operate fine-tunings.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(f"finetune.cli.commands.{module_name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with 2 on usage errors
    try:
        exit_code: int = args.handler(args)
    except UsageError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidInput as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID
    return exit_code
