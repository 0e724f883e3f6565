"""The synthesized templates: security properties, removal policy per environment, data staging, outputs.

The sample app (cdk.json) is synthesized once per session by the `sample_app` fixture, with cdk-nag on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.conftest import DATA_ROOT, SynthesizedApp

STACKS = [
    ("dev", "support-assistant"),
    ("dev", "sql-generator"),
    ("prod", "support-assistant"),
    ("prod", "sql-generator"),
]


def resources(template: Template, resource_type: str) -> dict[str, Any]:
    return dict(template.find_resources(resource_type))


def only(template: Template, resource_type: str, logical_prefix: str) -> dict[str, Any]:
    matches = {
        key: value
        for key, value in resources(template, resource_type).items()
        if key.startswith(logical_prefix)
    }
    assert len(matches) == 1, f"expected one {resource_type} named {logical_prefix}*, got {list(matches)}"
    resource: dict[str, Any] = next(iter(matches.values()))
    return resource


def flatten(value: Any) -> str:
    """A CloudFormation value as text (Fn::Join parts, Refs and GetAtts spelled out), for substring checks."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Join" in value:
            return "".join(flatten(part) for part in value["Fn::Join"][1])
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return f"<{'.'.join(value['Fn::GetAtt'])}>"
        if "Fn::Sub" in value:
            return str(value["Fn::Sub"])
    return json.dumps(value)


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    document = policy["Properties"]["PolicyDocument"]
    return list(document["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def templates(sample_app: SynthesizedApp) -> dict[tuple[str, str], Template]:
    return {key: sample_app.template(*key) for key in STACKS}


@pytest.mark.parametrize("key", STACKS)
def test_training_bucket_is_private_encrypted_versioned_logged_and_expires_old_versions(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    bucket = only(templates[key], "AWS::S3::Bucket", "TrainingDataBucket")["Properties"]
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
        "Fn::GetAtt": [next(iter(resources(templates[key], "AWS::KMS::Key"))), "Arn"]
    }
    assert encryption["BucketKeyEnabled"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert flatten(bucket["LoggingConfiguration"]["DestinationBucketName"]).startswith(
        "<TrainingDataAccessLogs"
    )
    rule = bucket["LifecycleConfiguration"]["Rules"][0]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


@pytest.mark.parametrize("key", STACKS)
def test_both_buckets_refuse_requests_without_tls(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    policies = resources(templates[key], "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        denials = [
            statement
            for statement in statements(policy)
            if statement["Effect"] == "Deny"
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denials and denials[0]["Action"] == "s3:*"


@pytest.mark.parametrize("key", STACKS)
def test_customer_managed_key_rotates(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    templates[key].resource_count_is("AWS::KMS::Key", 1)
    templates[key].has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


@pytest.mark.parametrize("fine_tuning", ["support-assistant", "sql-generator"])
def test_removal_policy_comes_from_the_environment(
    templates: dict[tuple[str, str], Template], fine_tuning: str
) -> None:
    dev, prod = templates[("dev", fine_tuning)], templates[("prod", fine_tuning)]
    for logical_prefix in ("TrainingDataBucket", "TrainingDataAccessLogs"):
        assert _deletion_policy(dev, "AWS::S3::Bucket", logical_prefix) == "Delete"
        assert _deletion_policy(prod, "AWS::S3::Bucket", logical_prefix) == "Retain"
    # destroy: the buckets are emptied first; retain: nothing may empty them.
    dev.resource_count_is("Custom::S3AutoDeleteObjects", 2)
    prod.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    dev.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Delete", "Properties": {"PendingWindowInDays": 7}})
    prod.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain"})
    assert _deletion_policy(prod, "AWS::Logs::LogGroup", "DataStagingLogs") == "Retain"


def _deletion_policy(template: Template, resource_type: str, logical_prefix: str) -> str:
    return str(only(template, resource_type, logical_prefix).get("DeletionPolicy"))


@pytest.mark.parametrize("key", STACKS)
def test_bedrock_role_trusts_only_this_accounts_customization_jobs(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    role = only(templates[key], "AWS::IAM::Role", "CustomizationRole")["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source_arn = flatten(trust["Condition"]["ArnLike"]["aws:SourceArn"])
    assert source_arn == "arn:aws:bedrock:us-west-2:<AWS::AccountId>:model-customization-job/*"
    assert "ManagedPolicyArns" not in role  # its one policy is the stack's own


@pytest.mark.parametrize("key", STACKS)
def test_bedrock_role_reads_input_prefixes_writes_output_prefix_and_uses_the_key_through_services_only(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    policy = only(templates[key], "AWS::IAM::ManagedPolicy", "CustomizationRolePolicy")
    by_sid = {statement["Sid"]: statement for statement in statements(policy)}
    assert set(by_sid) == {
        "ReadJobInput",
        "WriteJobOutput",
        "ListOwnPrefixes",
        "UseKeyThroughS3AndBedrockOnly",
    }
    read = by_sid["ReadJobInput"]
    assert read["Action"] == "s3:GetObject"
    assert sorted(flatten(r).split("/", 1)[1] for r in as_list(read["Resource"])) == [
        "media/*",  # the images and videos records name (finetune.core.dataset.MediaLocation)
        "training/*",
        "validation/*",
    ]
    write = by_sid["WriteJobOutput"]
    assert write["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert [flatten(r).split("/", 1)[1] for r in as_list(write["Resource"])] == ["output/*"]
    listing = by_sid["ListOwnPrefixes"]
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["training/*", "validation/*", "media/*", "output/*"]}
    }
    kms = by_sid["UseKeyThroughS3AndBedrockOnly"]
    assert kms["Condition"] == {
        "StringEquals": {"kms:ViaService": ["s3.us-west-2.amazonaws.com", "bedrock.us-west-2.amazonaws.com"]}
    }
    # Nothing else anywhere: no action wildcard, no write outside output/.
    for statement in statements(policy):
        assert not any(action.endswith("*") for action in as_list(statement["Action"]))


@pytest.mark.parametrize("key", STACKS)
def test_training_and_validation_data_are_staged_under_content_addressed_keys(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    environment, fine_tuning = key
    uploads = resources(templates[key], "Custom::TrainingDataUpload")
    staged = [
        ("TrainingDataUpload", "training", "train.jsonl"),
        ("ValidationDataUpload", "validation", "validation.jsonl"),
    ]
    if fine_tuning == "sql-generator":  # the sample's gated fine-tuning stages its prompt dataset too
        staged.append(("EvaluationDataUpload", "evaluation-data", "evaluation.jsonl"))
    assert set(uploads) == {name for name in uploads if name.startswith(tuple(p for p, _, _ in staged))}
    assert len(uploads) == len(staged)
    for logical_prefix, prefix, file_name in staged:
        properties = only(templates[key], "Custom::TrainingDataUpload", logical_prefix)["Properties"]
        sha256 = hashlib.sha256((DATA_ROOT / fine_tuning / file_name).read_bytes()).hexdigest()
        assert properties["Sha256"] == sha256
        assert properties["Key"] == f"{prefix}/{fine_tuning}/{sha256}/{file_name}"
        assert properties["SizeBytes"] == str((DATA_ROOT / fine_tuning / file_name).stat().st_size)
        assert flatten(properties["Bucket"]).startswith("<TrainingDataBucket")
    outputs = templates[key].find_outputs("TrainingDataSha256")
    assert (
        outputs["TrainingDataSha256"]["Value"]
        == hashlib.sha256((DATA_ROOT / fine_tuning / "train.jsonl").read_bytes()).hexdigest()
    )
    assert environment in ("dev", "prod")


@pytest.mark.parametrize("key", STACKS)
def test_staging_function_is_current_arm64_traced_with_encrypted_logs_and_dead_letters(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    template = templates[key]
    function = only(template, "AWS::Lambda::Function", "DataStagingFunction")["Properties"]
    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "finetune.runtime.training_data_upload.handler"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert flatten(function["DeadLetterConfig"]["TargetArn"]).startswith("<DataStagingDeadLetters")
    assert function["Timeout"] == 900
    logs = only(template, "AWS::Logs::LogGroup", "DataStagingLogs")["Properties"]
    assert "KmsKeyId" in logs and logs["RetentionInDays"] == 365
    queue = only(template, "AWS::SQS::Queue", "DataStagingDeadLetters")["Properties"]
    assert "KmsMasterKeyId" in queue
    role = only(template, "AWS::IAM::Role", "DataStagingRole")["Properties"]
    assert "ManagedPolicyArns" not in role  # no AWS-managed policy
    alarm = only(template, "AWS::CloudWatch::Alarm", "DataStagingDeadLettersAlarm")["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": next(iter(resources(template, "AWS::SNS::Topic")))}]


@pytest.mark.parametrize("key", STACKS)
def test_staging_function_may_touch_exact_objects_only(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    policy = only(templates[key], "AWS::IAM::Policy", "DataStagingRoleDefaultPolicy")
    for statement in statements(policy):
        actions = as_list(statement["Action"])
        if any(action.startswith("xray:") for action in actions):
            continue  # X-Ray has no resource-level permissions
        for resource in as_list(statement["Resource"]):
            assert "*" not in flatten(resource), (actions, resource)
        assert not any(action.endswith("*") for action in actions), actions


@pytest.mark.parametrize("key", STACKS)
def test_notifications_topic_is_encrypted_and_subscribes_the_environments_addresses(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    template = templates[key]
    topic = only(template, "AWS::SNS::Topic", "NotificationsTopic")["Properties"]
    assert "KmsMasterKeyId" in topic
    expected = "ml-platform-dev@example.com" if key[0] == "dev" else "ml-platform@example.com"
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": expected})
    template.resource_count_is("AWS::SNS::Subscription", 1)


def test_resolved_configuration_and_overrides_are_visible_in_the_template(
    templates: dict[tuple[str, str], Template],
) -> None:
    dev = templates[("dev", "support-assistant")].to_json()
    prod = templates[("prod", "support-assistant")].to_json()
    assert dev["Metadata"]["FineTuning"]["hyperparameters"]["epochCount"] == "1"  # dev override
    assert prod["Metadata"]["FineTuning"]["hyperparameters"]["epochCount"] == "2"
    assert prod["Metadata"]["FineTuning"]["serving"] == {
        "mode": "provisioned",
        "modelUnits": 1,
        "commitment": "none",
        "idleAlarmHours": 12,
    }
    assert dev["Metadata"]["FineTuning"]["serving"]["mode"] == "none"
    assert "anthropic.claude-3-haiku-20240307-v1:0:200k" in dev["Description"]
    assert set(dev["Outputs"]) >= {
        "TrainingDataBucketName",
        "CustomizationRoleArn",
        "TrainingDataS3Uri",
        "TrainingDataSha256",
        "ValidationDataS3Uri",
        "ValidationDataSha256",
        "Hyperparameters",
        "CostEstimate",
    }
    assert json.loads(dev["Outputs"]["Hyperparameters"]["Value"])["epochCount"] == "1"


def test_the_budget_sits_next_to_the_estimate_and_reaches_the_job_trigger(
    templates: dict[tuple[str, str], Template],
) -> None:
    prod = templates[("prod", "support-assistant")].to_json()
    budget = prod["Metadata"]["FineTuning"]["budget"]
    assert budget["limits"] == {
        "training_usd": "$25.00",
        "serving_usd_per_month": "$100,000.00",
        "total_usd_per_month": "$100,000.00",
        "evaluation_usd": "$250.00",
    }
    assert budget["estimates"]["servingPer30Days"] == "$95,040.00"  # 1 unit x $132 x 720 h
    assert any(
        line.strip().startswith("price per 1k tokens  $0.012")
        for line in prod["Metadata"]["FineTuning"]["cost"]
    )
    [job] = resources(templates[("prod", "support-assistant")], "Custom::CustomizationJob").values()
    trigger_budget = json.loads(job["Properties"]["TrainingBudget"])
    assert (
        trigger_budget["limitUsd"] == 25.0
        and trigger_budget["field"] == "environments.prod.budget.training_usd"
    )
    assert trigger_budget["perToken"] == pytest.approx(0.012 * 2 / 1000)  # 2 epochs in prod


@pytest.mark.parametrize("key", STACKS)
def test_every_taggable_resource_carries_the_fine_tuning_tags(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    environment, fine_tuning = key
    expected = [
        {"Key": "finetune:environment", "Value": environment},
        {"Key": "finetune:fine-tuning", "Value": fine_tuning},
        {"Key": "finetune:stack", "Value": f"{environment}-{fine_tuning}"},
    ]
    for resource_type in (
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::SNS::Topic",
    ):
        for name, resource in resources(templates[key], resource_type).items():
            if name.startswith("CustomS3AutoDeleteObjectsCustomResourceProvider"):
                continue  # CDK's own bucket-emptying provider is a raw CfnResource, which takes no tags
            tags = resource["Properties"].get("Tags", [])
            for tag in expected:
                assert tag in tags, (name, tags)


def test_logical_ids_of_stateful_resources_are_stable(templates: dict[tuple[str, str], Template]) -> None:
    """Renaming these replaces real data or keys: a refactoring must not change them."""
    for (_, fine_tuning), template in templates.items():
        assert set(resources(template, "AWS::S3::Bucket")) == {
            "TrainingDataBucketFD9236C9",
            "TrainingDataAccessLogs3046099E",
        }
        assert set(resources(template, "AWS::KMS::Key")) == {"EncryptionKey1B843E66"}
        assert set(resources(template, "AWS::IAM::Role")) >= {"CustomizationRole04F4ECD9"}
        gated = {"EvaluationDataUpload98CFF20E"} if fine_tuning == "sql-generator" else set()
        assert set(resources(template, "Custom::TrainingDataUpload")) == {
            "TrainingDataUpload3016DCA0",
            "ValidationDataUpload52E9C8CD",
            *gated,
        }
        assert set(resources(template, "AWS::Logs::LogGroup")) == {
            "DataStagingLogs12CF3B1B",
            "CustomizationJobTriggerFunctionLogs1458A048",
            "ServingLifecycleFunctionLogs82CA29CD",
        }


def test_stacks_are_named_per_environment_and_deploy_to_the_fine_tunings_region(
    sample_app: SynthesizedApp,
) -> None:
    for environment, fine_tuning in STACKS:
        stack = sample_app.stack(environment, fine_tuning)
        assert stack.stack_name == f"{environment}-{fine_tuning}"
        assert stack.region == "us-west-2"
        assert stack.node.path == f"{environment}/{fine_tuning}"


def test_lambda_asset_holds_the_finetune_package_only(sample_app: SynthesizedApp) -> None:
    template = sample_app.template("dev", "support-assistant").to_json()
    code_key = only(Template.from_json(template), "AWS::Lambda::Function", "DataStagingFunction")[
        "Properties"
    ]["Code"]["S3Key"]
    asset_dir = sample_app.assembly_dir / f"asset.{code_key.removesuffix('.zip')}"
    files = sorted(path.relative_to(asset_dir).as_posix() for path in asset_dir.rglob("*") if path.is_file())
    assert files, f"no files in {asset_dir}"
    assert all(name.startswith("finetune/") and name.endswith(".py") for name in files), files
    assert {
        "finetune/runtime/training_data_upload.py",
        "finetune/runtime/customization_job_trigger.py",
        "finetune/runtime/serving_lifecycle.py",
    } <= set(files)
    # Command-line tools stay out of the function package.
    assert not [name for name in files if name.startswith("finetune/cli/")]


def normalised(template: Mapping[str, Any]) -> dict[str, Any]:
    """Asset hashes change with any code edit: replace 64-hex digests so the snapshot guards structure."""
    import re

    text = re.sub(r"[0-9a-f]{64}", "<sha256>", json.dumps(template, sort_keys=True))
    normalised_template: dict[str, Any] = json.loads(text)
    return normalised_template


@pytest.mark.parametrize("key", STACKS, ids=["-".join(key) for key in STACKS])
def test_template_snapshot(
    templates: dict[tuple[str, str], Template], key: tuple[str, str], snapshot: Any
) -> None:
    from syrupy.extensions.json import JSONSnapshotExtension

    assert normalised(templates[key].to_json()) == snapshot.use_extension(JSONSnapshotExtension)


def test_assembly_holds_every_stack(sample_app: SynthesizedApp) -> None:
    names = [Path(path).name for path in sample_app.template_files()]
    assert len(names) == 4
    assert {name.split("-")[0] for name in names} != set()
