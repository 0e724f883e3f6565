"""`TrainingDataBucket`: the private, encrypted S3 bucket a Bedrock customization job reads and writes."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs.common import default_child, key_or_new
from cdk_constructs.nag import acknowledge, acknowledge_all

# The feature flag under which S3 delivers server access logs by a bucket policy (aws-cdk-lib cx-api).
S3_LOGS_USE_BUCKET_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


class TrainingDataBucket(Construct):
    """A bucket for training data, validation data and Bedrock job output.

    Defaults (each overridable by a keyword):
    - encryption: SSE-KMS with a customer-managed key with yearly rotation (`encryption_key`: pass your
      own `kms.IKey`, default a new key), S3 Bucket Keys on to cut KMS request costs;
    - versioning on; noncurrent versions expire after `noncurrent_version_expiration` (90 days);
      incomplete multipart uploads are aborted after 7 days;
    - all public access blocked, TLS-only bucket policy (`enforceSSL`), object ownership enforced
      (no ACLs);
    - object events sent to EventBridge (rules can react to uploads without a custom resource);
    - server access logs to a separate bucket (SSE-S3: S3 log delivery cannot write SSE-KMS), kept
      `access_log_retention` (365 days);
    - `removal_policy` RETAIN (keep the bucket, the logs and the key); DESTROY empties and deletes
      both buckets and schedules the key it created for deletion (7-day window).

    Prefixes: `training/`, `validation/` (job input), `output/` (job output), `incoming/` (uploads that
    start a new job). Created resources: `self.bucket`, `self.access_log_bucket`, `self.encryption_key`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        encryption_key: kms.IKey | None = None,
        noncurrent_version_expiration: cdk.Duration = cdk.Duration.days(90),
        access_log_retention: cdk.Duration = cdk.Duration.days(365),
    ) -> None:
        super().__init__(scope, construct_id)
        if removal_policy not in (cdk.RemovalPolicy.RETAIN, cdk.RemovalPolicy.DESTROY):
            raise ValueError(
                f"{self.node.path}: removal_policy must be RETAIN or DESTROY, got {removal_policy}"
            )
        destroy = removal_policy == cdk.RemovalPolicy.DESTROY
        # Server access logs are delivered by a bucket policy, never an ACL (ACLs are disabled here),
        # whatever the app's feature flags say: the construct works in any CDK app as it is.
        self.node.set_context(S3_LOGS_USE_BUCKET_POLICY, True)
        self.encryption_key: kms.IKey = key_or_new(
            self,
            encryption_key,
            purpose="training data and Bedrock job output",
            removal_policy=removal_policy,
        )

        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=access_log_retention,
                    noncurrent_version_expiration=cdk.Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="training-data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireOldVersions",
                    noncurrent_version_expiration=noncurrent_version_expiration,
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        # Object events go to EventBridge, set on the L1 resource: the L2 route (`event_bridge_enabled`
        # or `add_event_notification`) deploys a custom resource and its own Lambda function for it.
        cfn_bucket = default_child(self.bucket, s3.CfnBucket)
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )
        self._acknowledge_access_log_bucket()

    def grant_read(self, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
        """`s3:GetObject` under `prefix`, `s3:ListBucket` limited to it, and decrypting with the key.

        Exact actions, unlike `Bucket.grant_read` (`s3:GetObject*`, `s3:List*`, `s3:GetBucket*`).
        """
        self.encryption_key.grant(grantee, "kms:Decrypt")
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket"],
            resource_arns=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        )
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject"],
            resource_arns=[self.bucket.arn_for_objects(f"{prefix}*")],
        )

    def grant_list(self, grantee: iam.IGrantable) -> iam.Grant:
        """`s3:ListBucket` on the bucket, without a prefix condition: object names, never content.

        S3 answers HeadObject or GetObject of a missing key with 404 only to a caller allowed
        s3:ListBucket on the bucket, and checks that without `s3:prefix` (a prefix condition is never
        met there); otherwise it answers 403 AccessDenied. Code that tells "not there (yet)" from
        "denied" needs this.
        """
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:ListBucket"], resource_arns=[self.bucket.bucket_arn]
        )

    def grant_write(self, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
        """`s3:PutObject` under `prefix`, encrypting with the key (multipart uploads also decrypt), and
        `s3:AbortMultipartUpload` there: boto3's managed copies and uploads of large objects are
        multipart and abort what fails."""
        self.encryption_key.grant(grantee, "kms:GenerateDataKey", "kms:Decrypt")
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resource_arns=[self.bucket.arn_for_objects(f"{prefix}*")],
        )

    def grant_stage(self, grantee: iam.IGrantable, key: str) -> iam.Grant:
        """Stage one object at exactly `key`: read and write it (boto3's managed copy, multipart for
        large files and aborted when it fails), list object names (a key not staged yet then
        answers 404, not 403), and use the key."""
        self.encryption_key.grant(grantee, "kms:Decrypt", "kms:GenerateDataKey")
        self.grant_list(grantee)
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            resource_arns=[self.bucket.arn_for_objects(key)],
        )

    def grant_read_versions(self, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
        """`s3:GetObjectVersion` under `prefix`: read the very version that was validated."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObjectVersion"],
            resource_arns=[self.bucket.arn_for_objects(f"{prefix}*")],
        )

    def grant_tagging(self, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
        """Read and write object tags under `prefix` (how uploads are marked started or rejected)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObjectTagging", "s3:PutObjectTagging"],
            resource_arns=[self.bucket.arn_for_objects(f"{prefix}*")],
        )

    def _acknowledge_access_log_bucket(self) -> None:
        no_replication = (
            "Training data is reproducible from the repository's training_data/ folder and job output "
            "from the job; cross-region replication would double storage cost for no recovery benefit."
        )
        target = default_child(self.access_log_bucket, s3.CfnBucket)
        bucket = default_child(self.bucket, s3.CfnBucket)
        acknowledge_all(
            target,
            {
                "AwsSolutions-S1": "This is the server access log target bucket; logging it into itself "
                "would loop and logging it elsewhere needs yet another bucket with the same finding.",
                "NIST.800.53.R5-S3BucketLoggingEnabled": "This is the server access log target bucket; "
                "S3 does not log a log bucket into itself.",
                "NIST.800.53.R5-S3DefaultEncryptionKMS": "S3 server access log delivery supports only "
                "SSE-S3 on the target bucket, not SSE-KMS (S3 user guide, 'Enabling Amazon S3 server "
                "access logging').",
                "NIST.800.53.R5-S3BucketReplicationEnabled": no_replication,
            },
        )
        acknowledge(bucket, "NIST.800.53.R5-S3BucketReplicationEnabled", no_replication)
