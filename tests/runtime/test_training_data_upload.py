"""The TrainingDataUpload custom resource handler: answers CloudFormation always, copies idempotently."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from finetune.aws import staging
from finetune.core import names
from finetune.runtime import clients as runtime_clients
from finetune.runtime import responder as custom_resource
from finetune.runtime import training_data_upload as stage_data

DATA = b'{"prompt": "p", "completion": "c"}\n' * 3
SHA = hashlib.sha256(DATA).hexdigest()


class Responses:
    """Stands in for CloudFormation's pre-signed response URL."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, body: bytes) -> None:
        self.sent.append((url, json.loads(body)))


@pytest.fixture
def s3(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-west-2")
        for bucket in ("assets", "training"):
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        client.put_object(Bucket="assets", Key="abc.jsonl", Body=DATA)
        runtime_clients.forget()
        yield client
        runtime_clients.forget()


def event(request_type: str = "Create", **properties: Any) -> dict[str, Any]:
    key = names.staged_key("training/", "assistant", SHA, "train.jsonl")
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-response.example/abc",
        "StackId": "arn:aws:cloudformation:us-west-2:123456789012:stack/dev-assistant/1",
        "RequestId": "req-1",
        "LogicalResourceId": "TrainingDataUpload",
        "ResourceProperties": {
            "SourceBucket": "assets",
            "SourceKey": "abc.jsonl",
            "Bucket": "training",
            "Key": key,
            "Sha256": SHA,
            "SizeBytes": str(len(DATA)),
            **properties,
        },
    }


def test_staged_key_is_content_addressed() -> None:
    assert (
        names.staged_key("training/", "assistant", SHA, "train.jsonl")
        == f"training/assistant/{SHA}/train.jsonl"
    )


def test_create_copies_the_asset_with_its_digest_and_answers_success(s3: Any) -> None:
    responses = Responses()
    request = event()
    body = custom_resource.respond(request, stage_data.stage_data, send=responses)
    key = request["ResourceProperties"]["Key"]
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == f"s3://training/{key}"
    assert body["Data"] == {"S3Uri": f"s3://training/{key}", "Sha256": SHA}
    assert responses.sent[0][0] == request["ResponseURL"]
    staged = s3.get_object(Bucket="training", Key=key)
    assert staged["Body"].read() == DATA
    assert staged["Metadata"] == {"sha256": SHA}


def test_staging_twice_copies_once(s3: Any) -> None:
    props = event()["ResourceProperties"]
    request = staging.StagingRequest(
        source_bucket="assets",
        source_key="abc.jsonl",
        bucket="training",
        key=props["Key"],
        sha256=SHA,
        size_bytes=len(DATA),
    )
    assert staging.stage(s3, request) is True
    first = s3.head_object(Bucket="training", Key=props["Key"])["LastModified"]
    assert staging.stage(s3, request) is False
    versions = s3.list_object_versions(Bucket="training", Prefix=props["Key"]).get("Versions", [])
    assert len(versions) == 1
    assert s3.head_object(Bucket="training", Key=props["Key"])["LastModified"] == first


def test_a_size_mismatch_fails_the_deployment_and_copies_nothing(s3: Any) -> None:
    responses = Responses()
    body = custom_resource.respond(event(SizeBytes="999"), stage_data.stage_data, send=responses)
    assert body["Status"] == "FAILED"
    assert "999 bytes" in body["Reason"] and "re-run `cdk deploy`" in body["Reason"]
    assert body["PhysicalResourceId"] == "failed-create-req-1"
    assert s3.list_objects_v2(Bucket="training").get("KeyCount") == 0


def test_a_missing_asset_fails_with_the_s3_error(s3: Any) -> None:
    body = custom_resource.respond(event(SourceKey="gone.jsonl"), stage_data.stage_data, send=Responses())
    assert body["Status"] == "FAILED"
    assert "ClientError" in body["Reason"] and "404" in body["Reason"]


def test_delete_keeps_the_object_and_answers_with_the_same_physical_id(s3: Any) -> None:
    responses = Responses()
    custom_resource.respond(event(), stage_data.stage_data, send=responses)
    physical_id = responses.sent[0][1]["PhysicalResourceId"]
    delete = {**event("Delete"), "PhysicalResourceId": physical_id}
    body = custom_resource.respond(delete, stage_data.stage_data, send=responses)
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == physical_id
    assert s3.list_objects_v2(Bucket="training")["KeyCount"] == 1


def test_handler_answers_cloudformation_through_the_response_url(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses = Responses()
    monkeypatch.setattr(custom_resource, "put_response", responses)
    returned = stage_data.handler(event(), None)
    assert [body["Status"] for _url, body in responses.sent] == ["SUCCESS"]
    assert returned == responses.sent[0][1]


def test_the_response_is_put_to_the_presigned_url_as_cloudformation_expects() -> None:
    """A real HTTP server on loopback stands in for S3's pre-signed URL."""
    import http.server
    import threading

    received: dict[str, Any] = {}

    class PresignedUrl(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["content-length"])
            received.update(
                path=self.path, content_type=self.headers.get("content-type"), body=self.rfile.read(length)
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), PresignedUrl)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/bucket/response?X-Amz-Signature=abc"
        custom_resource.put_response(url, b'{"Status": "SUCCESS"}')
    finally:
        server.shutdown()
    # S3 pre-signed URLs are signed without a content type: any value would break the signature.
    assert received == {
        "path": "/bucket/response?X-Amz-Signature=abc",
        "content_type": "",
        "body": b'{"Status": "SUCCESS"}',
    }


def test_staging_a_version_copies_that_version_not_the_current_one(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket="assets", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="assets", Key="v.jsonl", Body=DATA)["VersionId"]
    s3.put_object(Bucket="assets", Key="v.jsonl", Body=b"y" * len(DATA))
    request = staging.StagingRequest(
        source_bucket="assets",
        source_key="v.jsonl",
        bucket="training",
        key=f"training/assistant/{SHA}/v.jsonl",
        sha256=SHA,
        size_bytes=len(DATA),
        source_version_id=first,
    )
    assert staging.stage(s3, request) is True
    assert s3.get_object(Bucket="training", Key=request.key)["Body"].read() == DATA


def test_a_key_s3_hides_behind_403_is_treated_as_not_staged_yet() -> None:
    """Without s3:ListBucket (unconditioned), S3 answers HeadObject of a missing key with 403."""
    from botocore.exceptions import ClientError

    class HidingS3:
        def __init__(self) -> None:
            self.copies: list[tuple[Any, str, str]] = []

        def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
            if Bucket == "training":
                raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
            return {"ContentLength": len(DATA)}

        def copy(self, source: Any, bucket: str, key: str, ExtraArgs: Any) -> None:  # noqa: N803
            self.copies.append((source, bucket, key))

    s3 = HidingS3()
    request = staging.StagingRequest(
        "assets", "a.jsonl", "training", f"training/x/{SHA}/a.jsonl", SHA, len(DATA)
    )

    assert staging.stage(s3, request) is True
    assert s3.copies == [({"Bucket": "assets", "Key": "a.jsonl"}, "training", f"training/x/{SHA}/a.jsonl")]
