"""`python -m finetune validate`: check JSONL training (or validation) data against a model's rules.

    validate --model MODEL_ID [--customization-type T] [--validation] [--batch-size N] FILE [FILE ...]

Prints each problem on its own line, compiler style (`FILE:LINE: error: message`), then a summary per
file (records, estimated tokens and how they are estimated, largest record). Exit codes: 0 every file
is valid (warnings allowed), 1 some file is invalid, 2 usage error (unknown model, a customization
type the model does not support, a batch size outside the model's range, an unreadable file).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError
from finetune.core.catalog import (
    CUSTOMIZATION_TYPES,
    FINE_TUNING,
    TYPE_ABBREVIATIONS,
    ModelEntry,
    find_model,
    format_number,
    suggest_models,
)
from finetune.core.cost import training_cost_line
from finetune.core.dataset import DatasetReport, validate_file
from finetune.core.formats import DatasetLimits

BATCH_SIZE_KEY = "batchSize"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check JSONL training data against a model's format and limits",
        description="Check JSONL training (or validation) data against a base model's record format "
        "and dataset limits, before a customization job is paid for.",
    )
    parser.add_argument("--model", required=True, metavar="MODEL_ID", help="the base model identifier")
    parser.add_argument(
        "--customization-type",
        type=_customization_type,
        default=FINE_TUNING,
        metavar="T",
        help=f"one of {', '.join(CUSTOMIZATION_TYPES)} (or FT, CPT, DIST, RFT); default {FINE_TUNING}",
    )
    parser.add_argument(
        "--validation", action="store_true", help="check the files as validation data (its own limits)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="the job's batchSize, when token limits depend on it (default: the model's default)",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSONL files to check")
    parser.set_defaults(handler=run)


def _customization_type(value: str) -> str:
    wanted = value.strip().upper()
    for full, short in TYPE_ABBREVIATIONS.items():
        if wanted in (full, short):
            return full
    raise argparse.ArgumentTypeError(
        f"unknown customization type {value!r}; accepted: {', '.join(CUSTOMIZATION_TYPES)}"
    )


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return number


def resolve_model(model_id: str) -> ModelEntry:
    """The catalog entry for `model_id`, or a UsageError naming the closest ids."""
    model = find_model(model_id)
    if model is None:
        suggestions = suggest_models(model_id)
        hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
        raise UsageError(
            f"unknown model {model_id!r}{hint} (`python -m finetune models` lists the customizable models)"
        )
    return model


def resolve_limits(model: ModelEntry, customization_type: str) -> DatasetLimits:
    limits = model.dataset_limits(customization_type)
    if limits is None:
        supported = ", ".join(model.customization_types) or "none"
        raise UsageError(f"{model.model_id} does not support {customization_type}; it supports: {supported}")
    return limits


def resolve_batch_size(model: ModelEntry, batch_size: int | None) -> int | None:
    """The batch size token limits are checked for: the given one (within range) or the default."""
    spec = model.hyperparameter(BATCH_SIZE_KEY)
    if batch_size is None:
        default = spec.default if spec is not None else None
        return default if isinstance(default, int) else None
    if spec is None:
        raise UsageError(f"{model.model_id} takes no {BATCH_SIZE_KEY} hyperparameter; leave --batch-size out")
    if not spec.in_range(batch_size):
        raise UsageError(
            f"--batch-size {batch_size} is outside {model.model_id}'s {BATCH_SIZE_KEY} range, "
            f"{spec.range_text()}"
        )
    return batch_size


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: not readable (permission denied)")


def summary_lines(report: DatasetReport, model: ModelEntry) -> list[str]:
    """The summary printed after a file's problems: counts, tokens, and for training data its cost."""
    lines = report.summary_lines()
    if not report.validation:
        lines.append(f"{report.file}: {training_cost_line(model, report.estimated_tokens)}")
    return lines


def run(args: argparse.Namespace) -> int:
    model = resolve_model(args.model)
    limits = resolve_limits(model, args.customization_type)
    batch_size = resolve_batch_size(model, args.batch_size)
    paths: list[Path] = args.files
    for path in paths:  # every usage problem before any output
        _check_readable(path)

    all_ok = True
    for index, path in enumerate(paths):
        try:
            report = validate_file(path, limits=limits, validation=args.validation, batch_size=batch_size)
        except OSError as error:
            raise UsageError(f"{path}: cannot read: {error.strerror or error}") from error
        if index:
            print()
        for issue in report.issues():
            print(issue)
        for line in summary_lines(report, model):
            print(line)
        all_ok = all_ok and report.ok
    if batch_size is not None and len(limits.token_limits) > 1:
        print(f"(token limits checked for {BATCH_SIZE_KEY} {format_number(batch_size)})")
    return EXIT_OK if all_ok else EXIT_INVALID
