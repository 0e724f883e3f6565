"""`ModelEvaluationRole`: the service role a Bedrock model evaluation job assumes, and the grant to run
such jobs with it."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs.bedrock_customization_role import BEDROCK_SERVICE
from cdk_constructs.nag import acknowledge_wildcard_resources, as_finding_texts, prefix_objects
from finetune.core.names import EVALUATION_DATA_PREFIX, EVALUATION_PREFIX

# What the evaluation job invokes (Bedrock user guide, "Service role requirements for automatic model
# evaluation jobs" and "Required service role permissions for creating a model evaluation job that
# uses a judge model").
INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
# The resource types of bedrock:CreateEvaluationJob (service authorization reference).
CREATE_EVALUATION_RESOURCE_TYPES = (
    "foundation-model",
    "custom-model",
    "prompt-router",
    "default-prompt-router",
)


class ModelEvaluationRole(Construct):
    """An IAM role only Bedrock model evaluation jobs of this account and region can assume.

    Trust: `bedrock.amazonaws.com` with `aws:SourceAccount` = this account and `aws:SourceArn` like
    `arn:<partition>:bedrock:<region>:<account>:evaluation-job/*` (confused-deputy guard, Bedrock user
    guide "Service role requirements for automatic model evaluation jobs").

    Permissions, in one customer-managed policy (readable on its own in the template and in IAM):
    - `s3:GetObject` on `dataset_prefix` (default `evaluation-data/`): the prompt datasets;
    - `s3:GetObject`, `s3:PutObject`, `s3:AbortMultipartUpload` on `output_prefix` (default
      `evaluation/`): the results, and the BYOI datasets (prompts with the responses a custom model
      gave) that the gate stages there and the job reads;
    - `s3:ListBucket` on the bucket, limited by `s3:prefix` to those two prefixes, and
      `s3:GetBucketLocation` (both listed by the user guide for the dataset and output buckets);
    - `bedrock:InvokeModel`, `bedrock:InvokeModelWithResponseStream` on `evaluated_models` and
      `judge_models` (ARN patterns: base foundation models, this stack's provisioned models, ...). A
      judge reached through a cross-Region inference profile is invoked as the profile *and* as the
      foundation model in every destination Region: list all of those ARNs
      (`inference_profile_arns` spells them);
    - with a bucket encrypted by a KMS key (the bucket's `encryption_key`): `kms:Decrypt`,
      `kms:GenerateDataKey`, `kms:DescribeKey`, only through S3 in this region (`kms:ViaService`,
      user guide "AWS Key Management Service support in model evaluation jobs"): never directly.

    With that key, its key policy also lets `bedrock.amazonaws.com` use it for the temporary data of
    a job started with it (`customerEncryptionKeyId`, as the gate starts them): `kms:GenerateDataKey`
    and `kms:Decrypt` with `kms:EncryptionContext:evaluationJobArn` and `aws:SourceArn` an evaluation
    job of this account and region, `kms:DescribeKey` with that `aws:SourceArn` (user guide,
    "Required key policy elements to encrypt your model evaluation job using AWS KMS").

    Not granted, although the user guide's examples list them: `s3:ListBucketMultipartUploads` (it
    takes no `s3:prefix` condition, so it would show upload keys of the whole bucket), and
    `bedrock:CreateModelInvocationJob`/`StopModelInvocationJob` and the Get* look-ups of models,
    profiles and provisioned throughputs (the guide does not say what a job uses them for; add them
    when a job is seen to fail without them).

    `evaluated_models` may be empty for a BYOI job (Bedrock invokes only the judge); a role that could
    invoke no model at all is refused, as is anything that is not a Bedrock ARN (pattern).
    `grant_run_evaluations(grantee)` lets a principal start, read, stop and list evaluation jobs with
    this role. Created resources: `self.role`, `self.policy`; `self.models` is the deduplicated
    evaluated + judge ARNs the policy names.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        dataset_prefix: str = EVALUATION_DATA_PREFIX,
        output_prefix: str = EVALUATION_PREFIX,
        evaluated_models: Sequence[str],
        judge_models: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        encryption_key = bucket.encryption_key
        for prefix in (dataset_prefix, output_prefix):
            if not prefix.endswith("/") or prefix.startswith("/") or "*" in prefix:
                raise ValueError(f"{self.node.path}: prefix {prefix!r} must look like 'name/' (no wildcard)")
        self.models: tuple[str, ...] = tuple(dict.fromkeys([*evaluated_models, *judge_models]))
        self._check_models(self.models)
        stack = cdk.Stack.of(self)
        self._job_arns = stack.format_arn(service="bedrock", resource="evaluation-job", resource_name="*")
        self.role = iam.Role(
            self,
            "Role",
            description=f"Assumed by Bedrock model evaluation jobs of {stack.stack_name}",
            assumed_by=iam.ServicePrincipal(BEDROCK_SERVICE).with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": self._job_arns},
                }
            ),
        )
        prefixes = [dataset_prefix, output_prefix]
        statements = [
            iam.PolicyStatement(
                sid="ReadEvaluationDatasets",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{dataset_prefix}*")],
            ),
            iam.PolicyStatement(
                sid="WriteEvaluationResults",
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{output_prefix}*")],
            ),
            iam.PolicyStatement(
                sid="ListOwnPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
            ),
            iam.PolicyStatement(
                sid="LocateBucket", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]
            ),
            iam.PolicyStatement(
                sid="InvokeEvaluatedAndJudgeModels", actions=list(INVOKE_ACTIONS), resources=list(self.models)
            ),
        ]
        if encryption_key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="UseKeyThroughS3Only",
                    actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=[encryption_key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}},
                )
            )
        if encryption_key is not None:
            from_own_jobs = {
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": self._job_arns},
            }
            encryption_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="EvaluationJobsTemporaryData",
                    principals=[iam.ServicePrincipal(BEDROCK_SERVICE)],
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=["*"],
                    conditions={
                        **from_own_jobs,
                        "ArnLike": {
                            "aws:SourceArn": self._job_arns,
                            "kms:EncryptionContext:evaluationJobArn": self._job_arns,
                        },
                    },
                )
            )
            encryption_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="EvaluationJobsDescribeKey",
                    principals=[iam.ServicePrincipal(BEDROCK_SERVICE)],
                    actions=["kms:DescribeKey"],
                    resources=["*"],
                    conditions=from_own_jobs,
                )
            )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"Data and model access of Bedrock model evaluation jobs of {stack.stack_name}",
            statements=statements,
            roles=[self.role],
        )
        acknowledge_wildcard_resources(
            self.policy,
            {
                **prefix_objects(
                    bucket,
                    prefixes,
                    "Bedrock reads datasets or writes results whose object names it chooses under this "
                    "prefix; the grant is limited to one prefix of this stack's bucket.",
                ),
                **self._model_patterns(),
            },
        )

    def grant_run_evaluations(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start evaluation jobs with this role, and read, stop and list them.

        - `bedrock:CreateEvaluationJob` on the models of this role, as the service authorization
          reference types them: it lists only foundation-model, custom-model and the prompt routers
          for it (no provisioned-model, no inference-profile, none for the job, so the job cannot be
          the resource). A provisioned-model pattern becomes this account's and region's
          `custom-model/*` (a job that evaluates a provisioned throughput is authorized against the
          custom model it serves), an inference profile is left out (its foundation models are
          listed with it, see `inference_profile_arns`);
        - `bedrock:TagResource` on `evaluation-job/*` of this account and region: jobs are started
          with tags (the reference lists no dependent action, the project asks for it on every
          tag-on-create, as for customization jobs);
        - `bedrock:GetEvaluationJob`, `bedrock:StopEvaluationJob` on `evaluation-job/*` of this
          account and region;
        - `bedrock:ListEvaluationJobs` on `*` (a list action with no resource type);
        - `iam:PassRole` on this role only, to `bedrock.amazonaws.com` only (`iam:PassedToService`).

        Reading the results and staging BYOI datasets are the bucket's grants, not this one's. The
        wildcard-resource findings these statements raise are acknowledged on the grantee's principal.
        """
        create_on = self._create_evaluation_resources()
        grants = [
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["bedrock:CreateEvaluationJob"], resource_arns=create_on
            ),
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["bedrock:TagResource"], resource_arns=[self._job_arns]
            ),
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["bedrock:GetEvaluationJob", "bedrock:StopEvaluationJob"],
                resource_arns=[self._job_arns],
            ),
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["bedrock:ListEvaluationJobs"], resource_arns=["*"]
            ),
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["iam:PassRole"],
                resource_arns=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": BEDROCK_SERVICE}},
            ),
        ]
        principal = grantee.grant_principal
        if isinstance(principal, Construct):
            acknowledge_wildcard_resources(
                principal,
                {
                    self._job_arns: "Evaluation job ids are chosen by Bedrock when a job starts; the "
                    "grant covers the jobs of this account and region only.",
                    "*": "bedrock:ListEvaluationJobs supports no resource-level permissions (Bedrock "
                    "service authorization reference); it lists job summaries, never data.",
                    **self._model_patterns([model for model in create_on if model in self.models]),
                    **{
                        arn: "An evaluation job of a provisioned throughput is authorized against the "
                        "custom model it serves; custom model ids are chosen by Bedrock, the grant "
                        "covers this account and region only."
                        for arn in create_on
                        if arn not in self.models
                    },
                },
            )
        combined = grants[0]
        for grant in grants[1:]:
            combined = combined.combine(grant)
        return combined

    def _create_evaluation_resources(self) -> list[str]:
        """The models of this role as bedrock:CreateEvaluationJob's resource types (see
        `grant_run_evaluations`)."""
        custom_models = cdk.Stack.of(self).format_arn(
            service="bedrock", resource="custom-model", resource_name="*"
        )
        resources: list[str] = []
        for model in self.models:
            parts = model.split(":", 5)
            kind = parts[5].split("/", 1)[0] if len(parts) == 6 else ""
            if kind in CREATE_EVALUATION_RESOURCE_TYPES or not kind:
                resources.append(model)
            elif kind == "provisioned-model":
                resources.append(custom_models)
        return list(dict.fromkeys(resources))

    def _model_patterns(self, models: Sequence[str] | None = None) -> dict[str, str]:
        """{model ARN pattern with a wildcard (as cdk-nag spells it): reason}, of `models` (default:
        all of this role's)."""
        models = self.models if models is None else tuple(models)
        texts = as_finding_texts(self, models)
        return {
            model: "The evaluated and judge models are given to this construct as ARN patterns; "
            "evaluation jobs may invoke exactly the models these patterns name."
            for model, text in zip(models, texts, strict=True)
            if "*" in text
        }

    def _check_models(self, models: Sequence[str]) -> None:
        if not models:
            raise ValueError(
                f"{self.node.path}: an evaluation job invokes at least one model: give evaluated_models "
                "or judge_models (ARNs or ARN patterns of Bedrock models)"
            )
        for model in models:
            if cdk.Token.is_unresolved(model):
                continue
            parts = model.split(":", 5)
            if len(parts) < 6 or parts[0] != "arn" or parts[2] != "bedrock" or not parts[5].strip("*"):
                raise ValueError(
                    f"{self.node.path}: model {model!r} is not the ARN (or ARN pattern) of a Bedrock "
                    "model, e.g. arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"
                )


def inference_profile_arns(
    scope: Construct, profile_id: str, destination_regions: Sequence[str]
) -> list[str]:
    """The ARNs a job needs to invoke a model through a cross-Region inference profile: the profile
    of this account and region, and the foundation model in each destination Region.

    `us.anthropic.claude-3-5-haiku-20241022-v1:0` with `["us-east-1", "us-west-2"]` ->
    `[...:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0,
    arn:<partition>:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0, ...]`.
    The destination Regions are the profile's (user guide, "Supported Regions and models for
    inference profiles"); they cannot be read at synth time.
    """
    geography, _, model_id = profile_id.partition(".")
    if not geography or "." not in model_id or not destination_regions:
        raise ValueError(
            f"{profile_id!r} with regions {list(destination_regions)}: expected a cross-Region profile "
            "id such as 'us.anthropic.claude-3-5-haiku-20241022-v1:0' and at least one destination Region"
        )
    stack = cdk.Stack.of(scope)
    return [
        stack.format_arn(service="bedrock", resource="inference-profile", resource_name=profile_id),
        *(
            stack.format_arn(
                service="bedrock",
                region=region,
                account="",
                resource="foundation-model",
                resource_name=model_id,
            )
            for region in destination_regions
        ),
    ]
