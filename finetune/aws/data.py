"""Training data where Bedrock reads it: one streamed pass over an S3 object, hashed on the way and
checked by the validator synth uses (`finetune.core.dataset.validate_stream`).

The object is read once, in constant memory, whatever its size (Bedrock takes up to 10 GB). Its
sha256 comes from the same pass, so a job never trains on bytes other than the ones its name was
derived from, and the version read is reported, so an upload stages exactly what was validated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from finetune.core.contracts import JobRequest, TrainingBudget
from finetune.core.formats import DatasetLimits
from finetune.core.names import parse_s3_object_uri, s3_uri

if TYPE_CHECKING:
    from finetune.core.dataset import DatasetReport

DRAIN_CHUNK_BYTES = 1024 * 1024


class S3Objects(Protocol):
    """The S3 call the data checks make (boto3's keyword arguments)."""

    def get_object(self, **kwargs: Any) -> Any: ...


class HashingStream:
    """A body that hashes (sha256) and counts every byte read through it."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._body.read(size if size is not None and size >= 0 else None)
        self.digest.update(data)
        self.bytes_read += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) what the validator left unread."""
        while self.read(DRAIN_CHUNK_BYTES):
            pass

    def close(self) -> None:
        self._body.close()


@dataclass(frozen=True)
class ObjectCheck:
    """One S3 object, validated: the report, its sha256 and size (None for data that failed before
    it was read whole: it is rejected anyway), and the version that was read (versioned buckets)."""

    report: DatasetReport
    sha256: str | None
    size_bytes: int | None
    version_id: str | None = None


def check_object(
    s3: S3Objects,
    bucket: str,
    key: str,
    *,
    limits: DatasetLimits,
    validation: bool = False,
    batch_size: int | None = None,
    version_id: str | None = None,
) -> ObjectCheck:
    """Validate `s3://bucket/key` (its `version_id`, or the current version) in one streamed pass.

    Images and videos that records name must be in the same bucket (Nova guide: they sit in the
    dataset's bucket), under media/, where the Bedrock role reads them. botocore errors (no such key,
    access denied) propagate.
    """
    # Imported when data is checked, not at a cold start (a Delete or an ignored event needs none).
    from finetune.core.dataset import MediaLocation, validate_stream

    response = s3.get_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
    length = response.get("ContentLength")
    size = length if isinstance(length, int) else None
    stream = HashingStream(response["Body"])
    try:
        report = validate_stream(
            stream,
            file=s3_uri(bucket, key),
            limits=limits,
            validation=validation,
            batch_size=batch_size,
            size_bytes=size,
            media_location=MediaLocation(bucket),
        )
        if report.ok:
            stream.drain()
    finally:
        stream.close()
    version = response.get("VersionId")
    read_whole = size is None or stream.bytes_read == size
    return ObjectCheck(
        report=report,
        sha256=stream.digest.hexdigest() if read_whole else None,
        size_bytes=stream.bytes_read if read_whole else size,
        version_id=version if isinstance(version, str) and version != "null" else None,
    )


def problem_lines(report: DatasetReport) -> list[str]:
    """The report's errors as "s3://bucket/key:LINE: message" (file-level ones without the line)."""
    return [
        f"{issue.file}:{issue.line}: {issue.message}"
        if issue.line is not None
        else f"{issue.file}: {issue.message}"
        for issue in report.issues()
        if issue.severity == "error"
    ]


def budget_problem(uri: str, report: DatasetReport, budget: TrainingBudget | None) -> str | None:
    """Why training on this (valid) data would exceed the budget; None within it or without one.

    The count is the validator's (estimated tokens, records): the same arithmetic synth applied to
    the deployed sample, here applied to the data Bedrock would read.
    """
    if budget is None or not report.ok:
        return None
    excess = budget.excess(report.estimated_tokens, report.records)
    return f"{uri}: {excess}" if excess else None


def request_data_problems(
    s3: S3Objects,
    request: JobRequest,
    limits: DatasetLimits,
    batch_size: int | None = None,
    budget: TrainingBudget | None = None,
) -> list[str]:
    """Problems of the request's training (and validation) data in S3; an empty list means valid.

    Besides the validator's findings, an object whose sha256 differs from the one in the request's
    spec is a problem: the job would train on other bytes than its name says; and training data
    whose estimated cost exceeds `budget`.
    """
    data: list[tuple[str, str | None, bool]] = [
        (request.training_s3_uri, request.spec.training_sha256, False)
    ]
    if request.validation_s3_uri is not None:
        data.append((request.validation_s3_uri, request.spec.validation_sha256, True))
    problems: list[str] = []
    for uri, expected_sha256, validation in data:
        bucket, key = parse_s3_object_uri(uri)
        check = check_object(s3, bucket, key, limits=limits, validation=validation, batch_size=batch_size)
        problems.extend(problem_lines(check.report))
        over_budget = None if validation else budget_problem(uri, check.report, budget)
        if over_budget:
            problems.append(over_budget)
        if check.report.ok and expected_sha256 and check.sha256 != expected_sha256:
            problems.append(
                f"{uri}: the object's sha256 is {check.sha256}, but the job was named for {expected_sha256}: "
                "the data changed after it was staged; deploy again (or upload it again)"
            )
    return problems
