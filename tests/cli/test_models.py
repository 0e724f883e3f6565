"""`python -m finetune models`: exit codes, filters and the contents of the tables."""

from __future__ import annotations

import pytest

from finetune.cli import main as cli
from finetune.core.catalog import CATALOG

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["models", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_ids(out: str) -> list[str]:
    lines = out.splitlines()
    assert lines[0].startswith("ID ")
    rows = lines[1 : lines.index("")]
    return [row.split()[0] for row in rows]


def test_lists_every_model_with_all_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == cli.EXIT_OK and err == ""
    header = out.splitlines()[0]
    for column in (
        "ID",
        "PROVIDER",
        "NAME",
        "TYPES",
        "REGIONS",
        "CONTEXT",
        "MODALITIES",
        "DATA FORMAT",
        "ON-DEMAND",
        "LIFECYCLE",
    ):
        assert column in header
    assert table_ids(out) == [m.model_id for m in CATALOG]
    assert f"{len(CATALOG)} models." in out


def test_columns_are_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys)
    lines = out.splitlines()
    header, rows = lines[0], lines[1 : lines.index("")]
    for column in ("PROVIDER", "TYPES", "ON-DEMAND"):
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " and row[start] != " " for row in rows), column


def test_row_contents(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys)
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line and not line.startswith(" ")}
    haiku = rows[HAIKU].split("  ")
    cells = [cell.strip() for cell in haiku if cell.strip()]
    assert cells == [
        HAIKU,
        "Anthropic",
        "Claude 3 Haiku",
        "FT",
        "us-west-2",
        "200k",
        "text,image->text",
        "claude-messages",
        "no",
        "current",
    ]
    assert "yes (us-east-1)" in rows[NOVA_MICRO] and "FT,DIST" in rows[NOVA_MICRO]
    assert (
        "dropped from the newest fine-tuning table (unconfirmed)"
        in rows["cohere.command-light-text-v14:7:4k"]
    )


def test_filter_by_customization_type(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--customization-type", "CONTINUED_PRE_TRAINING")
    assert code == 0
    assert table_ids(out) == ["amazon.titan-text-express-v1:0:8k", "amazon.titan-text-lite-v1:0:4k"]


def test_filter_by_abbreviated_type_and_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--customization-type", "dist", "--region", "us-east-1")
    assert code == 0
    assert table_ids(out) == [NOVA_MICRO, "amazon.nova-lite-v1:0:300k", "amazon.nova-pro-v1:0:300k"]


def test_filter_by_modality(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--modality", "Video")
    assert table_ids(out) == [
        "amazon.nova-lite-v1:0:300k",
        "amazon.nova-pro-v1:0:300k",
        "amazon.nova-2-lite-v1:0:256k",
    ]
    _, out, _ = run(capsys, "--modality", "embedding")
    assert table_ids(out) == ["amazon.titan-embed-image-v1:0"]


def test_filters_matching_nothing_exit_0_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--region", "eu-west-1", "--modality", "text")
    assert code == cli.EXIT_OK and err == ""
    assert out.strip() == (
        f"No model matches --region eu-west-1 --modality text. Run without filters to see all {len(CATALOG)} models."
    )


def test_unknown_customization_type_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models", "--customization-type", "PRETRAIN"])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "unknown customization type 'PRETRAIN'" in capsys.readouterr().err


def test_compare_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "compare", HAIKU, NOVA_MICRO)
    assert code == cli.EXIT_OK and err == ""
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert rows["MODEL"].split() == ["MODEL", HAIKU, NOVA_MICRO]
    assert rows["hyperparameter batchSize"].split("  ")[-1].strip() == "-"
    assert "int 4..256, default 32" in rows["hyperparameter batchSize"]
    assert "float 1e-06..0.0001, default 1e-05" in rows["hyperparameter learningRate"]
    assert (
        "claude-messages" in rows["FT data format"] and "bedrock-conversation-2024" in rows["FT data format"]
    )
    assert "32..10,000" in rows["FT records"] and "8..20,000" in rows["FT records"]
    assert "amazon.nova-premier-v1:0" in rows["DIST teachers"]
    assert rows["price: storage / month"].count("~$1.95 (unverified)") == 2
    assert rows["price: training / 1k tokens"].count("unknown") == 2
    assert "Price sources:" in out and "set environments.<env>.pricing in cdk.json" in out


def test_compare_shows_token_limits_by_batch_size(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "compare", "amazon.titan-text-express-v1:0:8k", "amazon.titan-embed-image-v1:0")
    row = next(line for line in out.splitlines() if line.startswith("FT tokens per record"))
    assert "<=4,096 at batch 1, <=2,048 at batch 2-4" in row
    validation = next(line for line in out.splitlines() if line.startswith("FT validation set"))
    assert "allowed (<=100 MB)" in validation and "not allowed" in validation


def test_compare_unknown_id_is_a_usage_error_with_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "compare", HAIKU, "amazon.nova-micro")
    assert code == cli.EXIT_USAGE and out == ""
    assert "unknown model id 'amazon.nova-micro'" in err
    assert f"closest: {NOVA_MICRO}" in err


def test_compare_needs_two_ids(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "compare", HAIKU)
    assert code == cli.EXIT_USAGE
    assert "at least two model ids" in err
