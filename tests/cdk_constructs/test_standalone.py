"""Each construct built alone, as a team that forks one would: in a bare app (no cdk.json context,
so none of the project's feature flags), with only what it needs passed in, through cdk-nag's packs.

The app is synthesized once for the module: jsii is slow.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import DATA_ROOT, PROJECT_ROOT

TRAINING = DATA_ROOT / "sql-generator" / "train.jsonl"
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"


@dataclass
class Standalone:
    stacks: dict[str, Any]

    def template(self, name: str) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_stack(self.stacks[name])


def spec(**hyperparameters: str) -> Any:
    from finetune.core.digest import file_digest
    from finetune.core.names import JobSpec

    return JobSpec(
        environment="dev",
        fine_tuning="forked",
        base_model=LLAMA,
        customization_type="FINE_TUNING",
        hyperparameters=hyperparameters or {"epochCount": "2", "learningRate": "0.0001"},
        training_sha256=file_digest(TRAINING).sha256,
    )


@pytest.fixture(scope="module")
def standalone() -> Iterator[Standalone]:
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks

    from cdk_constructs import (
        BedrockCustomizationRole,
        CustomizationJobTrigger,
        FinetuneFunction,
        ModelEvaluationRole,
        NotificationTopic,
        ServingLifecycle,
        TrainingDataBucket,
        TrainingDataUpload,
        TrainingDataUploadFunction,
    )
    from finetune.core.contracts import ServingSettings
    from finetune.core.names import TRAINING_PREFIX

    app = cdk.App()  # no context: none of the project's feature flags
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app), ServerlessChecks(app), NIST80053R5Checks(app)
    )
    env = cdk.Environment(account="123456789012", region="us-west-2")
    stacks: dict[str, Any] = {}

    def stack(name: str) -> cdk.Stack:
        created = cdk.Stack(app, name, env=env)
        stacks[name] = created
        return created

    TrainingDataBucket(stack("Bucket"), "Data", removal_policy=cdk.RemovalPolicy.DESTROY)

    role_stack = stack("Role")
    BedrockCustomizationRole(
        role_stack, "CustomizationRole", bucket=TrainingDataBucket(role_stack, "Data").bucket
    )

    evaluation_stack = stack("Evaluation")
    ModelEvaluationRole(
        evaluation_stack,
        "EvaluationRole",
        bucket=TrainingDataBucket(evaluation_stack, "Data").bucket,
        evaluated_models=["arn:aws:bedrock:us-west-2:123456789012:provisioned-model/*"],
        judge_models=["arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-1-70b-instruct-v1:0"],
    )

    NotificationTopic(stack("Topic"), "Notifications", emails=["team@example.com"])

    function_stack = stack("Function")
    FinetuneFunction(
        function_stack,
        "Function",
        handler_module="serving_lifecycle",
        description="a forked function",
        alarm_topic=NotificationTopic(function_stack, "Alarms").topic,
    )

    upload_stack = stack("Upload")
    data = TrainingDataBucket(upload_stack, "Data")
    staging = TrainingDataUploadFunction(
        upload_stack, "Staging", alarm_topic=NotificationTopic(upload_stack, "Topic").topic
    )
    TrainingDataUpload(
        upload_stack,
        "Upload",
        source=TRAINING,
        training_bucket=data,
        prefix=TRAINING_PREFIX,
        fine_tuning="forked",
        function=staging,
    )

    trigger_stack = stack("Trigger")
    data = TrainingDataBucket(trigger_stack, "Data")
    topic = NotificationTopic(trigger_stack, "Topic").topic
    staging = TrainingDataUploadFunction(trigger_stack, "Staging", alarm_topic=topic)
    upload = TrainingDataUpload(
        trigger_stack,
        "Upload",
        source=TRAINING,
        training_bucket=data,
        prefix=TRAINING_PREFIX,
        fine_tuning="forked",
        function=staging,
    )
    role = BedrockCustomizationRole(trigger_stack, "CustomizationRole", bucket=data.bucket)
    trigger = CustomizationJobTrigger(
        trigger_stack,
        "Trigger",
        spec=spec(),
        training_bucket=data,
        customization_role=role.role,
        training_upload=upload,
        topic=topic,
    )
    trigger.add_candidate("one-epoch", spec(epochCount="1", learningRate="0.0001"))
    with pytest.raises(ValueError) as refused:
        trigger.add_candidate("again", spec())
    assert "it trains what another job of this fine-tuning trains" in str(refused.value)
    with pytest.raises(ValueError) as refused:
        trigger.add_candidate("one-epoch", spec(epochCount="3", learningRate="0.0001"))
    assert "the name 'one-epoch' is taken" in str(refused.value)

    serving_stack = stack("Serving")
    ServingLifecycle(
        serving_stack,
        "Serving",
        environment="dev",
        fine_tuning="forked",
        serving=ServingSettings("provisioned", 1, "none", 6),
        topic=NotificationTopic(serving_stack, "Topic").topic,
    )

    app.synth()  # raises on any unacknowledged cdk-nag finding
    yield Standalone(stacks)


@pytest.mark.synth
@pytest.mark.parametrize(
    "name", ["Bucket", "Role", "Evaluation", "Topic", "Function", "Upload", "Trigger", "Serving"]
)
def test_each_construct_synthesizes_alone_with_encryption_and_cdk_nag_clean(
    standalone: Standalone, name: str
) -> None:
    template = standalone.template(name)
    keys = template.find_resources("AWS::KMS::Key")
    # Every construct encrypts with a customer-managed key: its own when none is passed.
    assert keys
    for key in keys.values():
        assert key["Properties"]["EnableKeyRotation"] is True


@pytest.mark.synth
def test_the_bucket_logs_by_bucket_policy_whatever_the_apps_flags(standalone: Standalone) -> None:
    template = standalone.template("Bucket")
    buckets = template.find_resources("AWS::S3::Bucket")
    assert all(
        b["Properties"]["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        for b in buckets.values()
    )
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in template.find_resources("AWS::S3::BucketPolicy").values()
    ]
    assert any(
        s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
        for statements in policies
        for s in statements
    )


@pytest.mark.synth
def test_a_forked_trigger_carries_the_job_and_the_upload_needs_no_hand_computed_digest(
    standalone: Standalone,
) -> None:
    template = standalone.template("Trigger")
    job, candidate = template.find_resources("Custom::CustomizationJob").values()
    assert job["Properties"]["JobName"] == spec().job_name and "Trial" not in job["Properties"]
    assert candidate["Properties"]["Trial"] == "one-epoch"
    assert candidate["Properties"]["JobName"] == spec(epochCount="1", learningRate="0.0001").job_name
    assert job["Properties"]["Hyperparameters"] == '{"epochCount": "2", "learningRate": "0.0001"}'
    (upload,) = template.find_resources("Custom::TrainingDataUpload").values()
    assert upload["Properties"]["Sha256"] == spec().training_sha256


@pytest.mark.synth
def test_a_forked_trigger_refuses_what_bedrock_would_refuse(standalone: Standalone) -> None:
    import aws_cdk as cdk

    from cdk_constructs import (
        CustomizationJobTrigger,
        NotificationTopic,
        TrainingDataBucket,
        TrainingDataUpload,
    )
    from cdk_constructs.training_data_upload import TrainingDataUploadFunction
    from finetune.core.names import TRAINING_PREFIX

    stack = cdk.Stack(cdk.App(), "Refused", env=cdk.Environment(account="123456789012", region="us-west-2"))
    data = TrainingDataBucket(stack, "Data")
    topic = NotificationTopic(stack, "Topic").topic
    staging = TrainingDataUploadFunction(stack, "Staging", alarm_topic=topic)
    upload = TrainingDataUpload(
        stack,
        "Upload",
        source=TRAINING,
        training_bucket=data,
        prefix=TRAINING_PREFIX,
        fine_tuning="forked",
        function=staging,
    )
    with pytest.raises(ValueError) as raised:
        CustomizationJobTrigger(
            stack,
            "Trigger",
            spec=spec(epochCount="99", steps="3"),
            training_bucket=data,
            customization_role=data_role(stack, data),
            training_upload=upload,
            topic=topic,
        )
    message = str(raised.value)
    assert "hyperparameters.epochCount: 99 is out of range" in message
    assert "takes no hyperparameter 'steps'" in message


def data_role(stack: Any, data: Any) -> Any:
    from cdk_constructs import BedrockCustomizationRole

    return BedrockCustomizationRole(stack, "Role", bucket=data.bucket).role


@pytest.mark.synth
def test_serving_refuses_settings_out_of_range(standalone: Standalone) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_sns as sns

    from cdk_constructs import ServingLifecycle
    from finetune.core.contracts import ServingSettings

    stack = cdk.Stack(cdk.App(), "Refused")
    with pytest.raises(
        ValueError, match="idle_alarm_hours: expected a whole number of hours from 1 to 168, got 500"
    ):
        ServingLifecycle(
            stack,
            "S",
            environment="dev",
            fine_tuning="x",
            serving=ServingSettings("provisioned", 1, "none", 500),
            topic=sns.Topic(stack, "T"),
        )


def test_the_constructs_import_without_boto3_or_botocore() -> None:
    """What a forking team copies (cdk_constructs/ and finetune/) imports with aws_cdk alone."""
    code = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('boto3', 'botocore'):\n"
        "            raise ImportError(f'{name} is not installed in this app')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import cdk_constructs\n"
        "print('imported', len(cdk_constructs.__all__))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("imported")
