"""Where code runs is a folder: no layer imports one above it, and nothing in the Lambda asset
imports the command-line tools or aws_cdk. Read from the source (every import, also those inside
functions), so a new import that breaks the layering fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cdk_constructs.lambda_function import LAMBDA_LAYERS
from tests.conftest import PROJECT_ROOT

# What each layer may import besides the standard library and itself (and the layers below it).
ORDER = ("core", "aws", "runtime", "cli")
THIRD_PARTY = {
    "core": set(),
    "aws": {"boto3", "botocore"},
    "runtime": {"boto3", "botocore"},
    "cli": {"boto3", "botocore", "moto", "matplotlib"},
}
INFRASTRUCTURE = {"aws_cdk", "constructs", "cdk_nag", "jsii"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "finetune" and len(parts) > 1 and parts[1] in ORDER else None


def files(folder: str) -> list[Path]:
    return sorted((PROJECT_ROOT / folder).rglob("*.py"))


def violations(path: Path, layer: str, root: Path = PROJECT_ROOT) -> list[str]:
    allowed_layers = ORDER[: ORDER.index(layer) + 1]
    problems = []
    for module in sorted(imports(path)):
        top = module.split(".")[0]
        imported = layer_of(module)
        if imported is not None and imported not in allowed_layers:
            problems.append(f"{path.relative_to(root)} ({layer}) imports {module} ({imported}, above it)")
        elif top in INFRASTRUCTURE or top in ("cdk_constructs", "stacks", "app", "tests"):
            problems.append(f"{path.relative_to(root)} ({layer}) imports {module}")
        elif top not in ("finetune", "__future__") and top not in THIRD_PARTY[layer] and not is_stdlib(top):
            problems.append(f"{path.relative_to(root)} ({layer}) imports the third-party {module}")
    return problems


def is_stdlib(name: str) -> bool:
    import sys

    return name in sys.stdlib_module_names


@pytest.mark.parametrize("layer", ORDER)
def test_no_layer_imports_one_above_it_or_anything_it_should_not(layer: str) -> None:
    problems = [problem for path in files(f"finetune/{layer}") for problem in violations(path, layer)]
    assert problems == []


def test_the_lambda_asset_is_the_layers_that_run_in_lambda() -> None:
    assert LAMBDA_LAYERS == ("core", "aws", "runtime")
    for layer in LAMBDA_LAYERS:
        for path in files(f"finetune/{layer}"):
            for module in imports(path):
                assert layer_of(module) != "cli", f"{path} imports {module}"
                assert module.split(".")[0] not in INFRASTRUCTURE, f"{path} imports {module}"


def test_constructs_and_stacks_use_only_the_pure_domain() -> None:
    """A forked construct needs aws_cdk and finetune.core (stdlib only), never boto3 or botocore."""
    problems = []
    for folder in ("cdk_constructs", "stacks"):
        for path in files(folder):
            for module in imports(path):
                if layer_of(module) not in (None, "core") or module.split(".")[0] in ("boto3", "botocore"):
                    problems.append(f"{path.relative_to(PROJECT_ROOT)} imports {module}")
    assert problems == []


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from finetune.cli import rehearsal\n    import boto3\n")
    assert [problem.split(" imports ")[1] for problem in violations(bad, "core", root=tmp_path)] == [
        "the third-party boto3",
        "finetune.cli (cli, above it)",
        "finetune.cli.rehearsal (cli, above it)",
    ]


def test_client_errors_are_read_only_through_finetune_aws_errors() -> None:
    """One way to read a ClientError's code and message (finding 2): `finetune.aws.errors`."""
    reads = re.compile(r"""\.response(\.get\(\s*|\[)["']Error["']""")
    errors_module = PROJECT_ROOT / "finetune" / "aws" / "errors.py"
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for folder in ("finetune", "cdk_constructs", "stacks")
        for path in files(folder)
        if path != errors_module
        for number, text in enumerate(path.read_text().splitlines(), start=1)
        if reads.search(text)
    ]
    assert found == []


def test_nothing_cites_a_file_the_repository_does_not_have() -> None:
    """Sources are public URLs or files of this repository (finding 55): no shared/ notes, no
    bench/README.md, no DESIGN.md."""
    cited = re.compile(r"shared/[\w.-]+\.md|bench/README\.md|\bDESIGN\.md")
    paths = [
        *(
            path
            for folder in ("finetune", "cdk_constructs", "stacks", "bench", "tests")
            for path in files(folder)
        ),
        *(PROJECT_ROOT / name for name in ("Makefile", "README.md", "app.py", "training_data/README.md")),
    ]
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}: {match.group()}"
        for path in paths
        if path != Path(__file__)
        for number, text in enumerate(path.read_text().splitlines(), start=1)
        for match in cited.finditer(text)
        if not (PROJECT_ROOT / match.group()).exists()
    ]
    assert found == []


def test_constructs_and_stacks_use_no_assert_as_control_flow() -> None:
    """`python -O` strips asserts: constructs raise with a message instead (finding 4)."""
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}"
        for folder in ("cdk_constructs", "stacks")
        for path in files(folder)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
