"""`python -m finetune models`: exit codes, filters and the contents of the tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.cli import main as cli
from finetune.cli.record_formats import EXAMPLE_BUCKET, RECORD_FORMATS
from finetune.core.catalog import CATALOG, TYPE_ABBREVIATIONS, ModelEntry
from finetune.core.dataset import MediaLocation, validate_file
from finetune.core.formats import DataFormat, batch_size_of

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
    assert rows["prices in"].split() == ["prices", "in", "us-west-2", "us-east-1"]
    assert rows["price: storage / month"].split() == [
        "price:",
        "storage",
        "/",
        "month",
        "$20.00",
        "[1]",
        "$1.95",
        "[1]",
    ]
    assert rows["price: training / 1k tokens"].split()[-4:] == ["$0.012", "[1]", "$0.001", "[1]"]
    assert rows["price: on-demand / 1k input tokens"].split()[-4:] == ["not", "offered", "$0.000035", "[1]"]
    assert "price: training / image seen" not in rows, "a price no model in the comparison has is left out"
    assert "  [1] AWS Price List API, service AmazonBedrock, https://pricing.us-east-1.amazonaws.com/" in out
    assert "environments.<env>.pricing.<model id>.<field>" in out


def test_compare_prices_every_model_in_a_given_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compare", HAIKU, NOVA_MICRO, "--region", "us-west-2")
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert code == cli.EXIT_OK
    assert rows["price: storage / month"].split()[-4:] == ["$20.00", "[1]", "unknown", "[2]"]
    assert "  [2] not published in any source found" in out


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


# -- models show ------------------------------------------------------------------------------------


def example_records(out: str) -> list[str]:
    """The line after each "example record:" heading, as printed."""
    lines = out.splitlines()
    return [lines[index + 1].strip() for index, line in enumerate(lines) if line.strip() == "example record:"]


@pytest.mark.parametrize("model", CATALOG, ids=lambda model: model.model_id)
def test_show_prints_an_example_record_the_validator_accepts_for_each_type(
    model: ModelEntry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "show", model.model_id)
    assert code == cli.EXIT_OK and err == ""
    examples = example_records(out)
    assert len(examples) == len(model.customizations)
    for customization, example in zip(model.customizations, examples, strict=True):
        record = json.loads(example)  # one line of valid JSON
        assert isinstance(record, dict)
        limits = customization.limits
        # A file of the example alone, as often as the type's minimum asks: no error, no warning on it.
        path = tmp_path / f"{customization.type}.jsonl"
        path.write_text((example + "\n") * (limits.min_records or 1), encoding="utf-8")
        report = validate_file(
            path,
            limits=limits,
            batch_size=batch_size_of(
                {spec.key: str(spec.default) for spec in model.hyperparameters if spec.default is not None}
            ),
            media_location=MediaLocation(EXAMPLE_BUCKET),  # uploaded to the bucket it names
        )
        assert report.ok, [str(issue) for issue in report.errors]
        assert [str(issue) for issue in report.warnings if issue.line == 1] == []  # the rest: duplicates
        assert f"{customization.type} ({TYPE_ABBREVIATIONS[customization.type]}) in " in out


def test_show_lists_types_regions_limits_hyperparameters_and_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "show", NOVA_MICRO)
    assert code == cli.EXIT_OK
    lines = out.splitlines()
    assert lines[0] == f"{NOVA_MICRO}: Nova Micro (Amazon)"
    assert "FINE_TUNING (FT) in us-east-1" in lines and "DISTILLATION (DIST) in us-east-1" in lines
    assert "  data format: bedrock-conversation-2024" in lines
    assert "  training records: 8..20,000" in lines
    assert any(
        line.startswith("  tokens per record: <=32,000, estimated as characters / 6") for line in lines
    )
    assert "  media formats: images none (text only); videos none" in lines  # Nova Micro reads text only
    assert "  teacher models: amazon.nova-pro-v1:0, amazon.nova-premier-v1:0" in lines
    assert any(
        line.startswith('    {"schemaVersion": "bedrock-conversation-2024", "system"?:') for line in lines
    )
    assert any(line.split() == ["epochCount", "int", "1..5,", "default", "2"] for line in lines)
    assert any(line.split()[:2] == ["learningRate", "float"] for line in lines)
    assert "  on_demand: in us-east-1 (custom model deployment)" in lines
    assert (
        f"  check a file: python -m finetune validate --model {NOVA_MICRO} --customization-type DIST FILE"
        in lines
    )


def test_show_lists_the_media_a_model_takes(capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = run(capsys, "show", "amazon.nova-lite-v1:0:300k")
    lines = out.splitlines()
    media = next(line for line in lines if line.startswith("  media formats: "))
    assert "png" in media and "webm" in media  # Nova Lite takes webp images and webm videos too
    assert "  images per record: at most 10" in lines


def test_show_names_caption_bounds_and_a_missing_validation_set(capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = run(capsys, "show", "amazon.titan-image-generator-v2:0")
    assert "  caption length: 3..1,024 characters" in out.splitlines()
    assert "  validation set: not allowed" in out.splitlines()
    assert "  on_demand: no (custom model deployment)" in out.splitlines()


def test_show_of_an_alias_shows_the_model_and_says_which_id_a_job_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "show", "anthropic.claude-3-haiku-20240307-v1:0")
    assert code == cli.EXIT_OK
    assert out.splitlines()[0] == f"{HAIKU}: Claude 3 Haiku (Anthropic)"
    assert "a job's base model takes the id above" in out.splitlines()[1]


def test_show_of_an_unknown_id_is_a_usage_error_with_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "amazon.nova-lite")
    assert code == cli.EXIT_USAGE and out == ""
    assert "unknown model id 'amazon.nova-lite'; closest: amazon.nova-lite-v1:0:300k" in err


def test_every_format_has_rules_and_an_example() -> None:
    assert set(RECORD_FORMATS) == set(DataFormat)
    for record_format in RECORD_FORMATS.values():
        assert record_format.rules and "\n" not in record_format.example_line()
