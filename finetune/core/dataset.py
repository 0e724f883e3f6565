"""Training-data validator: reads JSONL as a stream of bytes, in constant memory, and reports problems.

The same code checks a local file (CLI, `cdk synth`) and an S3 object (Lambda), one pass each:

- the bytes are read in fixed-size chunks and split into lines, so no line longer than
  `max_line_bytes` is ever held in memory (an enormous line is skipped up to its newline and reported);
- every line must be UTF-8 holding exactly one JSON object of the model's format (`DataFormat`), whose
  record rules live in `finetune.core.dataset_rules`;
- per file: emptiness, record count, file size, per-record token estimate (`formats.estimate_tokens`
  over the record's text characters), duplicates.

Decisions:
- **Blank lines are errors.** Bedrock documents "one JSON object per line" and a blank line is not one
  (nor is it a valid JSON Lines line); a job failing on one costs more than deleting it. A missing
  newline at the end of the last line is fine.
- **Line cap.** Lines longer than `DEFAULT_MAX_LINE_BYTES` (16 MiB) are skipped to their newline and
  reported. The biggest legal record is about 32,000 tokens, ~192,000 characters, at most ~1.2 MB of
  JSON even if every character were a 6-byte escape; 16 MiB is > 466,000 tokens even then, more than
  any base model's context. Memory stays bounded however long a line (or a binary file) is.
- **Binary input.** A NUL byte in the first 8 KiB (or a gzip/zip/UTF-16 signature) stops validation at
  once with one error, instead of reporting thousands of garbage lines.
- **Duplicates** (identical lines) are warnings naming the first line. They are found with a dict
  from the 64-bit SipHash of each line (Python's `hash(str)`, keyed per process) to its line number,
  about 120 bytes per record, filled per chunk in C. It holds at most `max_records + 1` entries (a
  file with more records is invalid anyway), or `DUPLICATE_TRACKING_FALLBACK` (100,000, ~12 MiB)
  when the limits set no maximum, in which case a warning says duplicates were looked for among the
  first records only. So memory is bounded by the model's limits, never by the file's size. A false
  "duplicate" needs a 64-bit collision: below 1 in a billion for 100,000 records.
- **A cause named once.** A file written the wrong way fails on every line: a trailing comma after
  each object, or a JSON array or pretty-printed JSON (one problem per line, 101 for a short file).
  The first such line names the likely cause; the later ones are counted in one file-level error,
  and the objects before trailing commas are still checked (`_RepeatedCauses`).
- **Error cap.** At most `max_errors` errors (and as many warnings) are kept per file; the file is still
  read to the end (record count, tokens), and a final note says how many more were suppressed.

Performance: per chunk of 256 KiB, one `bytes.decode` (the UTF-8 check) and one `str.split`; per
line, one call of the C JSON scanner (the scanner `json.loads` ends in, minus its Python-level
wrappers; `json.loads` runs only on lines that fail, to word the error) and a few dict look-ups and
type checks. See `bench/validation.py`.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from finetune.core.dataset_rules import (
    CHECKERS,
    LOCAL_FILE,
    Checker,
    MediaLocation,
    RecordContext,
    Severity,
    json_type,
    near_token_limit_message,
)
from finetune.core.formats import (
    CHARS_PER_TOKEN,
    DENSE_CHARS_PER_TOKEN,
    TOKEN_ESTIMATE_METHOD,
    DatasetLimits,
    estimate_tokens,
)

__all__ = [
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_MAX_LINE_BYTES",
    "LOCAL_FILE",
    "ByteStream",
    "DataIssue",
    "DatasetReport",
    "MediaLocation",
    "validate_file",
    "validate_stream",
]

DEFAULT_MAX_ERRORS = 100
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
# Bytes per read. 256 KiB keeps the per-chunk list of lines small (even for tiny lines) while the
# per-read overhead stays negligible.
CHUNK_BYTES = 256 * 1024
# Where binary signatures are looked for (git and grep look at a similar prefix).
BINARY_SNIFF_BYTES = 8 * 1024
# Records whose duplicates are looked for when the limits give no record maximum (~10 MB of memory).
DUPLICATE_TRACKING_FALLBACK = 100_000


@dataclass(frozen=True)
class DataIssue:
    """One problem in a data file; `line` is None for problems of the whole file."""

    file: str
    line: int | None
    message: str
    severity: Severity

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class DatasetReport:
    """The outcome of validating one file: its figures and its problems.

    `errors` and `warnings` hold at most `max_errors` issues each, plus (when some were suppressed) a
    final file-level note saying how many more there were; `suppressed_errors`/`suppressed_warnings`
    count them and `capped` is True when errors were suppressed.
    """

    file: str
    validation: bool = False
    records: int = 0
    estimated_tokens: int = 0  # sum of the per-record estimates
    largest_record_tokens: int = 0
    largest_record_line: int | None = None
    size_bytes: int = 0
    errors: list[DataIssue] = field(default_factory=list)
    warnings: list[DataIssue] = field(default_factory=list)
    capped: bool = False
    suppressed_errors: int = 0
    suppressed_warnings: int = 0

    @property
    def ok(self) -> bool:
        """True when the file has no errors (warnings are allowed)."""
        return not self.errors

    @property
    def error_count(self) -> int:
        """Every error found, the ones past the cap included (the "more not shown" note is not one)."""
        return _total(self.errors, self.suppressed_errors)

    @property
    def warning_count(self) -> int:
        """Every warning found, the ones past the cap included (the "more not shown" note is not one)."""
        return _total(self.warnings, self.suppressed_warnings)

    def issues(self) -> list[DataIssue]:
        """Errors and warnings in reading order: file-level first, then by line, the notes last."""
        errors, error_note = _split_note(self.errors, self.suppressed_errors)
        warnings, warning_note = _split_note(self.warnings, self.suppressed_warnings)
        ordered = sorted([*errors, *warnings], key=lambda issue: issue.line or 0)
        return ordered + error_note + warning_note

    def summary_lines(self) -> list[str]:
        """Human-readable figures, one per line, each starting with the file name.

        Callers may append their own lines (e.g. a training-cost estimate from `estimated_tokens`).
        """
        kind = "validation" if self.validation else "training"
        if self.ok:
            warnings = self.warning_count
            status = "valid" if not warnings else f"valid, {_count(warnings, 'warning')}"
        else:
            status = f"INVALID, {_count(self.error_count, 'error')}"
        lines = [
            f"{self.file}: {status} ({kind} data, {_count(self.records, 'record')}, {self.size_bytes:,} bytes)",
            f"{self.file}: estimated tokens: {self.estimated_tokens:,}, estimated as {TOKEN_ESTIMATE_METHOD}",
        ]
        if self.largest_record_line is not None:
            lines.append(
                f"{self.file}: largest record: line {self.largest_record_line}, "
                f"about {self.largest_record_tokens:,} tokens"
            )
        return lines


def _total(kept: list[DataIssue], suppressed: int) -> int:
    """The issues kept plus those past the cap; a kept list ends in a note when some were suppressed."""
    return len(kept) - 1 + suppressed if suppressed else len(kept)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _split_note(issues: list[DataIssue], suppressed: int) -> tuple[list[DataIssue], list[DataIssue]]:
    """The issues and the trailing "N more not shown" note (present when some were suppressed)."""
    if suppressed and issues:
        return issues[:-1], issues[-1:]
    return issues, []


class _IssueLog:
    """Collects issues, keeping at most `cap` errors and `cap` warnings and counting the rest."""

    def __init__(self, file: str, cap: int) -> None:
        self.file = file
        self.cap = cap
        self.errors: list[DataIssue] = []
        self.warnings: list[DataIssue] = []
        self.suppressed_errors = 0
        self.suppressed_warnings = 0

    def add(self, line: int | None, severity: Severity, message: str) -> None:
        kept = self.errors if severity == "error" else self.warnings
        if len(kept) < self.cap:
            kept.append(DataIssue(self.file, line, message, severity))
        elif severity == "error":
            self.suppressed_errors += 1
        else:
            self.suppressed_warnings += 1

    def error(self, line: int | None, message: str) -> None:
        self.add(line, "error", message)

    def finish(self, report: DatasetReport) -> None:
        for kept, suppressed, noun in (
            (self.errors, self.suppressed_errors, "error"),
            (self.warnings, self.suppressed_warnings, "warning"),
        ):
            if suppressed:
                kept.append(
                    DataIssue(
                        self.file,
                        None,
                        f"... and {_count(suppressed, 'more ' + noun)} not shown "
                        f"(at most {self.cap} {noun}s are listed per file)",
                        "error" if noun == "error" else "warning",
                    )
                )
        report.errors = self.errors
        report.warnings = self.warnings
        report.suppressed_errors = self.suppressed_errors
        report.suppressed_warnings = self.suppressed_warnings
        report.capped = self.suppressed_errors > 0


class ByteStream(Protocol):
    """What the validator reads from: a binary file, a botocore StreamingBody, a BytesIO."""

    def read(self, size: int = ..., /) -> bytes: ...


class _LineChunks:
    """The lines of a byte stream, decoded, as one list per chunk read (without their "\\n").

    Each chunk's complete lines are decoded from UTF-8 in one call and split in one call; only a chunk
    that fails to decode (or may hold an over-long line) is taken apart line by line. A line that is
    not valid UTF-8 or longer than `max_line_bytes` stands as None in its list, and the reason goes to
    `rejected` (first in, first out). An over-long line is never held whole: it is skipped up to its
    newline.
    """

    def __init__(self, stream: ByteStream, first: bytes, max_line_bytes: int, chunk_bytes: int) -> None:
        self.stream = stream
        self.first = first
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = chunk_bytes
        self.bytes_read = 0
        self.rejected: deque[str] = deque()

    def __iter__(self) -> Iterator[list[str | None]]:
        read = self.stream.read
        cap = self.max_line_bytes
        pending = b""
        skipped: int | None = None  # bytes of the over-long line being skipped, if any
        chunk = self.first or read(self.chunk_bytes)
        while chunk:
            self.bytes_read += len(chunk)
            if skipped is not None:
                newline = chunk.find(b"\n")
                if newline < 0:
                    skipped += len(chunk)
                    chunk = read(self.chunk_bytes)
                    continue
                self.rejected.append(self._too_long(skipped + newline))
                skipped = None
                yield [None]
                chunk = chunk[newline + 1 :]
            buffer = pending + chunk if pending else chunk
            cut = buffer.rfind(b"\n")
            if cut < 0:
                pending = buffer
            else:
                pending = buffer[cut + 1 :]
                complete = buffer[:cut]
                lines: list[str | None]
                if cut <= cap:  # then no line in `complete` is over-long
                    try:
                        lines = complete.decode().split("\n")  # type: ignore[assignment]
                    except UnicodeDecodeError:
                        lines = self._line_by_line(complete)
                else:
                    lines = self._line_by_line(complete)
                yield lines
            if len(pending) > cap:
                skipped = len(pending)
                pending = b""
            chunk = read(self.chunk_bytes)
        if skipped is not None:
            self.rejected.append(self._too_long(skipped))
            yield [None]
        elif pending:
            yield self._line_by_line(pending)

    def _line_by_line(self, complete: bytes) -> list[str | None]:
        lines: list[str | None] = []
        for raw in complete.split(b"\n"):
            if len(raw) > self.max_line_bytes:
                self.rejected.append(self._too_long(len(raw)))
                lines.append(None)
                continue
            try:
                lines.append(raw.decode())
            except UnicodeDecodeError as failure:
                self.rejected.append(
                    f"not valid UTF-8 (byte 0x{raw[failure.start]:02x} at byte {failure.start + 1} "
                    "of the line): save the file as UTF-8"
                )
                lines.append(None)
        return lines

    def _too_long(self, length: int) -> str:
        return (
            f"line is {length:,} bytes long; at most {self.max_line_bytes:,} bytes are read per line "
            "(no model accepts a record that large; is a newline missing?)"
        )


_decoder = json.decoder.JSONDecoder()
# The C scanner behind json.loads: scan(text, 0) -> (value, end). Raises StopIteration when no value
# starts at 0 (e.g. leading whitespace) and ValueError for malformed JSON; either way the line is
# parsed again with json.loads, which decides and words the error.
# (typeshed wants a scanner "context"; any object with the decoder's parse_* attributes is one.)
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(cast(Any, _decoder))


def _binary_signature(head: bytes) -> str | None:
    """Why `head` (the first bytes of a file) cannot be JSONL text, or None."""
    if head.startswith(b"\x1f\x8b"):
        return "the file is gzip-compressed; Bedrock reads uncompressed JSON Lines (decompress it first)"
    if head.startswith(b"PK\x03\x04"):
        return "the file is a zip archive; Bedrock reads uncompressed JSON Lines (extract it first)"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "the file is UTF-16 encoded; save it as UTF-8 (JSON Lines must be UTF-8)"
    nul = head.find(b"\x00", 0, BINARY_SNIFF_BYTES)
    if nul >= 0:
        return f"the file is binary (NUL byte at offset {nul}); expected UTF-8 text, one JSON object per line"
    return None


# The causes of an unreadable line that repeat on every line of a file written the wrong way. The first
# line with each is reported in full; the others are counted and summed up once (`_RepeatedCauses`).
TRAILING_COMMA = "trailing comma"
JSON_DOCUMENT = "JSON document"
OTHER_SYNTAX = "syntax"
REPEATED_CAUSES = (TRAILING_COMMA, JSON_DOCUMENT)
_NOT_A_RECORD: Any = object()
# Line numbers named in the summary of a repeated cause.
REPEAT_SAMPLE_LINES = 5


@dataclass(frozen=True)
class _JsonProblem:
    """Why a line is not one JSON object: its cause, the message, and the object it still holds, if any
    (the object before a trailing comma is checked like any record)."""

    cause: str
    message: str
    record: Any = _NOT_A_RECORD


_ARRAY_MESSAGE = (
    "the file looks like a JSON array (or pretty-printed JSON), not JSON Lines: write one JSON object "
    "per line, with no enclosing [ ] and no commas between the records"
)
_PRETTY_MESSAGE = (
    "the object does not end on this line: the file looks like pretty-printed JSON (or a JSON array), "
    "not JSON Lines, which needs each record as one JSON object on one line"
)


def _json_problem(text: str) -> _JsonProblem | None:
    """Why `text` (a line that failed the fast parse) is not one JSON object; None if it is one after all."""
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return _explain(text, error)
    except RecursionError:
        return _JsonProblem(
            OTHER_SYNTAX, "invalid JSON: nested too deeply to parse: expected one JSON object per line"
        )
    except ValueError as error:
        return _JsonProblem(OTHER_SYNTAX, f"invalid JSON: {error}: expected one JSON object per line")
    return None


def _explain(text: str, error: json.JSONDecodeError) -> _JsonProblem:
    stripped = text.strip()
    if error.msg == "Extra data":
        start = len(text) - len(text.lstrip())
        value, end = _decoder.raw_decode(text, start)
        rest = text[end:].strip()
        if rest == ",":
            column = text.index(",", end) + 1
            what = "object" if type(value) is dict else "value"
            return _JsonProblem(
                TRAILING_COMMA,
                f"a trailing comma after the {what} (column {column}): JSON Lines has nothing between "
                "records but the newline; remove the comma",
                value if type(value) is dict else _NOT_A_RECORD,
            )
        if rest.startswith("]") or rest.startswith(":"):
            # "...}]" ends a JSON array; '"prompt": ...' is a member of a pretty-printed object.
            return _JsonProblem(JSON_DOCUMENT, _ARRAY_MESSAGE if rest.startswith("]") else _PRETTY_MESSAGE)
        return _JsonProblem(
            OTHER_SYNTAX,
            f"invalid JSON: more than one JSON value on the line (column {error.colno}): "
            "put each record on its own line",
        )
    if stripped.startswith("["):
        return _JsonProblem(JSON_DOCUMENT, _ARRAY_MESSAGE)
    if stripped.startswith("{") and error.pos >= len(text.rstrip()) and stripped[-1] in "{[,:":
        # The object goes on past the end of the line, the way a pretty-printer breaks it ("{", or a
        # member followed by a comma); a line cut short after a value is an ordinary syntax error.
        return _JsonProblem(JSON_DOCUMENT, _PRETTY_MESSAGE)
    return _JsonProblem(
        OTHER_SYNTAX, f"invalid JSON: {error.msg} (column {error.colno}): expected one JSON object per line"
    )


class _RepeatedCauses:
    """Names the likely cause of unreadable lines once, instead of once per line.

    The first line with a trailing comma, and the first line that shows the file is one JSON document
    (an array or pretty-printed JSON), are reported in full. Later lines with the same cause are
    counted and summed up in one file-level error at the end. Once the file is known to be a JSON
    document, every later line that is not one JSON object has that cause.
    """

    def __init__(self) -> None:
        self.first: dict[str, int] = {}
        self.more: dict[str, list[int]] = {}
        self.counts: dict[str, int] = {}

    @property
    def in_document(self) -> bool:
        return JSON_DOCUMENT in self.first

    def report(self, log: _IssueLog, lineno: int, cause: str, message: str) -> None:
        if self.in_document:
            cause = JSON_DOCUMENT
        if cause not in REPEATED_CAUSES:
            log.error(lineno, message)
        elif cause not in self.first:
            self.first[cause] = lineno
            log.error(lineno, message)
        else:
            self.counts[cause] = self.counts.get(cause, 0) + 1
            sample = self.more.setdefault(cause, [])
            if len(sample) < REPEAT_SAMPLE_LINES:
                sample.append(lineno)

    def finish(self, log: _IssueLog) -> None:
        for cause, count in self.counts.items():
            lines = ", ".join(str(n) for n in self.more[cause]) + (
                ", ..." if count > REPEAT_SAMPLE_LINES else ""
            )
            one = count == 1
            noun = "line" if one else "lines"
            if cause == TRAILING_COMMA:
                verb = "ends" if one else "end"
                what = f"{count:,} more {noun} {verb} in a trailing comma ({lines}); remove the comma on each"
            else:
                verb = "is not one JSON object" if one else "are not one JSON object each"
                what = f"{count:,} more {noun} {verb} ({lines})"
            log.error(None, f"{what}: the same cause as line {self.first[cause]}, not listed one by one")


def validate_stream(
    stream: ByteStream,
    *,
    file: str,
    limits: DatasetLimits,
    validation: bool = False,
    batch_size: int | None = None,
    size_bytes: int | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    media_location: MediaLocation | None = None,
) -> DatasetReport:
    """Validate the JSONL read from `stream` (any object with `read(n) -> bytes`) against `limits`.

    `file` names the data in every issue. `validation` checks it as a validation set (its own record
    and size maxima; an error if the model takes none). `batch_size` picks the per-record token limit
    when it depends on the batch size (None: the strictest). `size_bytes`, when known up front, is
    checked before reading; otherwise the bytes read are. `media_location` is where the images and videos
    that records name must be (None: not checked). Reads the stream once, in constant memory; does
    not close it.
    """
    report = DatasetReport(file=file, validation=validation)
    log = _IssueLog(file, max_errors)
    if validation and not limits.validation_allowed:
        log.error(
            None,
            "a validation set is not accepted for this model and customization type "
            f"({limits.data_format} data); leave it out (or merge it into the training data)",
        )
        log.finish(report)
        return report

    max_bytes = limits.validation_max_file_bytes if validation else limits.max_file_bytes
    if size_bytes is not None:
        _check_size(log, size_bytes, max_bytes, validation)

    first = stream.read(CHUNK_BYTES)
    if not first:
        report.size_bytes = 0
        log.error(None, "the file is empty: expected JSON Lines, one JSON object per line")
        log.finish(report)
        return report
    signature = _binary_signature(first)
    if signature is not None:
        report.size_bytes = size_bytes if size_bytes is not None else len(first)
        log.error(None, signature)
        log.finish(report)
        return report
    bom = b"\xef\xbb\xbf"
    has_bom = first.startswith(bom)
    if has_bom:
        log.error(1, "the file starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without BOM")
        first = first[len(bom) :]

    chunks = _LineChunks(stream, first, max_line_bytes, CHUNK_BYTES)
    if has_bom:
        chunks.bytes_read = len(bom)
    _scan_lines(chunks, report, log, limits, validation, batch_size, media_location)

    report.size_bytes = size_bytes if size_bytes is not None else chunks.bytes_read
    if size_bytes is None:
        _check_size(log, report.size_bytes, max_bytes, validation)
    _check_record_count(log, report.records, limits, validation)
    log.finish(report)
    return report


def _scan_lines(
    chunks: _LineChunks,
    report: DatasetReport,
    log: _IssueLog,
    limits: DatasetLimits,
    validation: bool,
    batch_size: int | None,
    media_location: MediaLocation | None,
) -> None:
    """The hot loop: every line of the file goes through here once."""
    check: Checker = CHECKERS[limits.data_format]
    context = RecordContext(limits=limits, media_location=media_location)
    problems = context.problems
    max_tokens = limits.max_tokens_for(batch_size)
    # ceil(chars / CHARS_PER_TOKEN) > max_tokens  <=>  chars > max_tokens * CHARS_PER_TOKEN
    # Records longer than warn_chars are over the limit at the dense rate (2/3 of max_chars): a warning.
    # Without a limit both are beyond any record, so the hot loop makes one comparison either way.
    token_limit = max_tokens if max_tokens is not None else 0
    max_chars = token_limit * CHARS_PER_TOKEN if max_tokens is not None else sys.maxsize
    warn_chars = token_limit * DENSE_CHARS_PER_TOKEN if max_tokens is not None else sys.maxsize
    limit_for = _token_limit_text(limits, batch_size, max_tokens)
    max_records = limits.validation_max_records if validation else limits.max_records
    tracking_limit = max_records + 1 if max_records is not None else DUPLICATE_TRACKING_FALLBACK
    first_lines: dict[int, int] = {}  # line hash -> first line number
    seen: dict[int, int] | None = first_lines
    scan = _scan
    add = log.add
    rejected = chunks.rejected.popleft
    error = log.error
    causes = _RepeatedCauses()
    records = 0
    total_tokens = 0
    largest_chars = -1
    largest_line = 0
    lineno = 0

    for lines in chunks:
        chunk_start = lineno
        for text in lines:
            lineno += 1
            if text is None:
                records += 1
                error(lineno, rejected())
                continue
            try:
                record, end = scan(text, 0)
                if end != len(text) and text[end:].strip(" \t\r"):
                    raise ValueError  # more after the value: let json.loads word it
            except (StopIteration, ValueError, RecursionError):
                if not text.strip(" \t\r"):
                    error(
                        lineno,
                        "blank line: every line must hold one JSON object (remove blank lines)",
                    )
                    continue
                records += 1
                problem = _json_problem(text)
                if problem is None:
                    record = json.loads(text)  # valid after all (e.g. leading whitespace)
                else:
                    causes.report(log, lineno, problem.cause, problem.message)
                    if problem.record is _NOT_A_RECORD:
                        continue
                    record = problem.record  # the object before a trailing comma: check it too
            else:
                records += 1
            if record.__class__ is not dict:
                causes.report(
                    log,
                    lineno,
                    OTHER_SYNTAX,
                    f"expected a JSON object ({{...}}) per line, got {json_type(record)}",
                )
                continue

            chars = check(record, context, lineno)
            if problems:
                for severity, message in problems:
                    add(lineno, severity, message)
                problems.clear()
            total_tokens += -(-chars // CHARS_PER_TOKEN)  # formats.estimate_tokens, inlined
            if chars > largest_chars:
                largest_chars = chars
                largest_line = lineno
            if chars > warn_chars:
                if chars > max_chars:
                    error(
                        lineno,
                        f"record is about {estimate_tokens(chars):,} tokens ({chars:,} characters); "
                        f"at most {token_limit:,} tokens per record are accepted{limit_for}",
                    )
                else:
                    add(lineno, "warning", near_token_limit_message("record", chars, token_limit, limit_for))
        if seen is not None:
            _find_duplicates(seen, lines, chunk_start, add)
            if len(seen) >= tracking_limit:
                # Stop tracking so memory stays bounded. With a record maximum, the file has more
                # records than accepted (an error at the end); without one, say where the check ended.
                seen = None
                if max_records is None:
                    add(
                        None,
                        "warning",
                        f"duplicate records were looked for among the first {lineno:,} lines only "
                        f"(at most {DUPLICATE_TRACKING_FALLBACK:,} records are tracked, to bound memory)",
                    )

    causes.finish(log)
    report.records = records
    report.estimated_tokens = total_tokens
    if largest_chars >= 0:
        report.largest_record_tokens = estimate_tokens(largest_chars)
        report.largest_record_line = largest_line


def _find_duplicates(
    seen: dict[int, int], lines: list[str | None], chunk_start: int, add: Callable[[int, Severity, str], None]
) -> None:
    """Warn about lines of one chunk identical to an earlier line; remember the new ones.

    Done per chunk, in C, when nothing repeats (the usual case): hashing every line and updating the
    table without a Python-level step per line. Only a chunk with a repeat is looked at line by line
    (blank and unreadable lines, already errors, are not called duplicates).
    """
    hashes = list(map(hash, lines))  # SipHash-1-3 of the line's text, keyed per process
    if seen.keys().isdisjoint(hashes) and len(set(hashes)) == len(hashes):
        seen.update(zip(hashes, range(chunk_start + 1, chunk_start + len(lines) + 1), strict=True))
        return
    remember = seen.setdefault
    for line_number, (line_hash, text) in enumerate(zip(hashes, lines, strict=True), start=chunk_start + 1):
        if text is None or not text.strip(" \t\r"):
            continue
        first = remember(line_hash, line_number)
        if first != line_number:
            add(line_number, "warning", f"duplicate record: identical to line {first}")


def _token_limit_text(limits: DatasetLimits, batch_size: int | None, max_tokens: int | None) -> str:
    if max_tokens is None or len(limits.token_limits) < 2:
        return ""
    if batch_size is None:
        return " (the strictest limit: the batch size is not known)"
    return f" at batch size {batch_size}"


def _check_size(log: _IssueLog, size: int, max_bytes: int | None, validation: bool) -> None:
    if max_bytes is not None and size > max_bytes:
        kind = "validation" if validation else "training"
        log.error(None, f"the file is {size:,} bytes; a {kind} file may be at most {max_bytes:,} bytes")


def _check_record_count(log: _IssueLog, records: int, limits: DatasetLimits, validation: bool) -> None:
    kind = "validation" if validation else "training"
    minimum = limits.validation_min_records if validation else limits.min_records
    maximum = limits.validation_max_records if validation else limits.max_records
    if records == 0:
        log.error(None, f"no records: a {kind} file needs at least {minimum or 1:,} JSON object lines")
    elif minimum is not None and records < minimum:
        log.error(None, f"{_count(records, 'record')}; at least {minimum:,} are required for {kind} data")
    elif maximum is not None and records > maximum:
        log.error(None, f"{_count(records, 'record')}; at most {maximum:,} are accepted for {kind} data")


def validate_file(
    path: Path,
    *,
    display_name: str | None = None,
    limits: DatasetLimits,
    validation: bool = False,
    batch_size: int | None = None,
    size_bytes: int | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    media_location: MediaLocation | None = LOCAL_FILE,
) -> DatasetReport:
    """Validate a local JSONL file (see `validate_stream`); issues name it `display_name` or `path`.

    By default (synth) a record that names an image or a video is an error, once per file: media
    must be in the stack's training bucket, whose name is generated at the first deploy.

    Raises OSError when the file cannot be opened or read.
    """
    # Unbuffered: the validator reads in large chunks itself.
    with path.open("rb", buffering=0) as stream:
        if size_bytes is None:
            size_bytes = os.fstat(stream.fileno()).st_size
        return validate_stream(
            stream,
            file=display_name if display_name is not None else str(path),
            limits=limits,
            validation=validation,
            batch_size=batch_size,
            size_bytes=size_bytes,
            max_errors=max_errors,
            max_line_bytes=max_line_bytes,
            media_location=media_location,
        )
