"""The IAM evaluator of tests/iam_authorization.py: its semantics, one rule per test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.stacks.iam_authorization import (
    DeployedTemplate,
    Principal,
    Request,
    ResourcePolicy,
    UnsupportedPolicyError,
    arn_like,
    condition_holds,
    evaluate,
    glob,
    parse_statements,
)

ACCOUNT = "123456789012"
ROLE = Principal("role", f"arn:aws:iam::{ACCOUNT}:role/worker", ACCOUNT)
SERVICE = Principal("service", "cloudwatch.amazonaws.com", ACCOUNT)
OBJECT = "arn:aws:s3:::bucket/data/train.jsonl"


def identity(*statements: dict[str, Any]) -> list[Any]:
    return parse_statements("identity test", {"Statement": list(statements)}, resource_policy=False)


def resource(*statements: dict[str, Any], authoritative: bool = False) -> ResourcePolicy:
    parsed = parse_statements("resource test", {"Statement": list(statements)}, resource_policy=True)
    return ResourcePolicy("resource test", tuple(parsed), authoritative)


def allow(
    action: str | list[str] = "s3:GetObject", resource: str | list[str] = OBJECT, **extra: Any
) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def request(
    action: str = "s3:GetObject",
    resource: str = OBJECT,
    principal: Principal = ROLE,
    **context: str | tuple[str, ...],
) -> Request:
    keys = {
        key.replace("__", ":"): (value if isinstance(value, tuple) else (value,))
        for key, value in context.items()
    }
    return Request(principal, action, resource, keys)


# -- decisions ---------------------------------------------------------------------------------------


def test_an_identity_allow_allows_and_nothing_denies_by_default() -> None:
    assert evaluate(request(), identity(allow()), None).allowed
    denied = evaluate(request(), identity(allow("s3:PutObject")), None)
    assert not denied.allowed and denied.reason == "implicit deny: no statement allows"


def test_an_explicit_deny_wins_over_every_allow() -> None:
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Principal": "*"}
    decision = evaluate(
        request(), identity(allow()), resource(deny, {**allow(), "Principal": {"AWS": ROLE.name}})
    )
    assert not decision.allowed and decision.reason.startswith("explicit Deny")


def test_a_resource_policy_naming_the_role_allows_without_an_identity_statement() -> None:
    policy = resource({**allow(), "Principal": {"AWS": ROLE.name}})
    assert evaluate(request(), [], policy).allowed


def test_naming_the_account_root_only_delegates_to_the_identity_policies() -> None:
    policy = resource({**allow(), "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}})
    assert not evaluate(request(), [], policy).allowed
    assert evaluate(request(), identity(allow()), policy).allowed


def test_a_key_policy_must_allow_even_when_the_identity_policy_does() -> None:
    key = "arn:aws:kms:us-west-2:123456789012:key/k"
    other = resource(
        {**allow("kms:Decrypt", "*"), "Principal": {"Service": "logs.amazonaws.com"}}, authoritative=True
    )
    decision = evaluate(request("kms:Decrypt", key), identity(allow("kms:Decrypt", key)), other)
    assert not decision.allowed and "does not allow this principal" in decision.reason
    delegating = resource(
        {**allow("kms:*", "*"), "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}, authoritative=True
    )
    assert evaluate(request("kms:Decrypt", key), identity(allow("kms:Decrypt", key)), delegating).allowed
    no_identity = evaluate(request("kms:Decrypt", key), [], delegating)
    assert (
        not no_identity.allowed and "delegates to IAM, but no identity statement allows" in no_identity.reason
    )


def test_a_service_principal_needs_a_resource_policy_allow() -> None:
    topic = "arn:aws:sns:us-west-2:123456789012:topic"
    tls_only = resource(
        {
            "Effect": "Deny",
            "Action": "sns:Publish",
            "Resource": topic,
            "Principal": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    publish = request("sns:Publish", topic, SERVICE, aws__SecureTransport="true")
    assert not evaluate(publish, identity(allow("sns:Publish", "*")), tls_only).allowed
    allowing = resource({**allow("sns:Publish", topic), "Principal": {"Service": "cloudwatch.amazonaws.com"}})
    assert evaluate(publish, [], allowing).allowed


def test_the_explanation_lists_the_statements_about_the_action() -> None:
    statements = identity(
        {**allow(resource="arn:aws:s3:::bucket/other/*"), "Sid": "Other"}, allow("sqs:SendMessage", "*")
    )
    text = evaluate(request(), statements, None).explain()
    assert (
        "DENIED: arn:aws:iam::123456789012:role/worker: s3:GetObject on arn:aws:s3:::bucket/data/train.jsonl"
        in text
    )
    assert "[Other] Allow: resource does not match (arn:aws:s3:::bucket/other/*)" in text
    assert "sqs:SendMessage" not in text


# -- actions and resources -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("s3:Get*", "s3:GetObject", True),
        ("S3:getobject", "s3:GetObject", True),
        ("s3:Get?bject", "s3:GetObject", True),
        ("s3:Put*", "s3:GetObject", False),
        ("*", "kms:Decrypt", True),
    ],
)
def test_actions_match_case_insensitively_with_wildcards(pattern: str, action: str, matches: bool) -> None:
    assert evaluate(request(action, "*"), identity(allow(pattern, "*")), None).allowed is matches


def test_not_action_and_not_resource_apply_to_everything_else() -> None:
    statements = identity(
        {"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::bucket/secret/*"}
    )
    assert evaluate(request(), statements, None).allowed
    assert not evaluate(request("s3:DeleteObject"), statements, None).allowed
    assert not evaluate(request(resource="arn:aws:s3:::bucket/secret/key"), statements, None).allowed


def test_resource_wildcards_span_separators_and_question_marks_one_character() -> None:
    assert glob("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c")
    assert glob(
        "arn:aws:bedrock:us-west-2:1234567890??:custom-model/*",
        "arn:aws:bedrock:us-west-2:123456789012:custom-model/x",
    )
    assert not glob("arn:aws:s3:::bucket/data/*", "arn:aws:s3:::bucket/other")
    assert not glob("arn:aws:s3:::Bucket/*", "arn:aws:s3:::bucket/x")  # case-sensitive


def test_a_request_for_every_resource_matches_only_a_statement_on_every_resource() -> None:
    prefix = identity(
        allow("cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-west-2:123456789012:alarm:mine-*")
    )
    assert not evaluate(request("cloudwatch:DescribeAlarms", "*"), prefix, None).allowed
    assert evaluate(
        request("cloudwatch:DescribeAlarms", "*"), identity(allow("cloudwatch:DescribeAlarms", "*")), None
    ).allowed


# -- conditions ----------------------------------------------------------------------------------------


def holds(operator: str, key: str, expected: str | tuple[str, ...], **context: tuple[str, ...]) -> bool:
    values = expected if isinstance(expected, tuple) else (expected,)
    return condition_holds(
        operator, key, values, {name.replace("__", ":"): value for name, value in context.items()}
    )


def test_string_operators() -> None:
    assert holds("StringEquals", "s3:prefix", "training/", s3__prefix=("training/",))
    assert not holds("StringEquals", "s3:prefix", "training/", s3__prefix=("Training/",))
    assert holds("StringEqualsIgnoreCase", "s3:prefix", "training/", s3__prefix=("Training/",))
    assert holds("StringLike", "s3:prefix", ("validation/*", "training/*"), s3__prefix=("training/x",))
    assert holds("StringNotEquals", "s3:prefix", "incoming/", s3__prefix=("training/",))
    assert not holds("StringNotLike", "s3:prefix", "train*", s3__prefix=("training/",))


def test_condition_key_names_are_case_insensitive() -> None:
    assert holds("StringEquals", "AWS:SourceAccount", ACCOUNT, aws__sourceaccount=(ACCOUNT,))


def test_a_missing_key_fails_positive_operators_and_passes_negated_and_if_exists_ones() -> None:
    assert not holds("StringEquals", "s3:prefix", "training/")
    assert not holds("ArnLike", "aws:SourceArn", "arn:*")
    assert holds("StringNotEquals", "s3:prefix", "training/")
    assert holds("StringEqualsIfExists", "s3:prefix", "training/")
    assert not holds("StringEqualsIfExists", "s3:prefix", "training/", s3__prefix=("incoming/",))


def test_arn_operators_match_each_part_on_its_own() -> None:
    pattern = "arn:aws:cloudwatch:us-west-2:123456789012:alarm:*"
    assert arn_like(pattern, "arn:aws:cloudwatch:us-west-2:123456789012:alarm:dev-x")
    assert not arn_like(pattern, "arn:aws:cloudwatch:us-west-2:210987654321:alarm:dev-x")
    assert not arn_like("arn:aws:*", "arn:aws:sns:us-west-2:123456789012:topic")  # `*` stays within one part
    assert not arn_like(pattern, "not-an-arn")
    assert holds(
        "ArnEquals",
        "aws:SourceArn",
        "arn:aws:events:us-west-2:123456789012:rule/r",
        aws__SourceArn=("arn:aws:events:us-west-2:123456789012:rule/r",),
    )
    assert holds(
        "ArnNotLike",
        "aws:SourceArn",
        pattern,
        aws__SourceArn=("arn:aws:events:us-west-2:123456789012:rule/r",),
    )


def test_bool_and_null() -> None:
    assert holds("Bool", "aws:SecureTransport", "false", aws__SecureTransport=("false",))
    assert not holds("Bool", "aws:SecureTransport", "false", aws__SecureTransport=("true",))
    assert holds("Null", "aws:ResourceTag/finetune:stack", "true")
    assert not holds(
        "Null", "aws:ResourceTag/finetune:stack", "true", **{"aws:ResourceTag/finetune:stack": ("x",)}
    )
    assert holds(
        "Null", "aws:ResourceTag/finetune:stack", "false", **{"aws:ResourceTag/finetune:stack": ("x",)}
    )


def test_multi_valued_keys_need_a_set_operator() -> None:
    keys = ("finetune:stack", "finetune:custom-model-arn")
    assert holds("ForAnyValue:StringEquals", "aws:TagKeys", "finetune:stack", aws__TagKeys=keys)
    assert not holds("ForAllValues:StringEquals", "aws:TagKeys", "finetune:stack", aws__TagKeys=keys)
    assert holds("ForAllValues:StringEquals", "aws:TagKeys", keys, aws__TagKeys=keys)
    assert holds("ForAllValues:StringEquals", "aws:TagKeys", "x")  # no values: vacuously true
    assert not holds("ForAnyValue:StringEquals", "aws:TagKeys", "x")
    with pytest.raises(UnsupportedPolicyError, match="several values"):
        holds("StringEquals", "aws:TagKeys", "finetune:stack", aws__TagKeys=keys)


def test_conditions_of_a_statement_must_all_hold() -> None:
    statement = allow(
        Condition={
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:*:alarm:*"},
        }
    )
    alarm = "arn:aws:cloudwatch:us-west-2:123456789012:alarm:a"
    assert evaluate(
        request(aws__SourceAccount=ACCOUNT, aws__SourceArn=alarm), identity(statement), None
    ).allowed
    assert not evaluate(
        request(aws__SourceAccount="210987654321", aws__SourceArn=alarm), identity(statement), None
    ).allowed
    assert not evaluate(request(aws__SourceAccount=ACCOUNT), identity(statement), None).allowed


@pytest.mark.parametrize(
    "statement",
    [
        allow(Condition={"NumericLessThan": {"s3:max-keys": "10"}}),
        allow(resource="arn:aws:s3:::bucket/${aws:username}/*"),
        {**allow(), "NotPrincipal": {"AWS": "x"}},
        allow(Condition={"ForSomeValues:StringEquals": {"aws:TagKeys": "x"}}),
    ],
)
def test_what_is_not_modelled_is_refused(statement: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedPolicyError):
        identity(statement)


# -- templates -----------------------------------------------------------------------------------------

TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Key1": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeyPolicy": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {
                                "AWS": {
                                    "Fn::Join": [
                                        "",
                                        [
                                            "arn:",
                                            {"Ref": "AWS::Partition"},
                                            ":iam::",
                                            {"Ref": "AWS::AccountId"},
                                            ":root",
                                        ],
                                    ]
                                }
                            },
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ]
                }
            },
        },
        "Bucket1": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "BucketPolicy1": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket1"},
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Deny",
                            "Principal": {"AWS": "*"},
                            "Action": "s3:*",
                            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket1", "Arn"]}, "/*"]]},
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ]
                },
            },
        },
        "Topic1": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "TopicPolicy1": {
            "Type": "AWS::SNS::TopicPolicy",
            "Properties": {
                "Topics": [{"Ref": "Topic1"}],
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            "Action": "sns:Publish",
                            "Resource": {"Ref": "Topic1"},
                        }
                    ]
                },
            },
        },
        "Queue1": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "QueuePolicy1": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "Queue1"}],
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": {"Fn::GetAtt": ["Queue1", "Arn"]},
                        }
                    ]
                },
            },
        },
        "Role1": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                },
                "Policies": [
                    {
                        "PolicyName": "inline",
                        "PolicyDocument": {
                            "Statement": [
                                {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "Topic1"}}
                            ]
                        },
                    }
                ],
            },
        },
        "Policy1": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "Roles": [{"Ref": "Role1"}],
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "s3:GetObject",
                            "Resource": {"Fn::Sub": "${Bucket1.Arn}/data/*"},
                        }
                    ]
                },
            },
        },
        "Managed1": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "Roles": [{"Ref": "Role1"}],
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "kms:Decrypt",
                            "Resource": {"Fn::GetAtt": ["Key1", "Arn"]},
                        }
                    ]
                },
            },
        },
        "Other1": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "Roles": [{"Ref": "Role2"}],
                "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
            },
        },
        "Role2": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": []}}},
    }
}


@pytest.fixture
def deployed() -> DeployedTemplate:
    return DeployedTemplate(
        TEMPLATE, stack_name="stack", account=ACCOUNT, region="us-west-2", names={"Bucket1": "data-bucket"}
    )


def test_intrinsics_resolve_to_concrete_strings(deployed: DeployedTemplate) -> None:
    assert (
        deployed.resolve(
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": "Bucket1"}]]}
        )
        == "arn:aws:s3:::data-bucket"
    )
    assert (
        deployed.resolve({"Fn::Sub": "${Bucket1.Arn}/x-${AWS::Region}-${AWS::AccountId}"})
        == "arn:aws:s3:::data-bucket/x-us-west-2-123456789012"
    )
    assert (
        deployed.resolve({"Fn::Sub": ["${Name}-${!Literal}", {"Name": {"Ref": "AWS::StackName"}}]})
        == "stack-${Literal}"
    )
    assert deployed.resolve({"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]}) == "b"
    topic = deployed.resolve({"Ref": "Topic1"})
    assert topic.startswith("arn:aws:sns:us-west-2:123456789012:stack-Topic1-")
    assert deployed.resolve({"Fn::GetAtt": ["Queue1", "Arn"]}).startswith(
        "arn:aws:sqs:us-west-2:123456789012:stack-Queue1-"
    )
    with pytest.raises(UnsupportedPolicyError, match="Fn::If"):
        deployed.resolve({"Fn::If": ["c", "a", "b"]})


def test_a_role_has_its_inline_attached_and_managed_statements_only(deployed: DeployedTemplate) -> None:
    statements = deployed.identity_statements("Role1")
    assert [statement.actions for statement in statements] == [
        ("sns:Publish",),
        ("s3:GetObject",),
        ("kms:Decrypt",),
    ]
    assert statements[1].resources == ("arn:aws:s3:::data-bucket/data/*",)


def test_each_request_meets_the_policy_of_its_resource(deployed: DeployedTemplate) -> None:
    role = Principal("role", deployed.arn("Role1"), ACCOUNT)
    tls = {"aws:SecureTransport": ("true",)}
    key = deployed.arn("Key1")
    assert deployed.decide(Request(role, "s3:GetObject", "arn:aws:s3:::data-bucket/data/x", tls)).allowed
    insecure = deployed.decide(
        Request(role, "s3:GetObject", "arn:aws:s3:::data-bucket/data/x", {"aws:SecureTransport": ("false",)})
    )
    assert not insecure.allowed and "bucket policy BucketPolicy1" in insecure.reason
    assert deployed.decide(Request(role, "kms:Decrypt", key)).allowed  # key policy delegates, identity allows
    events = Principal("service", "events.amazonaws.com", ACCOUNT)
    assert deployed.decide(Request(events, "sqs:SendMessage", deployed.arn("Queue1"))).allowed
    cloudwatch = Principal("service", "cloudwatch.amazonaws.com", ACCOUNT)
    assert deployed.decide(Request(cloudwatch, "sns:Publish", deployed.ref("Topic1"))).allowed
    assert not deployed.decide(Request(cloudwatch, "kms:Decrypt", key)).allowed
    lambda_service = Principal("service", "lambda.amazonaws.com", ACCOUNT)
    assert deployed.decide(Request(lambda_service, "sts:AssumeRole", deployed.arn("Role1"))).allowed
    assert not deployed.decide(Request(lambda_service, "sts:AssumeRole", deployed.arn("Role2"))).allowed


def test_a_key_outside_the_template_is_an_error_not_a_pass(deployed: DeployedTemplate) -> None:
    role = Principal("role", deployed.arn("Role1"), ACCOUNT)
    with pytest.raises(KeyError, match="not a key of this template"):
        deployed.decide(Request(role, "kms:Decrypt", "arn:aws:kms:us-west-2:123456789012:key/other"))
