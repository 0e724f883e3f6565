"""The `TrainingDataUpload` function: `Custom::TrainingDataUpload` stages a data file (a CDK asset)
into the training bucket (`finetune.aws.staging`; contract `finetune.core.contracts.UploadResource`).

Attributes: S3Uri, Sha256. Delete keeps the object: whether data outlives the stack is the bucket's
removal policy's decision (retain: kept; destroy: the bucket is emptied and deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finetune.aws import staging
from finetune.aws.log import log
from finetune.core.contracts import UploadResource
from finetune.core.deadline import Deadline
from finetune.runtime import responder
from finetune.runtime.clients import client


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return responder.respond(event, stage_data, context=context)


def stage_data(event: Mapping[str, Any], deadline: Deadline) -> responder.Outcome:
    if event["RequestType"] == "Delete":
        return responder.Outcome(physical_id=event["PhysicalResourceId"])
    resource = UploadResource.from_properties(event["ResourceProperties"])
    request = staging.StagingRequest(
        source_bucket=resource.source_bucket,
        source_key=resource.source_key,
        bucket=resource.bucket,
        key=resource.key,
        sha256=resource.sha256,
        size_bytes=resource.size_bytes,
    )
    deadline.check(f"copying {request.s3_uri}")
    copied = staging.stage(client("s3"), request)
    log("stage", uri=request.s3_uri, sha256=request.sha256, copied=copied)
    return responder.Outcome(
        physical_id=request.s3_uri, data={"S3Uri": request.s3_uri, "Sha256": request.sha256}
    )
