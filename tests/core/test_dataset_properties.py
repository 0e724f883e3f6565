"""Property tests of the validator: generated valid records pass, and every mutation of one is caught
on its own line, naming the field; how the bytes arrive (chunk sizes) never changes the verdict."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from finetune.core.dataset import DatasetReport, validate_stream
from finetune.core.formats import DataFormat, DatasetLimits, estimate_tokens

LIMITS = {
    DataFormat.PROMPT_COMPLETION: DatasetLimits(DataFormat.PROMPT_COMPLETION),
    DataFormat.CONTINUED_PRE_TRAINING: DatasetLimits(DataFormat.CONTINUED_PRE_TRAINING),
    DataFormat.CLAUDE_MESSAGES: DatasetLimits(DataFormat.CLAUDE_MESSAGES),
    DataFormat.CONVERSE: DatasetLimits(
        DataFormat.CONVERSE, image_formats=("png",), video_formats=("mp4",), max_images_per_record=10
    ),
    DataFormat.IMAGE_CAPTION: DatasetLimits(
        DataFormat.IMAGE_CAPTION, caption_min_chars=3, caption_max_chars=1024
    ),
}

# Any text but blank-free of nothing in particular: unicode, quotes, newlines (JSON escapes them).
texts = st.text(min_size=1, max_size=40)
not_strings: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.lists(st.integers(), max_size=2), st.just({})
)


def _turn_count() -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=3)


@st.composite
def prompt_completion(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    prompt, completion = draw(texts), draw(texts)
    return {"prompt": prompt, "completion": completion}, len(prompt) + len(completion)


@st.composite
def continued_pre_training(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    value = draw(texts)
    return {"input": value}, len(value)


@st.composite
def claude_messages(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    contents = draw(st.lists(texts, min_size=2, max_size=6).filter(lambda items: len(items) % 2 == 0))
    record: dict[str, Any] = {
        "messages": [
            {"role": "user" if index % 2 == 0 else "assistant", "content": content}
            for index, content in enumerate(contents)
        ]
    }
    chars = sum(map(len, contents))
    if draw(st.booleans()):
        record["system"] = draw(st.text(max_size=20))
        chars += len(record["system"])
    return record, chars


@st.composite
def converse(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    turns = draw(_turn_count())
    chars = 0
    messages: list[dict[str, Any]] = []
    for index in range(turns * 2):
        role = "user" if index % 2 == 0 else "assistant"
        blocks: list[dict[str, Any]] = []
        for value in draw(st.lists(texts, min_size=1, max_size=3)):
            blocks.append({"text": value})
            chars += len(value)
        if role == "user" and draw(st.booleans()):
            key = draw(st.from_regex(r"[a-z0-9/]{1,12}\.png", fullmatch=True))
            blocks.append(
                {"image": {"format": "png", "source": {"s3Location": {"uri": f"s3://bucket/{key}"}}}}
            )
        messages.append({"role": role, "content": blocks})
    record: dict[str, Any] = {"schemaVersion": "bedrock-conversation-2024", "messages": messages}
    if draw(st.booleans()):
        system = draw(texts)
        record["system"] = [{"text": system}]
        chars += len(system)
    return record, chars


@st.composite
def image_caption(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    caption = draw(st.text(min_size=3, max_size=60))
    key = draw(st.from_regex(r"[a-zA-Z0-9_/-]{1,20}\.(png|jpg|jpeg)", fullmatch=True))
    return {"image-ref": f"s3://bucket/{key}", "caption": caption}, len(caption)


RECORDS: dict[DataFormat, Callable[[], st.SearchStrategy[tuple[dict[str, Any], int]]]] = {
    DataFormat.PROMPT_COMPLETION: prompt_completion,
    DataFormat.CONTINUED_PRE_TRAINING: continued_pre_training,
    DataFormat.CLAUDE_MESSAGES: claude_messages,
    DataFormat.CONVERSE: converse,
    DataFormat.IMAGE_CAPTION: image_caption,
}

formats = st.sampled_from(list(RECORDS))


@st.composite
def valid_dataset(draw: st.DrawFn) -> tuple[DataFormat, list[dict[str, Any]], int]:
    data_format = draw(formats)
    drawn = draw(st.lists(RECORDS[data_format](), min_size=1, max_size=8))
    return data_format, [record for record, _ in drawn], sum(estimate_tokens(chars) for _, chars in drawn)


def encode(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def validate(data: bytes, data_format: DataFormat) -> DatasetReport:
    return validate_stream(io.BytesIO(data), file="p.jsonl", limits=LIMITS[data_format])


# --------------------------------------------------------------------------------------------------
# Mutations: (mutated record, a word the error must contain)
# --------------------------------------------------------------------------------------------------

Mutation = tuple[dict[str, Any], str]


def _drop(record: dict[str, Any], key: str) -> Mutation:
    mutated = {k: v for k, v in record.items() if k != key}
    return mutated, f"{key}: missing"


def _set(record: dict[str, Any], key: str, value: Any, word: str) -> Mutation:
    return {**record, key: value}, f"{key}: {word}"


@st.composite
def mutated(draw: st.DrawFn, data_format: DataFormat) -> Mutation:
    record, _ = draw(RECORDS[data_format]())
    record = deepcopy(record)
    wrong = draw(not_strings)
    if data_format in (DataFormat.PROMPT_COMPLETION, DataFormat.CONTINUED_PRE_TRAINING):
        key = draw(st.sampled_from(sorted(record)))
        return draw(
            st.sampled_from(
                [
                    _drop(record, key),
                    _set(record, key, wrong, "expected a string"),
                    _set(record, key, "", "empty"),
                ]
            )
        )
    if data_format == DataFormat.IMAGE_CAPTION:
        return draw(
            st.sampled_from(
                [
                    _drop(record, "image-ref"),
                    _drop(record, "caption"),
                    _set(record, "caption", wrong, "expected a string"),
                    _set(record, "caption", "ab", "2 characters; at least 3"),
                    _set(record, "image-ref", "https://host/a.png", "expected an S3 URI"),
                ]
            )
        )
    return draw(_mutated_conversation(record, data_format, wrong))


@st.composite
def _mutated_conversation(
    draw: st.DrawFn, record: dict[str, Any], data_format: DataFormat, wrong: Any
) -> Mutation:
    messages: list[dict[str, Any]] = record["messages"]
    index = draw(st.integers(min_value=0, max_value=len(messages) - 1))
    kind = draw(st.sampled_from(["drop messages", "swap roles", "drop role", "wrong content", "empty text"]))
    if kind == "drop messages":
        return _drop(record, "messages")
    if kind == "swap roles":
        # Make message `index` carry the other role: the alternation breaks exactly there.
        role = messages[index]["role"]
        messages[index]["role"] = "assistant" if role == "user" else "user"
        return record, f"messages[{index}].role"
    if kind == "drop role":
        del messages[index]["role"]
        return record, f"messages[{index}].role: missing"
    if data_format == DataFormat.CLAUDE_MESSAGES:
        if kind == "wrong content":
            messages[index]["content"] = wrong if wrong != [] else 5
            return record, f"messages[{index}].content: expected a string"
        messages[index]["content"] = ""
        return record, f"messages[{index}].content: empty"
    if kind == "wrong content":
        messages[index]["content"] = {"text": "not in a list"}
        return record, f"messages[{index}].content: expected an array"
    messages[index]["content"][0] = {"text": ""}
    return record, f"messages[{index}].content[0].text: empty"


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------


@given(valid_dataset())
def test_generated_valid_records_pass(dataset: tuple[DataFormat, list[dict[str, Any]], int]) -> None:
    data_format, records, tokens = dataset
    # Identical generated records are legitimately warned about; make every line distinct.
    unique = list({json.dumps(record, sort_keys=True): record for record in records}.values())
    report = validate(encode(unique), data_format)
    assert report.ok, report.issues()
    assert not report.warnings, report.issues()
    assert report.records == len(unique)
    if len(unique) == len(records):
        assert report.estimated_tokens == tokens


@settings(max_examples=300)
@given(formats.flatmap(lambda f: st.tuples(st.just(f), valid_dataset_of(f), mutated(f), st.data())))
def test_a_mutated_record_is_caught_on_its_line(
    case: tuple[DataFormat, list[dict[str, Any]], Mutation, st.DataObject],
) -> None:
    data_format, records, (bad_record, word), data = case
    position = data.draw(st.integers(min_value=0, max_value=len(records)))
    lines = [*records[:position], bad_record, *records[position:]]
    report = validate(encode(lines), data_format)
    assert not report.ok
    assert {issue.line for issue in report.errors} == {position + 1}, report.issues()
    assert any(word in issue.message for issue in report.errors), (word, report.issues())


def valid_dataset_of(data_format: DataFormat) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(RECORDS[data_format]().map(lambda drawn: drawn[0]), max_size=5)


class TrickleStream:
    """Returns the data in pieces of the given sizes (cycled): chunk boundaries land anywhere."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data = data
        self.sizes = sizes
        self.offset = 0
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        piece = min(size, self.sizes[self.calls % len(self.sizes)])
        self.calls += 1
        chunk = self.data[self.offset : self.offset + piece]
        self.offset += len(chunk)
        return chunk


def _summary(report: DatasetReport) -> tuple[Any, ...]:
    return (
        report.records,
        report.estimated_tokens,
        report.largest_record_line,
        [str(issue) for issue in report.issues()],
    )


@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda p, c: json.dumps({"prompt": p, "completion": c}, ensure_ascii=False), texts, texts
            ),
            st.just(""),
            st.just('{"prompt": "x"'),
            st.text(max_size=30).map(
                lambda t: json.dumps({"prompt": t, "completion": "é" * 5}, ensure_ascii=False)
            ),
        ),
        min_size=1,
        max_size=12,
    ).map(lambda lines: "\n".join(lines).encode() + b"\xff\n" + "ü".encode()),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=5),
)
def test_chunk_boundaries_never_change_the_verdict(data: bytes, sizes: list[int]) -> None:
    limits = LIMITS[DataFormat.PROMPT_COMPLETION]
    whole = validate_stream(io.BytesIO(data), file="p.jsonl", limits=limits)
    trickled = validate_stream(TrickleStream(data, sizes), file="p.jsonl", limits=limits)
    assert _summary(trickled) == _summary(whole)


@given(
    st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=10),
    st.integers(min_value=20, max_value=200),
    st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=3),
)
def test_exactly_the_lines_over_the_cap_are_reported(lengths: list[int], cap: int, sizes: list[int]) -> None:
    lines = [json.dumps({"prompt": "x" * length, "completion": "c"}).encode() for length in lengths]
    data = b"\n".join(lines) + b"\n"
    report = validate_stream(
        TrickleStream(data, sizes),
        file="p.jsonl",
        limits=LIMITS[DataFormat.PROMPT_COMPLETION],
        max_line_bytes=cap,
    )
    too_long = {index + 1 for index, raw in enumerate(lines) if len(raw) > cap}
    assert {issue.line for issue in report.errors} == too_long
    assert all("bytes long" in issue.message for issue in report.errors)
    assert report.records == len(lines)
