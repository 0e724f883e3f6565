"""`python -m finetune validate`: output format and exit codes (0 valid, 1 invalid data, 2 usage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune.cli import main as cli
from tests.conftest import SAMPLE_PROJECT

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"
NOVA = "amazon.nova-lite-v1:0:300k"
TITAN_TEXT = "amazon.titan-text-express-v1:0:8k"
TITAN_IMAGE = "amazon.titan-image-generator-v2:0"


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def claude_records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": "answer"},
            ]
        }
        for i in range(count)
    ]


def prompt_completions(count: int, prompt_chars: int = 10) -> list[dict[str, Any]]:
    return [{"prompt": f"{i:05d}" + "p" * prompt_chars, "completion": "c"} for i in range(count)]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = cli.main(["validate", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_valid_file_exits_0_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", claude_records(32))
    code, out, err = run(["--model", CLAUDE, str(path)], capsys)
    assert code == 0 and err == ""
    assert out[0] == f"{path}: valid (training data, 32 records, {path.stat().st_size:,} bytes)"
    assert out[1].startswith(f"{path}: estimated tokens: ") and "characters / 6" in out[1]
    assert out[2].startswith(f"{path}: largest record: line ") and out[2].endswith(" tokens")
    assert out[3].startswith(f"{path}: estimated training cost in us-west-2: ")
    assert "(tokens x 2 epochs x $0.012 per 1k tokens; default hyperparameters)" in out[3]
    assert "[source: AWS Price List API, service AmazonBedrock" in out[3]
    assert len(out) == 4


def test_warnings_alone_still_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = claude_records(32)
    path = write_jsonl(tmp_path / "train.jsonl", [*records, records[0]])
    code, out, _ = run(["--model", CLAUDE, str(path)], capsys)
    assert code == 0
    assert out[0] == f"{path}:33: warning: duplicate record: identical to line 1"
    assert out[1].startswith(f"{path}: valid, 1 warning")


def test_invalid_data_exits_1_with_one_problem_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = claude_records(32)
    records[4]["messages"][1]["role"] = "user"
    path = write_jsonl(tmp_path / "train.jsonl", records)
    with path.open("a", encoding="utf-8") as stream:
        stream.write("{broken\n")
    code, out, _ = run(["--model", CLAUDE, str(path)], capsys)
    assert code == 1
    assert out[0] == (
        f'{path}:5: error: messages[1].role: expected "assistant" after "user" '
        "(roles alternate, starting with user, ending with assistant)"
    )
    assert out[1].startswith(f"{path}:33: error: invalid JSON: Expecting property name")
    assert out[2].startswith(f"{path}: INVALID, 2 errors (training data, 33 records")


def test_record_count_is_checked_against_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", prompt_completions(99))
    code, out, _ = run(["--model", LLAMA, str(path)], capsys)
    assert code == 1
    assert out[0] == f"{path}: error: 99 records; at least 100 are required for training data"


def test_every_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", prompt_completions(100))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p"}] * 100)
    code, out, _ = run(["--model", LLAMA, str(good), str(bad)], capsys)
    assert code == 1
    assert out[0].startswith(f"{good}: valid")
    assert f"{bad}:1: error: completion: missing (required: a non-empty string)" in out
    assert any(line.startswith(f"{bad}: INVALID, 100 errors") for line in out)


def test_token_limit_uses_the_default_batch_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Titan Text Express: 4,096 tokens at batchSize 1 (its default), 2,048 at 2-4.
    path = write_jsonl(tmp_path / "train.jsonl", prompt_completions(3, prompt_chars=3_000 * 6))
    code, out, _ = run(["--model", TITAN_TEXT, str(path)], capsys)
    assert code == 0, out
    assert out[-1] == "(token limits checked for batchSize 1)"
    code, out, _ = run(["--model", TITAN_TEXT, "--batch-size", "2", str(path)], capsys)
    assert code == 1
    assert "at most 2,048 tokens per record are accepted at batch size 2" in out[0]


def test_continued_pre_training_takes_input_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "cpt.jsonl", [{"input": "raw text"}, {"prompt": "p", "completion": "c"}])
    code, out, _ = run(["--model", TITAN_TEXT, "--customization-type", "cpt", str(path)], capsys)
    assert code == 1
    assert out[0] == f"{path}:2: error: input: missing (required: a non-empty string)"


def test_converse_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [
            {"role": "user", "content": [{"text": "hi"}]},
            {"role": "assistant", "content": "hello"},
        ],
    }
    path = write_jsonl(tmp_path / "nova.jsonl", [record] * 8)
    code, out, _ = run(["--model", NOVA, str(path)], capsys)
    assert code == 1
    assert out[0] == (
        f"{path}:1: error: messages[1].content: expected an array of content blocks, got a string "
        '(write [{"text": "..."}])'
    )


def test_bucket_checks_that_media_are_under_its_media_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--bucket checks a file before its upload as the job trigger checks it after (finding 51)."""
    image = {"format": "png", "source": {"s3Location": {"uri": "s3://stack-bucket/media/a.png"}}}
    records = [
        {
            "schemaVersion": "bedrock-conversation-2024",
            "messages": [
                {"role": "user", "content": [{"image": image}, {"text": f"what is it ({n})?"}]},
                {"role": "assistant", "content": [{"text": "a router"}]},
            ],
        }
        for n in range(8)
    ]
    path = write_jsonl(tmp_path / "nova.jsonl", records)
    assert run(["--model", NOVA, "--bucket", "stack-bucket", str(path)], capsys)[0] == 0
    code, out, _ = run(["--model", NOVA, "--bucket", "other-bucket", str(path)], capsys)
    assert code == 1
    assert out[0] == (
        f'{path}:1: error: messages[0].content[0].image.source.s3Location.uri: "s3://stack-bucket/media/a.png" '
        "is not under s3://other-bucket/media/: images and videos must be in the dataset's bucket, under "
        "media/, where the job's role reads them"
    )
    assert run(["--model", NOVA, str(path)], capsys)[0] == 0  # without --bucket: not checked


def test_validation_set_for_a_model_without_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "val.jsonl", [{"image-ref": "s3://b/a.png", "caption": "a cat"}] * 5)
    code, out, _ = run(["--model", TITAN_IMAGE, "--validation", str(path)], capsys)
    assert code == 1
    assert out[0].startswith(f"{path}: error: a validation set is not accepted for this model")
    assert out[1].startswith(f"{path}: INVALID, 1 error (validation data")


def test_unknown_model_is_a_usage_error_with_suggestions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", claude_records(32))
    code, out, err = run(["--model", "anthropic.claude-3-haiku", str(path)], capsys)
    assert code == 2 and out == []
    assert "unknown model 'anthropic.claude-3-haiku'; did you mean " + CLAUDE in err


def test_unsupported_customization_type_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", claude_records(32))
    code, out, err = run(
        ["--model", CLAUDE, "--customization-type", "CONTINUED_PRE_TRAINING", str(path)], capsys
    )
    assert code == 2 and out == []
    assert f"{CLAUDE} does not support CONTINUED_PRE_TRAINING; it supports: FINE_TUNING" in err


def test_missing_file_is_a_usage_error_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_jsonl(tmp_path / "train.jsonl", claude_records(32))
    missing = tmp_path / "nope.jsonl"
    code, out, err = run(["--model", CLAUDE, str(good), str(missing)], capsys)
    assert code == 2 and out == []
    assert f"{missing}: no such file" in err
    code, _, err = run(["--model", CLAUDE, str(tmp_path)], capsys)
    assert code == 2 and "not a regular file" in err


@pytest.mark.parametrize(
    ("model", "batch_size", "message"),
    [
        (CLAUDE, "2", "--batch-size 2 is outside"),
        (NOVA, "4", "takes no batchSize hyperparameter"),
    ],
)
def test_batch_size_must_fit_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, batch_size: str, message: str
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", claude_records(32))
    code, out, err = run(["--model", model, "--batch-size", batch_size, str(path)], capsys)
    assert code == 2 and out == []
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", CLAUDE],  # no FILE
        ["--model", CLAUDE, "--batch-size", "0", "f.jsonl"],
        ["--model", CLAUDE, "--customization-type", "PRETRAINING", "f.jsonl"],
        ["f.jsonl"],  # no --model
    ],
)
def test_argument_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", *argv])
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_training_data_summary_ends_with_an_estimated_training_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = Path(__file__).resolve().parents[2] / "training_data" / "sql-generator" / "train.jsonl"
    assert cli.main(["validate", "--model", "meta.llama3-1-8b-instruct-v1:0:128k", str(path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "train.jsonl: estimated training cost in us-west-2: $" in last
    assert "(tokens x 5 epochs x $0.00149 per 1k tokens; default hyperparameters)" in last
    assert last.endswith(
        "[source: Amazon Bedrock pricing page, https://aws.amazon.com/bedrock/pricing/, as of 2026-07-24]"
    )


# -- validate ENV FINE_TUNING -----------------------------------------------------------------------


def project(tmp_path: Path, fine_tuning: dict[str, Any], files: dict[str, str]) -> Path:
    """A project with one environment and the fine-tuning `ft`, its data files written under training_data/."""
    context = {"environments": {"dev": {"region": "us-west-2"}}, "fine_tunings": {"ft": fine_tuning}}
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "unused", "context": context}))
    for name, text in files.items():
        path = tmp_path / "training_data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_a_fine_tuning_is_checked_with_its_model_its_epochs_and_both_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["dev", "support-assistant", "--project", str(SAMPLE_PROJECT)], capsys)
    assert code == 0 and err == ""
    assert out[0] == f"dev/support-assistant: FINE_TUNING of {CLAUDE}, batchSize 8 (from cdk.json)"
    assert (
        "training_data/support-assistant/train.jsonl: valid (training data, 60 records, 47,853 bytes)" in out
    )
    assert any(
        line.startswith("training_data/support-assistant/validation.jsonl: valid (validation data, 36")
        for line in out
    )
    cost = next(line for line in out if "estimated training cost" in line)
    assert (
        "(tokens x 1 epoch x $0.012 per 1k tokens; dev/support-assistant's hyperparameters" in cost
    )  # dev trains one epoch less


def test_a_fine_tuning_is_checked_with_its_resolved_batch_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Titan Text Express: 4,096 tokens per record at batchSize 1, 2,048 at 2 to 4.
    record = {"prompt": "p" * 15_000, "completion": "c"}  # about 2,500 tokens
    root = project(
        tmp_path,
        {"base_model": TITAN_TEXT, "training_data": "ft/train.jsonl", "hyperparameters": {"batchSize": 2}},
        {"ft/train.jsonl": json.dumps(record) + "\n"},
    )
    code, out, _ = run(["dev", "ft", "--project", str(root)], capsys)
    assert code == 1
    assert out[0] == f"dev/ft: FINE_TUNING of {TITAN_TEXT}, batchSize 2 (from cdk.json)"
    assert out[2].startswith("training_data/ft/train.jsonl:1: error: ") and "2,048" in out[2]
    assert out[-1] == "(token limits checked for batchSize 2)"
    # The same file against the model's default batch size (1) is valid.
    code, _, _ = run(["--model", TITAN_TEXT, str(root / "training_data/ft/train.jsonl")], capsys)
    assert code == 0


def test_invalid_data_of_a_fine_tuning_exits_1_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = claude_records(32)
    records[2]["messages"][1]["content"] = ""
    text = "".join(json.dumps(record) + "\n" for record in records)
    root = project(
        tmp_path, {"base_model": CLAUDE, "training_data": "ft/train.jsonl"}, {"ft/train.jsonl": text}
    )
    code, out, _ = run(["dev", "ft", "--project", str(root)], capsys)
    assert code == 1
    assert (
        out[2]
        == "training_data/ft/train.jsonl:3: error: messages[1].content: empty; a non-empty string is required"
    )


def test_a_fine_tuning_the_catalog_rejects_exits_1_with_the_config_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path,
        {"base_model": CLAUDE, "training_data": "ft/train.jsonl", "hyperparameters": {"epochCount": 99}},
        {"ft/train.jsonl": "".join(json.dumps(r) + "\n" for r in claude_records(32))},
    )
    code, out, err = run(["dev", "ft", "--project", str(root)], capsys)
    assert code == 1 and out == []
    assert err.startswith("cdk.json: invalid configuration (1 problems):")
    assert "fine_tunings.ft.hyperparameters.epochCount: 99 is out of range" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["dev", "nope"],
            "no fine-tuning 'nope' in environment 'dev'; known: support-assistant, sql-generator",
        ),
        (["qa", "support-assistant"], "no environment 'qa' in cdk.json; known: dev, prod"),
        (["--batch-size", "4", "dev", "support-assistant"], "--batch-size: not with ENV FINE_TUNING"),
        (["--validation", "dev", "support-assistant"], "--validation: not with ENV FINE_TUNING"),
    ],
)
def test_fine_tuning_form_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([*argv, "--project", str(SAMPLE_PROJECT)], capsys)
    assert code == 2 and out == []
    assert message in err


def test_project_is_refused_with_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--model", CLAUDE, "--project", ".", "f.jsonl"], capsys)
    assert code == 2 and "--project: only with ENV FINE_TUNING" in err


def test_neither_model_nor_two_names_shows_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", "a.jsonl", "b.jsonl", "c.jsonl"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "validate ENV FINE_TUNING [--project DIR]" in err
    assert "give --model MODEL_ID and the FILEs to check, or ENV FINE_TUNING" in err
