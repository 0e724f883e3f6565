"""finetune.aws.data: an S3 object validated in one streamed, hashed pass (the validator is core's)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from finetune.aws import data
from finetune.core.formats import DataFormat, DatasetLimits
from tests.core.test_dataset import (
    CONVERSE,
    PROMPT_COMPLETION,
    S3_IMAGE,
    VALID_PC,
    assert_one_issue,
    converse,
    line,
    text,
)


@pytest.fixture
def s3_client(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        yield client


class ClosingSpy:
    """Wraps a StreamingBody: records read sizes and whether it was closed."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.sizes: list[int] = []
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        self.sizes.append(size)
        data: bytes = self.body.read(size)
        return data

    def close(self) -> None:
        self.closed = True
        self.body.close()


def test_check_object_streams_the_body(s3_client: Any) -> None:
    records = [{"prompt": f"question {i}", "completion": "answer " * 50} for i in range(5_000)]
    body = b"".join(line(r) + b"\n" for r in records) + line({"prompt": "p"}) + b"\n"
    s3_client.put_object(Bucket="data-bucket", Key="train/data.jsonl", Body=body)

    spies: list[ClosingSpy] = []

    class SpyingClient:
        def get_object(self, **kwargs: Any) -> dict[str, Any]:
            response: dict[str, Any] = s3_client.get_object(**kwargs)
            spies.append(ClosingSpy(response["Body"]))
            return {**response, "Body": spies[0]}

    report = data.check_object(
        SpyingClient(), "data-bucket", "train/data.jsonl", limits=PROMPT_COMPLETION
    ).report
    assert report.file == "s3://data-bucket/train/data.jsonl"
    assert report.records == 5_001 and report.size_bytes == len(body)
    assert [str(issue) for issue in report.errors] == [
        "s3://data-bucket/train/data.jsonl:5001: error: completion: missing (required: a non-empty string)"
    ]
    assert len(body) > 1 << 20 and all(0 < size <= 1 << 20 for size in spies[0].sizes)  # never whole
    assert spies[0].closed


def test_check_object_checks_media_are_under_media_of_the_bucket(s3_client: Any) -> None:
    record = converse(("user", [{"image": S3_IMAGE}]), ("assistant", [text("a")]))
    s3_client.put_object(Bucket="data-bucket", Key="ok.jsonl", Body=line(record))
    s3_client.create_bucket(Bucket="other-bucket")
    s3_client.put_object(Bucket="other-bucket", Key="bad.jsonl", Body=line(record))
    assert data.check_object(s3_client, "data-bucket", "ok.jsonl", limits=CONVERSE).report.ok
    report = data.check_object(s3_client, "other-bucket", "bad.jsonl", limits=CONVERSE).report
    assert_one_issue(report, 1, "is not under s3://other-bucket/media/")


def test_check_object_checks_content_length(s3_client: Any) -> None:
    limits = DatasetLimits(DataFormat.PROMPT_COMPLETION, max_file_bytes=10)
    s3_client.put_object(Bucket="data-bucket", Key="big.jsonl", Body=line(VALID_PC) + b"\n")
    report = data.check_object(s3_client, "data-bucket", "big.jsonl", limits=limits).report
    assert_one_issue(report, None, "the file is 35 bytes; a training file may be at most 10 bytes")


def test_the_sha256_comes_from_the_same_pass_and_names_the_version_read(s3_client: Any) -> None:
    s3_client.put_bucket_versioning(Bucket="data-bucket", VersioningConfiguration={"Status": "Enabled"})
    first = line(VALID_PC) + b"\n"
    version = s3_client.put_object(Bucket="data-bucket", Key="v.jsonl", Body=first)["VersionId"]
    s3_client.put_object(Bucket="data-bucket", Key="v.jsonl", Body=first * 2)
    calls: list[dict[str, Any]] = []

    class CountingClient:
        def get_object(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            response: dict[str, Any] = s3_client.get_object(**kwargs)
            return response

    check = data.check_object(
        CountingClient(), "data-bucket", "v.jsonl", limits=PROMPT_COMPLETION, version_id=version
    )

    assert check.sha256 == hashlib.sha256(first).hexdigest() and check.size_bytes == len(first)
    assert check.version_id == version
    assert calls == [{"Bucket": "data-bucket", "Key": "v.jsonl", "VersionId": version}]  # read once


def test_data_that_fails_early_has_no_sha256(s3_client: Any) -> None:
    s3_client.put_object(Bucket="data-bucket", Key="bin.jsonl", Body=b"\x89PNG\r\n\x1a\n" + b"\0" * 600_000)
    check = data.check_object(s3_client, "data-bucket", "bin.jsonl", limits=PROMPT_COMPLETION)
    assert not check.report.ok and check.sha256 is None
