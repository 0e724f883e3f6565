"""`python -m finetune validate`: check JSONL training (or validation) data against a model's rules.

    validate --model MODEL_ID [--customization-type T] [--validation] [--batch-size N] [--bucket NAME]
             FILE [FILE ...]
    validate ENV FINE_TUNING [--project DIR]

The first form checks any files against a model. The second checks the training and validation
files a fine-tuning of cdk.json names, as synth would: with its model, customization type and
resolved batch size (the configured one or the model's default), training and validation rules each.
Images and videos: synth, and so the second form, refuse a local file that names any (they must be in
the stack's training bucket, named at the first deploy); `--bucket NAME` checks that each is under
s3://NAME/media/, as the job trigger does for a file uploaded to that bucket.

Prints each problem on its own line, compiler style (`FILE:LINE: error: message`), then a summary per
file (records, estimated tokens and how they are estimated, largest record). Exit codes: 0 every file
is valid (warnings allowed), 1 some file is invalid (or, second form, cdk.json is), 2 usage error
(unknown model, a customization type the model does not support, a batch size outside the model's
range, an unreadable file, an unknown environment or fine-tuning).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from finetune.cli.main import EXIT_INVALID, EXIT_OK, InvalidInput, UsageError, find_fine_tuning, project_input
from finetune.core.catalog import (
    CUSTOMIZATION_TYPES,
    FINE_TUNING,
    TYPE_ABBREVIATIONS,
    ModelEntry,
    find_model,
    format_number,
    suggest_models,
)
from finetune.core.config import ConfigError, FineTuningConfig
from finetune.core.cost import DataSize, default_estimate, estimate_cost, training_cost_line
from finetune.core.dataset import LOCAL_FILE, DatasetReport, MediaLocation, validate_file
from finetune.core.formats import TOKEN_ESTIMATE_METHOD, DatasetLimits, batch_size_of

BATCH_SIZE_KEY = "batchSize"


USAGE = (
    "%(prog)s --model MODEL_ID [--customization-type T] [--validation] [--batch-size N] FILE [FILE ...]\n"
    "       %(prog)s ENV FINE_TUNING [--project DIR]"
)
FILE_FORM_OPTIONS = ("--customization-type", "--validation", "--batch-size", "--bucket")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check JSONL training data against a model's format and limits",
        usage=USAGE,
        description="Check JSONL training (or validation) data against a base model's record format "
        "and dataset limits, before a customization job is paid for: any FILE against --model, or the "
        "training and validation files of a fine-tuning of cdk.json (ENV FINE_TUNING) with its model, "
        "customization type and resolved batch size.",
    )
    parser.add_argument(
        "--model", metavar="MODEL_ID", help="the base model identifier (checks the FILEs given)"
    )
    parser.add_argument(
        "--customization-type",
        type=_customization_type,
        default=None,
        metavar="T",
        help=f"one of {', '.join(CUSTOMIZATION_TYPES)} (or FT, CPT, DIST); default {FINE_TUNING}",
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
    parser.add_argument(
        "--bucket",
        metavar="NAME",
        help="the stack's training bucket the files go to: images and videos must be under s3://NAME/media/ "
        "(default: not checked)",
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        metavar="DIR",
        help="the project folder, for ENV FINE_TUNING (default: here)",
    )
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="FILE | ENV FINE_TUNING",
        help="JSONL files to check (with --model), or an environment and a fine-tuning of cdk.json",
    )
    parser.set_defaults(handler=run, parser=parser)


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


CostLine = Callable[[DataSize], str]


def summary_lines(report: DatasetReport, cost_line: CostLine) -> list[str]:
    """The summary printed after a file's problems: counts, tokens, and for training data its cost
    (`cost_line` of what was counted)."""
    lines = report.summary_lines()
    if not report.validation:
        data = DataSize(report.estimated_tokens, report.records, TOKEN_ESTIMATE_METHOD)
        lines.append(f"{report.file}: {cost_line(data)}")
    return lines


def default_cost_line(model: ModelEntry) -> CostLine:
    """`--model`: the catalog's default hyperparameters, priced where the model is customizable first
    (`validate ENV FINE_TUNING` and `cost` price the configured region)."""
    region = model.regions[0] if model.regions else "us-east-1"
    return lambda data: training_cost_line(default_estimate(model, region, data), "default hyperparameters")


def configured_cost_line(config: FineTuningConfig, model: ModelEntry) -> CostLine:
    """The training cost line of a fine-tuning: its epochs and its environment's prices."""
    settings = f"{config.environment.name}/{config.name}'s hyperparameters and prices"
    return lambda data: training_cost_line(estimate_cost(config, model, data), settings)


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    targets: list[str] = args.targets
    if args.model is None:
        if len(targets) != 2:
            parser.error(
                "give --model MODEL_ID and the FILEs to check, or ENV FINE_TUNING to check the data of a "
                "fine-tuning of cdk.json"
            )
        given = [
            option
            for option, value in zip(
                FILE_FORM_OPTIONS,
                (args.customization_type, args.validation, args.batch_size, args.bucket),
                strict=True,
            )
            if value not in (None, False)
        ]
        if given:
            raise UsageError(
                f"{', '.join(given)}: not with ENV FINE_TUNING, which takes the model, customization type "
                "and batch size from cdk.json (use --model MODEL_ID FILE... to choose them)"
            )
        return run_fine_tuning(targets[0], targets[1], args.project or Path.cwd())
    if args.project is not None:
        raise UsageError("--project: only with ENV FINE_TUNING (with --model, give the FILEs' paths)")
    model = resolve_model(args.model)
    customization_type = args.customization_type or FINE_TUNING
    limits = resolve_limits(model, customization_type)
    batch_size = resolve_batch_size(model, args.batch_size)
    paths = [Path(target) for target in targets]
    for path in paths:  # every usage problem before any output
        _check_readable(path)
    checks = [(path, str(path), args.validation) for path in paths]
    media_location = MediaLocation(args.bucket) if args.bucket else None
    return check_files(checks, limits, batch_size, default_cost_line(model), media_location)


def check_files(
    files: list[tuple[Path, str, bool]],
    limits: DatasetLimits,
    batch_size: int | None,
    cost_line: CostLine,
    media_location: MediaLocation | None = LOCAL_FILE,
) -> int:
    """Validate each (path, name to show, as validation data), print problems and summaries;
    `media_location`: where the images and videos records name must be (default: as synth)."""
    all_ok = True
    for index, (path, name, validation) in enumerate(files):
        try:
            report = validate_file(
                path,
                display_name=name,
                limits=limits,
                validation=validation,
                batch_size=batch_size,
                media_location=media_location,
            )
        except OSError as error:
            raise UsageError(f"{name}: cannot read: {error.strerror or error}") from error
        if index:
            print()
        for issue in report.issues():
            print(issue)
        for line in summary_lines(report, cost_line):
            print(line)
        all_ok = all_ok and report.ok
    if batch_size is not None and len(limits.token_limits) > 1:
        print(f"(token limits checked for {BATCH_SIZE_KEY} {format_number(batch_size)})")
    return EXIT_OK if all_ok else EXIT_INVALID


def run_fine_tuning(environment: str, fine_tuning: str, project: Path) -> int:
    """The second form: the fine-tuning's files with its model's rules and its resolved batch size."""
    from finetune.core import checks
    from finetune.core.project import DATA_FOLDER, load_config

    config: FineTuningConfig = find_fine_tuning(project_input(load_config, project), environment, fine_tuning)
    problems = checks.check_fine_tuning(config)
    model = find_model(config.base_model)
    limits = model.dataset_limits(config.customization_type) if model is not None else None
    if problems or model is None or limits is None:
        raise InvalidInput(ConfigError(problems).report())
    hyperparameters = checks.resolve_hyperparameters(config, model)
    batch_size = batch_size_of(hyperparameters)
    batch = f", {BATCH_SIZE_KEY} {batch_size}" if batch_size is not None else ""
    print(
        f"{environment}/{fine_tuning}: {config.customization_type} of {config.base_model}{batch} "
        f"(from cdk.json)"
    )
    print()
    files = [(config.training_data.path, f"{DATA_FOLDER}/{config.training_data.relative_path}", False)]
    if config.validation_data is not None:
        files.append(
            (config.validation_data.path, f"{DATA_FOLDER}/{config.validation_data.relative_path}", True)
        )
    return check_files(files, limits, batch_size, configured_cost_line(config, model))
