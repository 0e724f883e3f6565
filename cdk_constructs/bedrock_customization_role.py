"""`BedrockCustomizationRole`: the service role a Bedrock model customization job assumes."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs.nag import acknowledge_wildcard_resources, prefix_objects
from finetune.core.names import MEDIA_PREFIX, OUTPUT_PREFIX, TRAINING_PREFIX, VALIDATION_PREFIX

BEDROCK_SERVICE = "bedrock.amazonaws.com"


class BedrockCustomizationRole(Construct):
    """An IAM role only Bedrock customization jobs of this account and region can assume.

    Trust: `bedrock.amazonaws.com` with `aws:SourceAccount` = this account and `aws:SourceArn` like
    `arn:<partition>:bedrock:<region>:<account>:model-customization-job/*` (confused-deputy guard,
    Bedrock user guide "Create a service role for model customization").

    Permissions, in one customer-managed policy (readable on its own in the template and in IAM):
    - `s3:GetObject` on `read_prefixes` (default `training/`, `validation/`, `media/`: the images
      and videos records name);
    - `s3:GetObject`, `s3:PutObject` on `write_prefix` (default `output/`);
    - `s3:ListBucket` on the bucket, limited by `s3:prefix` to those prefixes;
    - with a bucket encrypted by a KMS key (the bucket's `encryption_key`): `kms:Decrypt`, `kms:GenerateDataKey`, `kms:DescribeKey` and
      `kms:CreateGrant`, only through S3 (reading/writing the encrypted objects) and Bedrock
      (encrypting the custom model) in this region (`kms:ViaService`): never directly.

    Created resources: `self.role`, `self.policy`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        read_prefixes: tuple[str, ...] = (TRAINING_PREFIX, VALIDATION_PREFIX, MEDIA_PREFIX),
        write_prefix: str = OUTPUT_PREFIX,
    ) -> None:
        super().__init__(scope, construct_id)
        encryption_key = bucket.encryption_key
        for prefix in (*read_prefixes, write_prefix):
            if not prefix.endswith("/") or prefix.startswith("/") or "*" in prefix:
                raise ValueError(f"{self.node.path}: prefix {prefix!r} must look like 'name/' (no wildcard)")
        stack = cdk.Stack.of(self)
        job_arns = stack.format_arn(service="bedrock", resource="model-customization-job", resource_name="*")
        self.role = iam.Role(
            self,
            "Role",
            description=f"Assumed by Bedrock model customization jobs of {stack.stack_name}",
            assumed_by=iam.ServicePrincipal(BEDROCK_SERVICE).with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": job_arns},
                }
            ),
        )
        all_prefixes = [*read_prefixes, write_prefix]
        statements = [
            iam.PolicyStatement(
                sid="ReadJobInput",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in read_prefixes],
            ),
            iam.PolicyStatement(
                sid="WriteJobOutput",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{write_prefix}*")],
            ),
            iam.PolicyStatement(
                sid="ListOwnPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in all_prefixes]}},
            ),
        ]
        if encryption_key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="UseKeyThroughS3AndBedrockOnly",
                    actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"],
                    resources=[encryption_key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": [
                                f"s3.{stack.region}.amazonaws.com",
                                f"bedrock.{stack.region}.amazonaws.com",
                            ]
                        }
                    },
                )
            )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"Data access of Bedrock customization jobs of {stack.stack_name}",
            statements=statements,
            roles=[self.role],
        )
        acknowledge_wildcard_resources(
            self.policy,
            prefix_objects(
                bucket,
                all_prefixes,
                "Bedrock reads or writes objects whose names it chooses under this prefix; the grant "
                "is limited to one prefix of this stack's bucket.",
            ),
        )
