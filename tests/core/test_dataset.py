"""The training-data validator, rule by rule: valid and invalid records, file-level checks, robustness."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from finetune.core.dataset import (
    DEFAULT_MAX_LINE_BYTES,
    DataIssue,
    DatasetReport,
    MediaLocation,
    validate_file,
    validate_stream,
)
from finetune.core.formats import (
    TOKEN_ESTIMATE_METHOD,
    DataFormat,
    DatasetLimits,
    TokenLimit,
    estimate_tokens,
)

PROMPT_COMPLETION = DatasetLimits(DataFormat.PROMPT_COMPLETION)
CPT = DatasetLimits(DataFormat.CONTINUED_PRE_TRAINING)
CLAUDE = DatasetLimits(DataFormat.CLAUDE_MESSAGES)
CONVERSE = DatasetLimits(
    DataFormat.CONVERSE, image_formats=("png", "jpeg"), video_formats=("mp4",), max_images_per_record=2
)
TEXT_ONLY_CONVERSE = DatasetLimits(DataFormat.CONVERSE)
IMAGE_CAPTION = DatasetLimits(DataFormat.IMAGE_CAPTION, caption_min_chars=3, caption_max_chars=20)

S3_IMAGE = {"format": "png", "source": {"s3Location": {"uri": "s3://data-bucket/media/cat.png"}}}
S3_VIDEO = {"format": "mp4", "source": {"s3Location": {"uri": "s3://data-bucket/media/cat.mp4"}}}


def line(record: object) -> bytes:
    return json.dumps(record).encode()


def report_for(
    lines: Sequence[bytes | str | object],
    limits: DatasetLimits,
    *,
    newline_at_end: bool = True,
    **options: Any,
) -> DatasetReport:
    """Validate `lines` (bytes as they are, str encoded, anything else as JSON) from memory."""
    encoded = [
        item if isinstance(item, bytes) else item.encode() if isinstance(item, str) else line(item)
        for item in lines
    ]
    data = b"\n".join(encoded) + (b"\n" if newline_at_end and encoded else b"")
    return validate_stream(io.BytesIO(data), file="data.jsonl", limits=limits, **options)


def messages_of(report: DatasetReport, severity: str = "error") -> list[tuple[int | None, str]]:
    issues = report.errors if severity == "error" else report.warnings
    return [(issue.line, issue.message) for issue in issues]


def assert_one_issue(
    report: DatasetReport, line_number: int | None, *keywords: str, severity: str = "error"
) -> DataIssue:
    issues = report.errors if severity == "error" else report.warnings
    matching = [issue for issue in issues if issue.line == line_number]
    assert len(matching) == 1, f"expected one {severity} on line {line_number}, got {issues}"
    for keyword in keywords:
        assert keyword in matching[0].message, f"{keyword!r} not in {matching[0].message!r}"
    return matching[0]


def claude(*turns: tuple[str, str], system: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"messages": [{"role": role, "content": content} for role, content in turns]}
    if system is not None:
        record["system"] = system
    return record


def converse(*turns: tuple[str, Any], system: list[Any] | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{"role": role, "content": content} for role, content in turns],
    }
    if system is not None:
        record["system"] = system
    return record


def text(value: str) -> dict[str, Any]:
    return {"text": value}


# --------------------------------------------------------------------------------------------------
# DataIssue and DatasetReport
# --------------------------------------------------------------------------------------------------


def test_issue_prints_compiler_style() -> None:
    assert str(DataIssue("a.jsonl", 3, "bad", "error")) == "a.jsonl:3: error: bad"
    assert str(DataIssue("a.jsonl", None, "too big", "warning")) == "a.jsonl: warning: too big"


def test_valid_file_report_figures_and_summary() -> None:
    records = [{"prompt": "a" * 12, "completion": "b" * 6}, {"prompt": "x" * 60, "completion": "y"}]
    report = report_for(records, PROMPT_COMPLETION)
    assert report.ok and not report.warnings and not report.capped
    assert report.records == 2
    assert report.estimated_tokens == estimate_tokens(18) + estimate_tokens(61) == 3 + 11
    assert (report.largest_record_line, report.largest_record_tokens) == (2, 11)
    assert report.size_bytes == sum(len(line(r)) + 1 for r in records)
    summary = report.summary_lines()
    assert summary[0].startswith("data.jsonl: valid (training data, 2 records")
    assert "estimated tokens: 14" in summary[1] and TOKEN_ESTIMATE_METHOD in summary[1]
    assert "largest record: line 2, about 11 tokens" in summary[2]


def test_issues_are_ordered_file_level_first_then_by_line() -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, min_records=5)
    report = report_for([{"prompt": "a"}, {"prompt": "a", "completion": "b", "x": 1}, "oops"], limits)
    assert [issue.line for issue in report.issues()] == [None, 1, 2, 3]
    assert not report.ok
    assert report.summary_lines()[0].startswith("data.jsonl: INVALID, 3 errors")


# --------------------------------------------------------------------------------------------------
# Lines: JSON, UTF-8, blank lines, newlines
# --------------------------------------------------------------------------------------------------

VALID_PC = {"prompt": "p", "completion": "c"}


def test_invalid_json_names_line_and_column() -> None:
    report = report_for([VALID_PC, '{"prompt": "p" "completion": "c"}'], PROMPT_COMPLETION)
    assert_one_issue(report, 2, "invalid JSON", "Expecting ',' delimiter", "column 16")


def test_two_objects_on_one_line() -> None:
    report = report_for(
        ['{"prompt": "p", "completion": "c"} {"prompt": "q", "completion": "d"}'], PROMPT_COMPLETION
    )
    assert_one_issue(report, 1, "more than one JSON value", "own line")


def test_pretty_printed_json_is_explained_once() -> None:
    report = report_for(["{", '  "prompt": "p",', '  "completion": "c"', "}"], PROMPT_COMPLETION)
    assert_one_issue(report, 1, "pretty-printed JSON", "one line")
    assert [issue.line for issue in report.errors] == [1, None]
    assert_one_issue(report, None, "3 more lines are not one JSON object each (2, 3, 4)", "as line 1")


def test_a_pretty_printed_json_array_is_one_problem_not_one_per_line() -> None:
    record = {"prompt": "p", "completion": "c"}
    pretty = json.dumps([{**record, "prompt": str(i)} for i in range(20)], indent=2).splitlines()
    assert len(pretty) == 82
    report = report_for(pretty, PROMPT_COMPLETION)
    assert_one_issue(report, 1, "looks like a JSON array", "no enclosing [ ]")
    note = assert_one_issue(report, None, "81 more lines are not one JSON object each (2, 3, 4, 5, 6, ...)")
    assert "the same cause as line 1, not listed one by one" in note.message
    assert len(report.errors) == 2 and report.error_count == 2


def test_a_json_array_of_one_line_objects_is_named_once_and_its_records_still_checked() -> None:
    lines = [
        "[",
        '{"prompt": "a", "completion": "b"},',
        '{"prompt": "c"},',
        '{"prompt": "d", "completion": "e"}',
        "]",
    ]
    report = report_for(lines, PROMPT_COMPLETION)
    assert_one_issue(report, 1, "looks like a JSON array")
    assert_one_issue(report, 3, "completion: missing")  # the record before the comma is checked
    assert_one_issue(report, None, "3 more lines are not one JSON object each (2, 3, 5)")


def test_a_trailing_comma_is_named_as_such_once() -> None:
    lines = ['{"prompt": "a", "completion": "b"},', '{"prompt": "c", "completion": "d"} ,', VALID_PC]
    report = report_for(lines, PROMPT_COMPLETION)
    first = assert_one_issue(report, 1, "a trailing comma after the object (column 35)", "remove the comma")
    assert "more than one JSON value" not in first.message
    assert_one_issue(report, None, "1 more line ends in a trailing comma (2); remove the comma on each")
    assert not [issue for issue in report.errors if issue.line == 2]
    assert report.records == 3


def test_a_trailing_comma_after_a_record_with_problems_reports_both() -> None:
    report = report_for(['{"prompt": "a"},'], PROMPT_COMPLETION)
    assert {message for _, message in messages_of(report)} >= {
        "a trailing comma after the object (column 16): JSON Lines has nothing between records but "
        "the newline; remove the comma",
        "completion: missing (required: a non-empty string)",
    }


def test_other_syntax_errors_are_each_reported() -> None:
    lines = ['{"prompt": "p" "completion": "c"}', "{'prompt': 'p'}", '{"prompt": "q", "completion": ""']
    report = report_for(lines, PROMPT_COMPLETION)
    assert_one_issue(report, 1, "invalid JSON", "Expecting ',' delimiter")
    assert_one_issue(report, 2, "invalid JSON", "double quotes")
    cut_short = assert_one_issue(report, 3, "invalid JSON", "Expecting ',' delimiter")
    assert "pretty-printed" not in cut_short.message


def test_an_object_broken_after_a_member_is_taken_for_pretty_printed_json() -> None:
    report = report_for([VALID_PC, '{"prompt": "p",', '"completion": "c"}'], PROMPT_COMPLETION)
    assert_one_issue(report, 2, "the object does not end on this line", "pretty-printed JSON")
    assert_one_issue(report, None, "1 more line is not one JSON object (3)")


@pytest.mark.parametrize(
    ("value", "shown"), [("[1, 2]", "an array"), ('"text"', "a string"), ("3", "a number")]
)
def test_line_must_be_an_object(value: str, shown: str) -> None:
    assert_one_issue(report_for([value], PROMPT_COMPLETION), 1, "expected a JSON object", shown)


def test_leading_whitespace_and_crlf_are_fine() -> None:
    data = b'  {"prompt": "p", "completion": "c"}\r\n{"prompt": "q", "completion": "d"}  \r\n'
    report = validate_stream(io.BytesIO(data), file="crlf.jsonl", limits=PROMPT_COMPLETION)
    assert report.ok and report.records == 2


def test_invalid_utf8_names_the_byte() -> None:
    report = report_for([VALID_PC, b'{"prompt": "caf\xe9", "completion": "c"}'], PROMPT_COMPLETION)
    assert_one_issue(report, 2, "not valid UTF-8", "0xe9", "byte 16")
    assert report.records == 2


def test_multibyte_characters_across_chunk_boundaries_are_decoded() -> None:
    # 20,000 records of multi-byte text: chunk boundaries (256 KiB) fall inside characters.
    record = {"prompt": "héllo wörld ✓ " * 3, "completion": "日本語のテキスト"}
    report = report_for([record] * 20_000, PROMPT_COMPLETION)
    assert not report.errors and report.records == 20_000
    assert len(report.warnings) == 101  # duplicates: 100 listed plus the "more not shown" note


@pytest.mark.parametrize("blank", ["", "   ", "\t\r"])
def test_blank_lines_are_errors(blank: str) -> None:
    report = report_for([VALID_PC, blank, {"prompt": "q", "completion": "d"}], PROMPT_COMPLETION)
    assert_one_issue(report, 2, "blank line", "remove blank lines")
    assert report.records == 2


def test_missing_trailing_newline_is_fine() -> None:
    report = report_for(
        [VALID_PC, {"prompt": "q", "completion": "d"}], PROMPT_COMPLETION, newline_at_end=False
    )
    assert report.ok and report.records == 2


def test_utf8_bom_is_reported_once_and_the_line_still_checked() -> None:
    data = b"\xef\xbb\xbf" + line(VALID_PC) + b"\n" + line({"prompt": "q"}) + b"\n"
    report = validate_stream(io.BytesIO(data), file="bom.jsonl", limits=PROMPT_COMPLETION)
    assert messages_of(report)[0][0] == 1 and "byte order mark" in messages_of(report)[0][1]
    assert_one_issue(report, 2, "completion: missing")
    assert report.records == 2 and report.size_bytes == len(data)


# --------------------------------------------------------------------------------------------------
# prompt/completion, continued pre-training
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "keywords"),
    [
        ({"completion": "c"}, ["prompt: missing", "non-empty string"]),
        ({"prompt": "p"}, ["completion: missing"]),
        ({"prompt": 1, "completion": "c"}, ["prompt: expected a string, got a number"]),
        ({"prompt": "p", "completion": None}, ["completion: expected a string, got null"]),
        ({"prompt": "", "completion": "c"}, ["prompt: empty"]),
        ({"prompt": "p", "completion": ["c"]}, ["completion: expected a string, got an array"]),
    ],
)
def test_prompt_completion_errors(record: dict[str, Any], keywords: list[str]) -> None:
    report = report_for([VALID_PC, record], PROMPT_COMPLETION)
    assert_one_issue(report, 2, *keywords)


def test_prompt_completion_unknown_field_is_a_warning() -> None:
    report = report_for([{"prompt": "p", "completion": "c", "id": 7}], PROMPT_COMPLETION)
    assert report.ok
    assert_one_issue(report, 1, 'unknown field "id"', '"prompt", "completion"', severity="warning")


def test_a_completion_over_its_own_token_limit_is_an_error() -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, completion_max_tokens=10)
    report = report_for(
        [{"prompt": "p" * 500, "completion": "c" * 60}, {"prompt": "p", "completion": "c" * 61}], limits
    )
    assert_one_issue(
        report,
        1,
        "completion is about 10 tokens (60 characters), 100% of the 10-token limit for the output",
        severity="warning",
    )
    assert_one_issue(
        report, 2, "completion: about 11 tokens (61 characters); at most 10 output tokens are accepted"
    )
    assert not [issue for issue in report.errors if issue.line == 1]  # the prompt is not limited by it
    with_extra_field = report_for([{"prompt": "p", "completion": "c" * 61, "id": 1}], limits)
    assert_one_issue(with_extra_field, 1, "at most 10 output tokens")
    assert report_for([{"prompt": "p", "completion": "c" * 40}], limits).ok
    assert not report_for([{"prompt": "p", "completion": "c" * 40}], limits).warnings


def test_continued_pre_training() -> None:
    assert report_for([{"input": "some text"}], CPT).ok
    report = report_for([{"input": ""}, {"text": "t"}, {"input": 3}], CPT)
    assert_one_issue(report, 1, "input: empty")
    assert_one_issue(report, 2, "input: missing")
    assert_one_issue(report, 2, 'unknown field "text"', severity="warning")
    assert_one_issue(report, 3, "input: expected a string, got a number")


# --------------------------------------------------------------------------------------------------
# Claude 3 messages
# --------------------------------------------------------------------------------------------------


def test_claude_valid_with_and_without_system() -> None:
    records = [
        claude(("user", "hi"), ("assistant", "hello")),
        claude(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"), system="be brief"),
    ]
    report = report_for(records, CLAUDE)
    assert report.ok and not report.warnings
    assert report.estimated_tokens == estimate_tokens(7) + estimate_tokens(12)


@pytest.mark.parametrize(
    ("record", "keywords"),
    [
        (
            claude(("user", "a"), ("user", "b"), ("assistant", "c")),
            ['messages[1].role: expected "assistant" after "user"', "roles alternate"],
        ),
        (
            claude(("assistant", "a"), ("user", "b"), ("assistant", "c")),
            ['messages[0].role: expected "user" first, got "assistant"'],
        ),
        (
            claude(("user", "a"), ("assistant", "b"), ("user", "c")),
            ["messages[2].role: the last message", "assistant"],
        ),
        (claude(("user", "a")), ['messages[0].role: the last message must be from "assistant"']),
        (
            claude(("system", "a"), ("user", "b"), ("assistant", "c")),
            ['messages[0].role: expected "user" or "assistant", got "system"', 'top-level "system"'],
        ),
        (
            {"messages": [{"content": "a"}, {"role": "assistant", "content": "b"}]},
            ["messages[0].role: missing"],
        ),
        (claude(("user", ""), ("assistant", "b")), ["messages[0].content: empty"]),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text"}]},
                    {"role": "assistant", "content": "b"},
                ]
            },
            ["messages[0].content: expected a string, got an array"],
        ),
        ({"messages": []}, ["messages: empty"]),
        ({"messages": "hi"}, ["messages: expected an array", "got a string"]),
        ({"system": "s"}, ["messages: missing"]),
        (
            {
                "system": ["s"],
                "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            },
            ["system: expected a string", "got an array"],
        ),
        ({"messages": ["hi", {"role": "assistant", "content": "b"}]}, ["messages[0]: expected an object"]),
    ],
)
def test_claude_errors(record: dict[str, Any], keywords: list[str]) -> None:
    report = report_for([claude(("user", "ok"), ("assistant", "ok")), record], CLAUDE)
    assert_one_issue(report, 2, *keywords)


def test_claude_unknown_fields_are_errors_citing_anthropic() -> None:
    record = claude(("user", "a"), ("assistant", "b"))
    record["id"] = "x"
    record["messages"][0]["name"] = "bob"
    report = report_for([claude(("user", "ok"), ("assistant", "ok")), record], CLAUDE)
    assert not report.ok and not report.warnings
    errors = [message for line_number, message in messages_of(report) if line_number == 2]
    assert len(errors) == 2
    top = next(message for message in errors if message.startswith('unknown field "id"'))
    assert 'accepted fields are "system", "messages"' in top
    assert '"No extraneous keys are allowed"' in top and "Claude 3 Haiku" in top
    assert any(message.startswith('messages[0]: unknown field "name"') for message in errors)


# --------------------------------------------------------------------------------------------------
# Converse (bedrock-conversation-2024)
# --------------------------------------------------------------------------------------------------

VALID_CONVERSE = converse(("user", [text("hi")]), ("assistant", [text("hello")]), system=[text("be nice")])


def test_converse_valid_text_and_media() -> None:
    records = [
        VALID_CONVERSE,
        converse(
            ("user", [{"image": S3_IMAGE}, {"image": S3_IMAGE}, text("what is it")]),
            ("assistant", [text("a cat")]),
        ),
        converse(
            ("user", [text("q")]),
            ("assistant", [{"reasoningContent": {"reasoningText": {"text": "hmm"}}}, text("a")]),
        ),
    ]
    report = report_for(records, CONVERSE)
    assert report.ok and not report.warnings, report.issues()
    assert report.estimated_tokens == estimate_tokens(14) + estimate_tokens(15) + estimate_tokens(5)


@pytest.mark.parametrize(
    ("record", "keywords"),
    [
        (
            {k: v for k, v in VALID_CONVERSE.items() if k != "schemaVersion"},
            ["schemaVersion: missing", "bedrock-conversation-2024"],
        ),
        ({**VALID_CONVERSE, "schemaVersion": 2024}, ["schemaVersion: expected", "got a number"]),
        ({**VALID_CONVERSE, "system": "be nice"}, ["system: expected an array", "got a string"]),
        ({**VALID_CONVERSE, "system": [{"text": ""}]}, ["system[0].text: empty"]),
        (
            converse(("user", [text("a")]), ("user", [text("b")]), ("assistant", [text("c")])),
            ['messages[1].role: expected "assistant" after "user"'],
        ),
        (converse(("assistant", [text("a")])), ['messages[0].role: expected "user" first']),
        (
            converse(("user", [text("a")]), ("assistant", [text("b")]), ("user", [text("c")])),
            ["the last message"],
        ),
        (
            converse(("user", "hi"), ("assistant", [text("b")])),
            ["messages[0].content: expected an array", "got a string"],
        ),
        (converse(("user", []), ("assistant", [text("b")])), ["messages[0].content: empty"]),
        (converse(("user", [text("")]), ("assistant", [text("b")])), ["messages[0].content[0].text: empty"]),
        (
            converse(("user", [{"toolUse": {}}]), ("assistant", [text("b")])),
            ['messages[0].content[0]: unknown content block "toolUse"'],
        ),
        (
            converse(("user", [{"text": "a", "image": S3_IMAGE}]), ("assistant", [text("b")])),
            ["messages[0].content[0]: a content block has exactly one of"],
        ),
        (
            converse(("user", [text("a")]), ("assistant", [{"image": S3_IMAGE}])),
            ['messages[1].content[0]: image blocks are accepted in "user" turns only'],
        ),
        (
            converse(("user", [{"image": {**S3_IMAGE, "format": "bmp"}}]), ("assistant", [text("b")])),
            ['messages[0].content[0].image.format: expected one of "png", "jpeg", got "bmp"'],
        ),
        (
            converse(
                ("user", [{"image": {"format": "png", "source": {"bytes": "AAA"}}}]),
                ("assistant", [text("b")]),
            ),
            ["messages[0].content[0].image.source: expected", "s3Location"],
        ),
        (
            converse(
                (
                    "user",
                    [{"image": {"format": "png", "source": {"s3Location": {"uri": "https://x/y.png"}}}}],
                ),
                ("assistant", [text("b")]),
            ),
            ["messages[0].content[0].image.source.s3Location.uri: expected an S3 URI"],
        ),
        (
            converse(("user", [{"image": S3_IMAGE}] * 3), ("assistant", [text("b")])),
            ["3 images in this record; at most 2"],
        ),
        (
            converse(("user", [{"video": S3_VIDEO}, {"video": S3_VIDEO}]), ("assistant", [text("b")])),
            ["2 videos in this record; at most one"],
        ),
        (
            {**VALID_CONVERSE, "toolConfig": {}},
            ['unknown field "toolConfig"', '"schemaVersion", "system", "messages"'],
        ),
        (
            converse(("user", [text("a")]), ("assistant", [{"reasoningContent": {"text": "x"}}])),
            ["reasoningContent: expected", "reasoningText"],
        ),
    ],
)
def test_converse_errors(record: dict[str, Any], keywords: list[str]) -> None:
    report = report_for([VALID_CONVERSE, record], CONVERSE)
    assert_one_issue(report, 2, *keywords)


def test_converse_other_schema_version_is_a_warning() -> None:
    report = report_for([{**VALID_CONVERSE, "schemaVersion": "v2"}], CONVERSE)
    assert report.ok
    assert_one_issue(
        report,
        1,
        'schemaVersion: "v2"',
        'documented values are "bedrock-conversation-2024", "tooluse-dataset-2024"',
        severity="warning",
    )


def test_converse_tool_use_schema_version_of_the_nova_guide_is_accepted() -> None:
    report = report_for([{**VALID_CONVERSE, "schemaVersion": "tooluse-dataset-2024"}], CONVERSE)
    assert report.ok and not report.warnings, report.issues()


@pytest.mark.parametrize(
    ("limits", "kind", "accepted"),
    [
        (TEXT_ONLY_CONVERSE, "image", "take text only"),
        (TEXT_ONLY_CONVERSE, "video", "take text only"),
        (DatasetLimits(DataFormat.CONVERSE, image_formats=("png",)), "video", "take images, not videos"),
        (DatasetLimits(DataFormat.CONVERSE, video_formats=("mp4",)), "image", "take videos, not images"),
    ],
)
def test_converse_media_the_model_does_not_take_is_an_error(
    limits: DatasetLimits, kind: str, accepted: str
) -> None:
    media = S3_IMAGE if kind == "image" else S3_VIDEO
    record = converse(("user", [{kind: media}, text("q")]), ("assistant", [text("a")]))
    report = report_for([record], limits)
    issue = assert_one_issue(report, 1, f"messages[0].content[0]: {kind} blocks are not accepted", accepted)
    assert len(report.errors) == 1, report.errors  # no follow-on error about its format or counts
    assert issue.severity == "error"


def test_converse_media_formats_are_those_of_the_limits() -> None:
    webp = {**S3_IMAGE, "format": "webp"}
    record = converse(("user", [{"image": webp}, text("q")]), ("assistant", [text("a")]))
    assert report_for([record], DatasetLimits(DataFormat.CONVERSE, image_formats=("png", "webp"))).ok
    report = report_for([record], DatasetLimits(DataFormat.CONVERSE, image_formats=("png",)))
    assert_one_issue(report, 1, 'image.format: expected one of "png", got "webp"')


DISTILLATION_PROMPTS = DatasetLimits(DataFormat.CONVERSE, response_optional=True)
SINGLE_TURN_PROMPTS = DatasetLimits(DataFormat.CONVERSE, response_optional=True, single_user_prompt=True)


def test_distillation_prompts_may_leave_out_the_response() -> None:
    prompt_only = converse(("user", [text("Why is the sky blue?")]), system=[text("be brief")])
    multi_turn = converse(("user", [text("q")]), ("assistant", [text("a")]), ("user", [text("and?")]))
    report = report_for([prompt_only, VALID_CONVERSE, multi_turn], DISTILLATION_PROMPTS)
    assert report.ok and not report.warnings, report.issues()
    # Fine-tuning data still needs the response.
    assert_one_issue(report_for([prompt_only], CONVERSE), 1, 'the last message must be from "assistant"')


def test_distillation_prompts_still_start_with_the_user_and_alternate() -> None:
    record = converse(("assistant", [text("a")]), ("user", [text("q")]))
    issue = assert_one_issue(report_for([record], DISTILLATION_PROMPTS), 1, 'expected "user" first')
    assert "the assistant's response is optional" in issue.message


def test_single_turn_students_take_one_user_prompt() -> None:
    prompt_only = converse(("user", [text("q")]))
    report = report_for([prompt_only, VALID_CONVERSE], SINGLE_TURN_PROMPTS)
    assert report.ok, report.issues()
    second_prompt = converse(("user", [text("q")]), ("assistant", [text("a")]), ("user", [text("q2")]))
    multi_turn = converse(*[(role, [text(role)]) for role in ("user", "assistant") * 2])
    report = report_for([second_prompt, multi_turn], SINGLE_TURN_PROMPTS)
    for line_number in (1, 2):
        issue = assert_one_issue(report, line_number, 'messages[2].role: a second "user" prompt')
        assert "single-turn prompts only" in issue.message and "Option 1" in issue.message
    # Multi-turn is fine where the student takes it (Nova).
    assert report_for([second_prompt, multi_turn], DISTILLATION_PROMPTS).ok


RESERVED = DatasetLimits(
    DataFormat.CONVERSE,
    reserved_keywords=("User:", "Bot:", "[EOS]"),
    reserved_keywords_reason="the model reserves it and the job fails",
)


def test_reserved_keywords_in_a_user_prompt_are_errors_naming_the_block_and_the_reason() -> None:
    record = converse(("user", [text("ok"), text("User: hi\nBot: hello [EOS]")]), ("assistant", [text("a")]))
    report = report_for([VALID_CONVERSE, record], RESERVED)
    issue = assert_one_issue(report, 2, "messages[0].content[1].text: contains the reserved keywords")
    assert issue.message == (
        'messages[0].content[1].text: contains the reserved keywords "User:", "Bot:", "[EOS]": the model '
        'reserves it and the job fails; reword the prompt without "User:", "Bot:", "[EOS]"'
    )
    assert str(issue).startswith("data.jsonl:2: error: ")


def test_reserved_keywords_in_the_system_prompt_are_errors() -> None:
    record = converse(("user", [text("q")]), ("assistant", [text("a")]), system=[text("You are Bot: nice")])
    assert_one_issue(
        report_for([record], RESERVED), 1, 'system[0].text: contains the reserved keyword "Bot:"'
    )


def test_reserved_keywords_are_only_checked_in_prompts_and_only_where_the_limits_reserve_them() -> None:
    in_answer = converse(("user", [text("q")]), ("assistant", [text("User: said [EOS]")]))
    assert report_for([in_answer], RESERVED).ok  # the documented rule is for user and system prompts
    in_prompt = converse(("user", [text("User: q")]), ("assistant", [text("a")]))
    assert report_for([in_prompt], CONVERSE).ok  # no keywords reserved for this model
    assert report_for(
        [converse(("user", [text("user: lower case")]), ("assistant", [text("a")]))], RESERVED
    ).ok


def test_converse_dataset_must_not_mix_images_and_videos() -> None:
    with_image = converse(("user", [{"image": S3_IMAGE}, text("q")]), ("assistant", [text("a")]))
    with_video = converse(("user", [{"video": S3_VIDEO}, text("q")]), ("assistant", [text("a")]))
    report = report_for([with_image, VALID_CONVERSE, with_video], CONVERSE)
    assert_one_issue(report, 3, "videos in a dataset with images (first at line 1)")
    both = converse(("user", [{"image": S3_IMAGE}, {"video": S3_VIDEO}]), ("assistant", [text("a")]))
    assert_one_issue(report_for([both], CONVERSE), 1, "images and videos in one record")


def test_converse_media_must_be_under_media_of_the_dataset_bucket() -> None:
    record = converse(("user", [{"image": S3_IMAGE}]), ("assistant", [text("a")]))
    assert report_for([record], CONVERSE, media_location=MediaLocation("data-bucket")).ok
    report = report_for([record], CONVERSE, media_location=MediaLocation("other-bucket"))
    assert_one_issue(
        report,
        1,
        'messages[0].content[0].image.source.s3Location.uri: "s3://data-bucket/media/cat.png" is not '
        "under s3://other-bucket/media/: images and videos must be in the dataset's bucket, under media/",
    )
    elsewhere = {"format": "png", "source": {"s3Location": {"uri": "s3://data-bucket/images/cat.png"}}}
    record = converse(("user", [{"image": elsewhere}]), ("assistant", [text("a")]))
    report = report_for([record], CONVERSE, media_location=MediaLocation("data-bucket"))
    assert_one_issue(report, 1, "is not under s3://data-bucket/media/")


def test_a_local_file_naming_media_is_refused_once_with_how_to_ship_them(tmp_path: Path) -> None:
    """Synth validates local files: the stack's bucket has no name yet, so no media URI can be right
    (the deploy-time check would refuse every one); the error says where media go instead."""
    record = converse(("user", [{"image": S3_IMAGE}]), ("assistant", [text("a")]))
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(line(item) + b"\n" for item in [VALID_CONVERSE, record, record]))
    report = validate_file(path, limits=CONVERSE, display_name="train.jsonl")
    assert_one_issue(
        report,
        2,
        "messages[0].content[0].image.source.s3Location.uri: images and videos cannot be deployed "
        "from a local file: they must be in the stack's training bucket under media/, whose name is "
        "generated at the first deploy; copy them to s3://TRAINING_BUCKET/media/ and upload this file "
        'under incoming/ instead (README, "Images and videos")',
    )
    assert len(report.errors) == 1  # once per file, not once per record
    captions = tmp_path / "captions.jsonl"
    captions.write_bytes(line({"image-ref": "s3://data-bucket/media/cat.png", "caption": "a cat"}) + b"\n")
    report = validate_file(captions, limits=IMAGE_CAPTION)
    assert_one_issue(report, 1, "image-ref: images and videos cannot be deployed from a local file")
    assert validate_file(path, limits=CONVERSE, media_location=MediaLocation("data-bucket")).ok


# --------------------------------------------------------------------------------------------------
# image/caption
# --------------------------------------------------------------------------------------------------


def test_image_caption_valid() -> None:
    report = report_for(
        [
            {"image-ref": "s3://b/cat.PNG", "caption": "a cat"},
            {"image-ref": "s3://b/d.jpeg", "caption": "dog"},
        ],
        IMAGE_CAPTION,
    )
    assert report.ok and not report.warnings


@pytest.mark.parametrize(
    ("record", "keywords"),
    [
        ({"caption": "a cat"}, ["image-ref: missing", "s3://"]),
        ({"image-ref": "cat.png", "caption": "a cat"}, ["image-ref: expected an S3 URI"]),
        (
            {"image-ref": "s3://bucket", "caption": "a cat"},
            ["image-ref: expected an S3 URI with a bucket and a key"],
        ),
        ({"image-ref": "s3://b/cat.png"}, ["caption: missing"]),
        ({"image-ref": "s3://b/cat.png", "caption": "ab"}, ["caption: 2 characters; at least 3"]),
        ({"image-ref": "s3://b/cat.png", "caption": "x" * 21}, ["caption: 21 characters; at most 20"]),
        ({"image-ref": "s3://b/cat.png", "caption": 5}, ["caption: expected a string"]),
    ],
)
def test_image_caption_errors(record: dict[str, Any], keywords: list[str]) -> None:
    assert_one_issue(report_for([record], IMAGE_CAPTION), 1, *keywords)


def test_image_caption_warnings() -> None:
    report = report_for([{"image-ref": "s3://b/cat.gif", "caption": "a cat", "tags": []}], IMAGE_CAPTION)
    assert report.ok
    warnings = " | ".join(message for _, message in messages_of(report, "warning"))
    assert "PNG or JPEG" in warnings and 'unknown field "tags"' in warnings


def test_empty_caption_allowed_when_the_minimum_is_zero() -> None:
    limits = DatasetLimits(DataFormat.IMAGE_CAPTION, caption_min_chars=0, caption_max_chars=10)
    assert report_for([{"image-ref": "s3://b/a.png", "caption": ""}], limits).ok
    assert_one_issue(
        report_for([{"image-ref": "s3://b/a.png", "caption": ""}], IMAGE_CAPTION), 1, "caption: empty"
    )


# --------------------------------------------------------------------------------------------------
# Per file: emptiness, record counts, validation sets, tokens, size, duplicates
# --------------------------------------------------------------------------------------------------


def test_every_data_format_has_a_checker_and_rft_is_gone() -> None:
    from finetune.core.dataset_rules import CHECKERS

    assert set(CHECKERS) == set(DataFormat)
    assert "reinforcement-fine-tuning" not in {str(data_format) for data_format in DataFormat}


def test_empty_file() -> None:
    report = report_for([], PROMPT_COMPLETION)
    assert messages_of(report) == [(None, "the file is empty: expected JSON Lines, one JSON object per line")]
    assert report.records == 0


def test_record_count_bounds() -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, min_records=3, max_records=4)
    records = [{"prompt": str(i), "completion": "c"} for i in range(5)]
    assert report_for(records[:3], limits).ok
    assert_one_issue(report_for(records[:2], limits), None, "2 records; at least 3 are required")
    assert_one_issue(report_for(records, limits), None, "5 records; at most 4 are accepted")


def test_validation_set_limits() -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, min_records=3, validation_max_records=1)
    records = [{"prompt": str(i), "completion": "c"} for i in range(2)]
    assert report_for(records[:1], limits, validation=True).ok  # min_records is for training data
    report = report_for(records, limits, validation=True)
    assert_one_issue(report, None, "2 records; at most 1 are accepted for validation data")
    assert report.summary_lines()[0].startswith("data.jsonl: INVALID, 1 error (validation data")


def test_validation_set_minimum() -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, validation_min_records=3)
    records = [{"prompt": str(i), "completion": "c"} for i in range(3)]
    assert report_for(records, limits, validation=True).ok
    report = report_for(records[:2], limits, validation=True)
    assert_one_issue(report, None, "2 records; at least 3 are required for validation data")
    assert report_for(records[:2], limits).ok  # a training file has its own minimum (none here)


def test_the_sample_support_assistant_data_meets_the_claude_3_haiku_limits() -> None:
    from finetune.core.catalog import find_model

    haiku = find_model("anthropic.claude-3-haiku-20240307-v1:0:200k")
    limits = haiku.dataset_limits("FINE_TUNING") if haiku is not None else None
    assert limits is not None
    folder = Path(__file__).resolve().parents[2] / "training_data" / "support-assistant"
    train = validate_file(folder / "train.jsonl", limits=limits)
    validation = validate_file(folder / "validation.jsonl", limits=limits, validation=True)
    for report in (train, validation):
        assert report.ok and not report.warnings, report.issues()
    assert train.records == 60 and validation.records >= 32
    train_lines = (folder / "train.jsonl").read_text().splitlines()
    validation_lines = (folder / "validation.jsonl").read_text().splitlines()
    first_questions = {json.loads(text)["messages"][0]["content"] for text in train_lines}
    held_out = [json.loads(text)["messages"][0]["content"] for text in validation_lines]
    assert len(set(held_out)) == len(held_out) and not first_questions & set(held_out)


def test_validation_set_not_allowed_is_one_clear_error() -> None:
    limits = DatasetLimits(DataFormat.IMAGE_CAPTION, validation_allowed=False)
    report = report_for(["not even json"] * 3, limits, validation=True)
    assert messages_of(report) == [
        (
            None,
            "a validation set is not accepted for this model and customization type "
            "(image-caption data); leave it out (or merge it into the training data)",
        )
    ]


def test_token_limit_depends_on_batch_size() -> None:
    limits = DatasetLimits(
        DataFormat.PROMPT_COMPLETION, token_limits=(TokenLimit(10, 1, 1), TokenLimit(5, 2, 4))
    )
    record = {"prompt": "a" * 40, "completion": "b" * 14}  # 54 characters: 9 tokens
    assert report_for([record], limits, batch_size=1).ok
    report = report_for([record], limits, batch_size=2)
    assert_one_issue(
        report, 1, "record is about 9 tokens (54 characters)", "at most 5 tokens", "batch size 2"
    )
    unknown = report_for([record], limits)
    assert_one_issue(unknown, 1, "at most 5 tokens", "the batch size is not known")


def test_a_record_near_the_token_limit_is_a_warning_that_explains_the_estimate() -> None:
    limits = DatasetLimits(DataFormat.CONTINUED_PRE_TRAINING, token_limits=(TokenLimit(4_096),))
    chunk = {"input": "x" * 19_800}  # 3,300 tokens at 6 characters per token, 4,950 at 4
    report = report_for([{"input": "short"}, chunk], limits)
    assert report.ok
    warning = assert_one_issue(
        report, 2, "record is about 3,300 tokens (19,800 characters)", severity="warning"
    )
    assert "80% of the 4,096-token limit" in warning.message
    assert TOKEN_ESTIMATE_METHOD in warning.message
    assert "near 4 characters per token" in warning.message and "about 4,950 tokens" in warning.message
    assert [issue.line for issue in report.warnings] == [2]


def test_the_warning_band_starts_where_4_characters_per_token_exceed_the_limit() -> None:
    limits = DatasetLimits(DataFormat.CONTINUED_PRE_TRAINING, token_limits=(TokenLimit(100),))
    assert not report_for([{"input": "a" * 400}], limits).warnings  # 100 tokens at 4 characters
    assert_one_issue(
        report_for([{"input": "a" * 401}], limits), 1, "67% of the 100-token", severity="warning"
    )
    over = report_for([{"input": "a" * 601}], limits)  # over the limit: an error, not also a warning
    assert_one_issue(over, 1, "at most 100 tokens")
    assert not over.warnings


def test_no_token_limit_no_warning() -> None:
    assert not report_for([{"input": "a" * 100_000}], CPT).warnings


def test_token_limit_boundary_is_exact() -> None:
    limits = DatasetLimits(DataFormat.CONTINUED_PRE_TRAINING, token_limits=(TokenLimit(2),))
    assert report_for([{"input": "a" * 12}], limits).ok  # 12 characters = 2 tokens
    assert_one_issue(report_for([{"input": "a" * 13}], limits), 1, "about 3 tokens")


def test_file_size_limits() -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, max_file_bytes=50, validation_max_file_bytes=20)
    records = [VALID_PC, {"prompt": "q", "completion": "d"}]  # 2 x 35 bytes
    assert_one_issue(report_for(records, limits), None, "70 bytes; a training file may be at most 50 bytes")
    assert report_for(records[:1], limits).ok
    report = report_for(records[:1], limits, validation=True)
    assert_one_issue(report, None, "35 bytes; a validation file may be at most 20 bytes")
    announced = report_for(records[:1], limits, size_bytes=10**9)
    assert_one_issue(announced, None, "1,000,000,000 bytes")


def test_duplicates_are_warnings_naming_the_first_line() -> None:
    other = {"prompt": "q", "completion": "d"}
    report = report_for([VALID_PC, other, VALID_PC, VALID_PC], PROMPT_COMPLETION)
    assert report.ok
    assert messages_of(report, "warning") == [
        (3, "duplicate record: identical to line 1"),
        (4, "duplicate record: identical to line 1"),
    ]


def test_duplicate_tracking_stops_beyond_the_record_maximum() -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, max_records=10)
    records = [{"prompt": str(i), "completion": "c"} for i in range(30_000)]
    report = report_for([*records, records[0]], limits)
    assert not report.warnings  # tracking stopped once more records than accepted were seen
    assert_one_issue(report, None, "30,001 records; at most 10 are accepted")


# --------------------------------------------------------------------------------------------------
# Robustness: enormous lines, binary files, error cap
# --------------------------------------------------------------------------------------------------


def test_enormous_line_is_skipped_and_reported() -> None:
    huge = b'{"prompt": "' + b"x" * 3_000_000 + b'", "completion": "c"}'
    report = report_for(
        [VALID_PC, huge, {"prompt": "q", "completion": "d"}], PROMPT_COMPLETION, max_line_bytes=1000
    )
    issue = assert_one_issue(report, 2, f"line is {len(huge):,} bytes long", "at most 1,000 bytes")
    assert "newline missing" in issue.message
    assert report.records == 3 and len(report.errors) == 1  # line 3 is read normally


def test_enormous_last_line_without_newline() -> None:
    huge = b"x" * 2_000_000
    report = report_for([VALID_PC, huge], PROMPT_COMPLETION, max_line_bytes=4096, newline_at_end=False)
    assert_one_issue(report, 2, "line is 2,000,000 bytes long")


def test_line_just_over_the_cap_inside_one_chunk() -> None:
    record = {"prompt": "x" * 100, "completion": "c"}
    report = report_for([record, VALID_PC], PROMPT_COMPLETION, max_line_bytes=50)
    assert_one_issue(report, 1, f"line is {len(line(record))} bytes long")
    assert report.records == 2 and len(report.errors) == 1


def test_default_line_cap_is_far_above_the_largest_legal_record() -> None:
    largest_record_bytes = 32_000 * 6 * 6  # 32k tokens x 6 characters x 6 bytes (\\uXXXX escapes)
    assert largest_record_bytes * 10 < DEFAULT_MAX_LINE_BYTES


class CountingStream(io.RawIOBase):
    """An endless stream of one byte, counting what was read."""

    def __init__(self, byte: bytes, limit: int) -> None:
        self.byte = byte
        self.limit = limit
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = min(size, self.limit - self.read_bytes)
        self.read_bytes += max(size, 0)
        return self.byte * max(size, 0)


def test_binary_file_stops_at_once() -> None:
    stream = CountingStream(b"\x00", limit=1 << 30)
    report = validate_stream(stream, file="model.bin", limits=PROMPT_COMPLETION)
    assert messages_of(report) == [
        (None, "the file is binary (NUL byte at offset 0); expected UTF-8 text, one JSON object per line")
    ]
    assert stream.read_bytes <= 1 << 20  # one chunk, not the gigabyte


@pytest.mark.parametrize(
    ("head", "keyword"),
    [(b"\x1f\x8b\x08\x00", "gzip-compressed"), (b"PK\x03\x04", "zip archive"), (b"\xff\xfe{\x00", "UTF-16")],
)
def test_compressed_and_utf16_files_are_recognised(head: bytes, keyword: str) -> None:
    report = validate_stream(io.BytesIO(head + b"rest"), file="f", limits=PROMPT_COMPLETION)
    assert len(report.errors) == 1 and keyword in report.errors[0].message


def test_garbage_without_nul_is_capped_not_hung() -> None:
    garbage = bytes(range(128, 256)) * 2  # invalid UTF-8 everywhere, no NUL, no newline
    data = b"\n".join([garbage] * 500)
    report = validate_stream(io.BytesIO(data), file="g", limits=PROMPT_COMPLETION, max_errors=10)
    assert report.capped and report.suppressed_errors == 490
    assert len(report.errors) == 11
    assert report.errors[-1] == DataIssue(
        "g", None, "... and 490 more errors not shown (at most 10 errors are listed per file)", "error"
    )
    assert report.issues()[-1] == report.errors[-1]


def test_summary_counts_every_warning_past_the_cap() -> None:
    report = report_for([VALID_PC] * 561, PROMPT_COMPLETION)  # 560 duplicates of line 1
    assert report.ok and report.suppressed_warnings == 460
    assert len(report.warnings) == 101  # 100 listed plus the "more not shown" note
    assert report.warning_count == 560
    assert report.summary_lines()[0].startswith("data.jsonl: valid, 560 warnings (training data")


def test_summary_counts_warnings_exactly_at_the_cap() -> None:
    report = report_for([VALID_PC] * 101, PROMPT_COMPLETION)
    assert report.suppressed_warnings == 0 and report.warning_count == 100
    assert report.summary_lines()[0].startswith("data.jsonl: valid, 100 warnings")


def test_error_cap_counts_what_it_suppresses() -> None:
    report = report_for([{"prompt": "p"}] * 25, PROMPT_COMPLETION, max_errors=5)
    assert report.capped and report.suppressed_errors == 20
    assert [issue.line for issue in report.errors[:5]] == [1, 2, 3, 4, 5]
    assert "20 more errors not shown" in report.errors[5].message
    assert report.summary_lines()[0].startswith("data.jsonl: INVALID, 25 errors")
    assert report.error_count == 25
    assert report.records == 25  # the file is still read to the end


# --------------------------------------------------------------------------------------------------
# Files and S3
# --------------------------------------------------------------------------------------------------


def test_validate_file_uses_display_name_and_file_size(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(line(VALID_PC) + b"\n" + line({"completion": "c"}) + b"\n")
    report = validate_file(path, limits=PROMPT_COMPLETION, display_name="train")
    assert report.size_bytes == path.stat().st_size
    assert str(report.errors[0]) == "train:2: error: prompt: missing (required: a non-empty string)"
    assert validate_file(path, limits=PROMPT_COMPLETION).file == str(path)


def test_validate_file_missing_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        validate_file(tmp_path / "nope.jsonl", limits=PROMPT_COMPLETION)


def test_duplicate_tracking_without_a_record_maximum_is_bounded_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import finetune.core.dataset

    monkeypatch.setattr(finetune.core.dataset, "DUPLICATE_TRACKING_FALLBACK", 100)
    records = [{"prompt": str(i), "completion": "c"} for i in range(30_000)]
    report = report_for([records[0], *records], PROMPT_COMPLETION)
    assert report.ok
    assert messages_of(report, "warning")[0] == (2, "duplicate record: identical to line 1")
    note = assert_one_issue(report, None, "looked for among the first", "lines only", severity="warning")
    assert "at most 100 records are tracked" in note.message


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    report = report_for([VALID_PC, "[" * 100_000 + "]" * 100_000], PROMPT_COMPLETION)
    assert_one_issue(report, 2, "invalid JSON", "nested too deeply")
