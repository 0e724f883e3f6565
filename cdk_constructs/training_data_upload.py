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
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.lambda_function import FinetuneFunction
from finetune.aws.staging import staged_key

RESOURCE_TYPE = "Custom::TrainingDataUpload"


class DataStagingFunction(FinetuneFunction):
    """The Lambda function behind `TrainingDataUpload` resources; one per stack serves them all.

    Defaults as `FinetuneFunction`, with a 15-minute timeout (a server-side copy of a 10 GB file).
    It may write only the keys of the `TrainingDataUpload`s that use it (granted by them), and list
    the bucket's names, which S3 requires to answer 404 rather than 403 for a key not staged yet.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        alarm_topic: sns.ITopic,
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

    `sha256` is the hex digest of the file computed at synth time (see `finetune.core.digest`). Created
    resources: `self.asset`, `self.resource`; `self.s3_uri`, `self.key` and `self.sha256` for others.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: Path,
        sha256: str,
        size_bytes: int,
        bucket: s3.IBucket,
        prefix: str,
        fine_tuning: str,
        function: DataStagingFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"{self.node.path}: sha256 must be 64 lowercase hex digits, got {sha256!r}")
        self.sha256 = sha256
        self.key = staged_key(prefix, fine_tuning, sha256, source.name)
        self.s3_uri = f"s3://{bucket.bucket_name}/{self.key}"
        self.asset = s3_assets.Asset(self, "Asset", path=str(source))
        # Exact objects only (no wildcard): read this asset, write and inspect this one key.
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    f"arn:{cdk.Aws.PARTITION}:s3:::{self.asset.s3_bucket_name}/{self.asset.s3_object_key}"
                ],
            )
        )
        # The copy is boto3's managed copy: multipart for large files, aborted when it fails.
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(self.key)],
            )
        )
        # "Is it staged yet?" is a HeadObject of the key. S3 answers a missing key with 404 only to
        # a caller allowed s3:ListBucket on the bucket, checked without s3:prefix (a prefix condition
        # is never met there); otherwise with 403. Object names only: content stays per key.
        function.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
        if bucket.encryption_key is not None:
            bucket.encryption_key.grant(function.role, "kms:Decrypt", "kms:GenerateDataKey")
        self.resource = function.custom_resource(
            self,
            "Resource",
            resource_type=RESOURCE_TYPE,
            properties={
                "SourceBucket": self.asset.s3_bucket_name,
                "SourceKey": self.asset.s3_object_key,
                "Bucket": bucket.bucket_name,
                "Key": self.key,
                "Sha256": sha256,
                "SizeBytes": str(size_bytes),
            },
        )
