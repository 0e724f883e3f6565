"""Custom resource `Custom::TrainingDataUpload`: stage a data file into the training bucket.

Properties: SourceBucket, SourceKey (the CDK asset), Bucket, Key, Sha256, SizeBytes.
Attributes: S3Uri, Sha256. Delete keeps the object: whether data outlives the stack is the bucket's
removal policy's decision (retain: kept; destroy: the bucket is emptied and deleted).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from finetune.aws import staging
from finetune.runtime import responder as custom_resource

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)


@cache
def s3_client() -> Any:
    """Created on first use, not at import: keeps cold starts (and `make bench`'s import figure) low."""
    return boto3.client("s3", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return custom_resource.respond(event, stage_data, context=context)


def stage_data(event: Mapping[str, Any], deadline: custom_resource.Deadline) -> custom_resource.Outcome:
    properties = event["ResourceProperties"]
    if event["RequestType"] == "Delete":
        return custom_resource.Outcome(physical_id=event["PhysicalResourceId"])
    request = staging.StagingRequest(
        source_bucket=properties["SourceBucket"],
        source_key=properties["SourceKey"],
        bucket=properties["Bucket"],
        key=properties["Key"],
        sha256=properties["Sha256"],
        size_bytes=int(properties["SizeBytes"]),
    )
    deadline.check(f"copying {request.s3_uri}")
    copied = staging.stage(s3_client(), request)
    LOG.info(
        json.dumps({"action": "stage", "uri": request.s3_uri, "sha256": request.sha256, "copied": copied})
    )
    return custom_resource.Outcome(
        physical_id=request.s3_uri, data={"S3Uri": request.s3_uri, "Sha256": request.sha256}
    )
