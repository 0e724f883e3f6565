"""finetune.core.project and every reader of cdk.json: a file that is not JSON says where and why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.cli.main import main
from finetune.core.project import ProjectFileError, load_context, parse_json_object
from tests.conftest import PROJECT_ROOT

# cdk.json as people break it: (text, the location reported, words the message must hold).
BROKEN = {
    "trailing comma in an object": (
        '{\n  "context": {\n    "environments": {},\n  }\n}\n',
        "cdk.json:3:23:",
        "a trailing comma before '}'",
    ),
    "trailing comma in an array": (
        '{"context": {"list": [1, 2, ]}}',
        "cdk.json:1:27:",
        "a trailing comma before ']'",
    ),
    "comment": ('{\n  // dev only\n  "context": {}\n}', "cdk.json:2:3:", "JSON has no comments"),
    "single quotes": ("{'context': {}}", "cdk.json:1:2:", "double quotes"),
    "missing comma": ('{"app": "x"\n "context": {}}', "cdk.json:2:2:", "expecting ',' delimiter"),
    "two objects": ('{"context": {}}\n{}', "cdk.json:2:1:", "more after the end of the top-level object"),
    "empty file": ("", "cdk.json:1:1:", "the file is empty"),
    "an array": ("[]", "cdk.json:", "expected a JSON object ({...}), got an array"),
    "context not an object": ('{"context": []}', "cdk.json:", '"context" must be a JSON object'),
}


def broken_project(tmp_path: Path, text: str) -> Path:
    shutil.copytree(PROJECT_ROOT / "training_data", tmp_path / "training_data")
    (tmp_path / "cdk.json").write_text(text)
    return tmp_path


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_cdk_json_names_line_column_and_cause(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, location, words = BROKEN[case]
    monkeypatch.chdir(broken_project(tmp_path, text))
    with pytest.raises(ProjectFileError) as raised:
        load_context(Path())
    message = str(raised.value)
    assert message.startswith(location), message
    assert words in message
    assert "\n" not in message


def test_a_file_outside_the_working_folder_is_named_by_its_path(tmp_path: Path) -> None:
    project = broken_project(tmp_path, '{"context": {"a": 1,}}')
    with pytest.raises(
        ProjectFileError, match=rf"^{tmp_path}/cdk\.json:1:20: invalid JSON: a trailing comma"
    ):
        load_context(project)


def test_a_broken_cdk_context_json_is_named_too(tmp_path: Path) -> None:
    (tmp_path / "cdk.json").write_text('{"context": {}}')
    (tmp_path / "cdk.context.json").write_text('{"a": }')
    with pytest.raises(ProjectFileError, match=r"cdk\.context\.json:1:7: invalid JSON: expecting value"):
        load_context(tmp_path)


def test_a_file_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    (tmp_path / "cdk.json").write_bytes(b'{"context": {"a": "\xff"}}')
    with pytest.raises(ProjectFileError, match=r"cdk\.json: not UTF-8 text \(byte 19\)"):
        load_context(tmp_path)


def test_a_valid_object_is_returned_as_parsed() -> None:
    assert parse_json_object('{"a": [1, 2]}', "X") == {"a": [1, 2]}


@pytest.mark.parametrize(
    "argv",
    [
        ["cost", "dev", "support-assistant"],
        ["status", "dev"],
        ["rehearse", "dev", "support-assistant"],
        ["validate", "dev", "support-assistant"],
    ],
)
def test_every_command_reading_cdk_json_exits_1_with_the_location(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, location, words = BROKEN["trailing comma in an object"]
    monkeypatch.chdir(broken_project(tmp_path, text))
    assert main([*argv, "--project", "."]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [captured.err.strip()]  # one line, no traceback
    assert captured.err.startswith(location) and words in captured.err
    assert captured.out == ""


def run_python(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run Python as the CDK CLI runs app.py, with only the context variables given in `env`."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CDK_CONTEXT_JSON", "CONTEXT_OVERFLOW_LOCATION_ENV")
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**inherited, "PYTHONPATH": str(PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_python_app_py_with_a_broken_cdk_json_exits_1_without_a_traceback(tmp_path: Path) -> None:
    text, _location, _words = BROKEN["trailing comma in an object"]
    project = broken_project(tmp_path, text)
    shutil.copy(PROJECT_ROOT / "app.py", project / "app.py")  # app.py reads the cdk.json beside it
    result = run_python(["app.py"], cwd=project, env={})
    assert result.returncode == 1
    assert result.stderr == (
        "cdk.json:3:23: invalid JSON: a trailing comma before '}' (JSON allows none after the last "
        "item): delete this comma\n"
    )


def test_app_py_with_a_broken_cdk_context_json_variable_exits_1_without_a_traceback() -> None:
    result = run_python(["app.py"], cwd=PROJECT_ROOT, env={"CDK_CONTEXT_JSON": '{"environments": {},}'})
    assert result.returncode == 1
    assert result.stderr.startswith("CDK_CONTEXT_JSON:1:20: invalid JSON: a trailing comma before '}'")
    assert "Traceback" not in result.stderr


def test_app_py_with_a_context_that_is_no_object_exits_1(tmp_path: Path) -> None:
    overflow = tmp_path / "context.json"
    overflow.write_text(json.dumps([1]))
    result = run_python(["app.py"], cwd=PROJECT_ROOT, env={"CONTEXT_OVERFLOW_LOCATION_ENV": str(overflow)})
    assert result.returncode == 1
    assert result.stderr == f"{overflow}: expected a JSON object ({{...}}), got an array\n"
