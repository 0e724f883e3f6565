"""Staging training data: copy a CDK file asset into the training bucket under a content-addressed key.

The key embeds the file's sha256 (`training/<fine-tuning>/<sha256>/<file name>`), so a job always
reads exactly the bytes it was started for, a data change gets a new key, and copying the same file
again is a no-op: the operation is idempotent, as CloudFormation retries and replays require.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from finetune.aws.errors import FORBIDDEN_CODES, error_code, is_not_found

DIGEST_METADATA_KEY = "sha256"


@dataclass(frozen=True)
class StagingRequest:
    source_bucket: str
    source_key: str
    bucket: str
    key: str
    sha256: str
    size_bytes: int
    # The version that was validated (versioned buckets): the copy takes exactly those bytes even
    # if the key was overwritten since. None: the current version.
    source_version_id: str | None = None

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def stage(s3: Any, request: StagingRequest) -> bool:
    """Copy the asset into place unless it is already there; True when a copy was made.

    Raises ValueError when the asset's size differs from the one recorded at synth time (a stale or
    foreign asset), so a job can never start on bytes other than the ones reviewed.
    """
    if _already_staged(s3, request):
        return False
    version = {"VersionId": request.source_version_id} if request.source_version_id else {}
    source = s3.head_object(Bucket=request.source_bucket, Key=request.source_key, **version)
    if source["ContentLength"] != request.size_bytes:
        raise ValueError(
            f"asset s3://{request.source_bucket}/{request.source_key} has {source['ContentLength']} bytes, "
            f"but the synthesized template recorded {request.size_bytes} bytes (sha256 {request.sha256}); "
            "re-run `cdk deploy` so the current asset is uploaded"
        )
    # Managed copy: server-side, multipart for objects over 5 GB (Bedrock accepts up to 10 GB).
    s3.copy(
        {"Bucket": request.source_bucket, "Key": request.source_key, **version},
        request.bucket,
        request.key,
        ExtraArgs={"Metadata": {DIGEST_METADATA_KEY: request.sha256}, "MetadataDirective": "REPLACE"},
    )
    return True


def _already_staged(s3: Any, request: StagingRequest) -> bool:
    try:
        head = s3.head_object(Bucket=request.bucket, Key=request.key)
    except ClientError as error:
        # S3 answers 403, not 404, for a missing key unless the caller may list the bucket: such a
        # key is treated as not staged yet, and a real denial then shows in the copy's own error.
        if is_not_found(error) or error_code(error) in FORBIDDEN_CODES:
            return False
        raise
    return bool(head.get("Metadata", {}).get(DIGEST_METADATA_KEY) == request.sha256)
