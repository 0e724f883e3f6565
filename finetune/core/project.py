"""The project on disk: cdk.json's context and the training data folder, for commands run outside CDK.

`app.py` gets its context from the CDK CLI; the `python -m finetune` commands read the same cdk.json
(and cdk.context.json, as the CLI does) through `load_context`, so both see one configuration.

A file that is not the JSON object the CDK CLI expects raises `ProjectFileError`, whose message
starts with `FILE:LINE:COLUMN:` and names the likely cause (a trailing comma, a comment, single
quotes), so a person fixes it from the message alone instead of reading a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune.core.config import AppConfig, parse_config
from finetune.core.plan import FineTuningPlan, plan_app

DATA_FOLDER = "training_data"
CDK_JSON = "cdk.json"
CDK_CONTEXT_JSON = "cdk.context.json"


class ProjectFileError(ValueError):
    """A project file (or the CLI's context variable) is not the JSON object it must be.

    The message starts with where: `cdk.json:LINE:COLUMN:` for a syntax error, `cdk.json:` otherwise.
    """


def display_path(path: Path) -> str:
    """`path` relative to the working folder when it is inside it (`cdk.json`), else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _position(text: str, index: int) -> tuple[int, int]:
    """(line, column) of a character index, both counted from 1, as json's errors count them."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def json_syntax_problem(text: str, error: json.JSONDecodeError, source: str) -> str:
    """`SOURCE:LINE:COLUMN: invalid JSON: <what is wrong>`, with the likely cause where it is clear."""
    index = min(error.pos, len(text))
    here = text[index : index + 2]
    before = text[:index].rstrip()
    if not text.strip():
        return f'{source}:1:1: the file is empty; expected a JSON object such as {{"context": {{...}}}}'
    if before.endswith(",") and here[:1] in ("}", "]"):
        line, column = _position(text, len(before) - 1)
        return (
            f"{source}:{line}:{column}: invalid JSON: a trailing comma before '{here[:1]}' "
            "(JSON allows none after the last item): delete this comma"
        )
    line, column = error.lineno, error.colno
    if here in ("//", "/*"):
        return f"{source}:{line}:{column}: invalid JSON: a comment; JSON has no comments: delete it"
    if here[:1] == "'":
        return (
            f"{source}:{line}:{column}: invalid JSON: a single-quoted string; JSON strings and keys take "
            'double quotes ("...")'
        )
    if error.msg == "Extra data":
        return (
            f"{source}:{line}:{column}: invalid JSON: more after the end of the top-level object "
            "(an extra '}' or ']', or a second object?)"
        )
    return f"{source}:{line}:{column}: invalid JSON: {error.msg[:1].lower()}{error.msg[1:]}"


def parse_json_object(text: str, source: str) -> dict[str, Any]:
    """`text` as a JSON object; ProjectFileError naming `source` (and line and column) otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProjectFileError(json_syntax_problem(text, error, source)) from None
    except RecursionError:
        raise ProjectFileError(f"{source}: invalid JSON: nested too deeply to parse") from None
    if not isinstance(value, dict):
        raise ProjectFileError(f"{source}: expected a JSON object ({{...}}), got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in the file at `path`; ProjectFileError when it is not UTF-8 JSON or no object."""
    source = display_path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProjectFileError(f"{source}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise ProjectFileError(f"{source}: cannot read: {error.strerror or error}") from None
    return parse_json_object(text, source)


def load_context(project_root: Path) -> dict[str, Any]:
    """cdk.json's `context`, updated with cdk.context.json when it exists (the CDK CLI's order).

    Raises FileNotFoundError without cdk.json, ProjectFileError for one that is not a JSON object
    (or whose `context` is not one).
    """
    cdk_json = project_root / CDK_JSON
    if not cdk_json.is_file():
        raise FileNotFoundError(
            f"{display_path(cdk_json)}: no cdk.json here (run from the project folder or pass --project)"
        )
    document = read_json_object(cdk_json)
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise ProjectFileError(
            f'{display_path(cdk_json)}: "context" must be a JSON object, got {_json_type(context)}'
        )
    context = dict(context)
    cached = project_root / CDK_CONTEXT_JSON
    if cached.is_file():
        context.update(read_json_object(cached))
    return context


def load_config(project_root: Path) -> AppConfig:
    """The parsed configuration (raises ConfigError, ProjectFileError, FileNotFoundError)."""
    return parse_config(load_context(project_root), project_root / DATA_FOLDER)


def load_plans(
    project_root: Path, *, check_budgets: bool = True
) -> tuple[tuple[FineTuningPlan, ...], list[str]]:
    """Every stack's plan, as synth computes it (raises ConfigError, ProjectFileError,
    FileNotFoundError); `check_budgets` False: estimates over budget are no error."""
    data_root = project_root / DATA_FOLDER
    config = parse_config(load_context(project_root), data_root)
    return plan_app(config, data_root, check_budgets=check_budgets)
