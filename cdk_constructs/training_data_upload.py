"""Training data from the repository reaches the training bucket at deploy time, without Docker.

Each file becomes a CDK file asset (uploaded by `cdk deploy` to the bootstrap bucket as it is),
and a `Custom::TrainingDataUpload` resource copies it into the training bucket under a
content-addressed key. The key and the file's sha256 are resource properties, so `cdk diff` shows a
data change, and later resources (the job trigger) take the digest from `self.sha256`.

Why not `BucketDeployment`: it ships an AWS CLI layer (about 20 MB) into every synthesized assembly
and unzips archives, while Bedrock needs plain objects at stable keys.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.lambda_function import FinetuneFunction
from cdk_constructs.training_data_bucket import TrainingDataBucket
from finetune.core.contracts import UploadResource
from finetune.core.digest import file_digest
from finetune.core.names import is_sha256, s3_uri, staged_key


class TrainingDataUploadFunction(FinetuneFunction):
    """The Lambda function behind `TrainingDataUpload` resources; one per stack serves them all.

    Defaults as `FinetuneFunction`, with a 15-minute timeout (a server-side copy of a 10 GB file).
    It may touch only the objects of the `TrainingDataUpload`s that use it (granted by them).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm_topic: sns.ITopic,
        encryption_key: kms.IKey | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            handler_module="training_data_upload",
            description="Copies training data assets into the training bucket (Custom::TrainingDataUpload)",
            encryption_key=encryption_key,
            alarm_topic=alarm_topic,
            timeout=cdk.Duration.minutes(15),
            removal_policy=removal_policy,
        )


class TrainingDataUpload(Construct):
    """One data file staged at `s3://<bucket>/<prefix><fine_tuning>/<sha256>/<file name>`.

    `sha256` and `size_bytes` are the file's (computed from it when not given; synth passes the
    digest it already computed, see `finetune.core.digest`). The function may read this asset and
    stage exactly this key, nothing else. Created resources: `self.asset`, `self.resource`;
    `self.s3_uri`, `self.key` and `self.sha256` for others.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: Path,
        training_bucket: TrainingDataBucket,
        prefix: str,
        fine_tuning: str,
        function: TrainingDataUploadFunction,
        sha256: str | None = None,
        size_bytes: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if sha256 is None or size_bytes is None:
            digest = file_digest(source)
            sha256, size_bytes = digest.sha256, digest.size_bytes
        if not is_sha256(sha256):
            raise ValueError(f"{self.node.path}: sha256 must be 64 lowercase hex digits, got {sha256!r}")
        self.sha256 = sha256
        self.key = staged_key(prefix, fine_tuning, sha256, source.name)
        self.s3_uri = s3_uri(training_bucket.bucket.bucket_name, self.key)
        self.asset = s3_assets.Asset(self, "Asset", path=str(source))
        # The asset is this construct's: it grants reading exactly that object (Asset.grant_read would
        # add s3:GetObject*, s3:List* and s3:GetBucket* on the bootstrap bucket).
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["s3:GetObject"],
            resource_arns=[
                f"arn:{cdk.Aws.PARTITION}:s3:::{self.asset.s3_bucket_name}/{self.asset.s3_object_key}"
            ],
        )
        training_bucket.grant_stage(function, self.key)
        upload = UploadResource(
            source_bucket=self.asset.s3_bucket_name,
            source_key=self.asset.s3_object_key,
            bucket=training_bucket.bucket.bucket_name,
            key=self.key,
            sha256=sha256,
            size_bytes=size_bytes,
        )
        self.resource = function.custom_resource(
            self, "Resource", resource_type=UploadResource.RESOURCE_TYPE, properties=upload.to_properties()
        )
