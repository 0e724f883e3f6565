"""Templates of the job trigger and the serving lifecycle: properties, event patterns, IAM scoping."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.conftest import SynthesizedApp
from tests.stacks.test_stacks import STACKS, as_list, flatten, only, resources, statements


@pytest.fixture(scope="module")
def templates(sample_app: SynthesizedApp) -> dict[tuple[str, str], Template]:
    return {key: sample_app.template(*key) for key in STACKS}


def plan_of(sample_app: SynthesizedApp, environment: str, fine_tuning: str) -> Any:
    return next(
        plan
        for plan in sample_app.plans
        if plan.config.environment.name == environment and plan.config.name == fine_tuning
    )


@pytest.mark.parametrize("key", STACKS)
def test_job_resource_carries_the_whole_job_so_cdk_diff_shows_why_a_job_starts(
    sample_app: SynthesizedApp, templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    spec = plan_of(sample_app, *key).job_spec
    properties = only(templates[key], "Custom::CustomizationJob", "CustomizationJobTriggerJob")["Properties"]
    assert properties["JobName"] == spec.job_name
    assert properties["CustomModelName"] == spec.custom_model_name
    assert properties["JobDigest"] == spec.digest
    assert properties["BaseModelIdentifier"] == spec.base_model
    assert json.loads(properties["Hyperparameters"]) == dict(spec.hyperparameters)
    assert properties["TrainingSha256"] == spec.training_sha256
    assert properties["ValidationSha256"] == spec.validation_sha256
    assert properties["TrainingDataS3Uri"] == {"Fn::GetAtt": ["TrainingDataUpload3016DCA0", "S3Uri"]}
    assert properties["ValidationDataS3Uri"] == {"Fn::GetAtt": ["ValidationDataUpload52E9C8CD", "S3Uri"]}
    assert flatten(properties["OutputS3Uri"]).endswith(f"/output/{key[1]}/")
    assert properties["StopOnDelete"] == ("true" if key[0] == "dev" else "false")
    assert len(spec.job_name) <= 63 and spec.job_name.startswith(f"{key[0]}-{key[1]}-")


def test_a_data_or_hyperparameter_change_names_a_new_job_and_nothing_else_does(
    sample_app: SynthesizedApp,
) -> None:
    dev = plan_of(sample_app, "dev", "support-assistant").job_spec
    prod = plan_of(sample_app, "prod", "support-assistant").job_spec
    assert dev.job_name != prod.job_name  # dev trains one epoch less
    assert dev.training_sha256 == prod.training_sha256
    from dataclasses import replace

    assert replace(prod, environment="prod").digest == prod.digest
    assert replace(prod, training_sha256="0" * 64).job_name != prod.job_name
    assert (
        replace(prod, hyperparameters={**prod.hyperparameters, "epochCount": "3"}).job_name != prod.job_name
    )


@pytest.mark.parametrize("key", STACKS)
def test_trigger_may_pass_only_the_customization_role_and_only_to_bedrock(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    policy = only(templates[key], "AWS::IAM::Policy", "CustomizationJobTriggerFunctionRoleDefaultPolicy")
    by_sid = {statement.get("Sid"): statement for statement in statements(policy)}
    pass_role = by_sid["PassCustomizationRoleToBedrockOnly"]
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == {"Fn::GetAtt": ["CustomizationRole04F4ECD9", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}}
    start = by_sid["StartCustomizationJobs"]
    assert start["Action"] == ["bedrock:CreateModelCustomizationJob", "bedrock:TagResource"]
    for resource in as_list(start["Resource"]) + as_list(by_sid["ReadAndStopOwnJobs"]["Resource"]):
        text = flatten(resource)
        assert text.startswith("arn:aws:bedrock:us-west-2:"), text  # this region only
    for statement in statements(policy):
        for action in as_list(statement["Action"]):
            assert not action.endswith("*"), action
        # Only actions without resource-level permissions (X-Ray, Bedrock's List*) may name "*".
        unscoped = all(
            action.startswith("xray:") or action.split(":", 1)[1].startswith("List")
            for action in as_list(statement["Action"])
        )
        if not unscoped:
            assert statement["Resource"] != "*", statement


@pytest.mark.parametrize("key", STACKS)
def test_uploads_under_incoming_reach_the_trigger_through_eventbridge_and_output_never_does(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    template = templates[key]
    bucket = only(template, "AWS::S3::Bucket", "TrainingDataBucket")["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rule = only(template, "AWS::Events::Rule", "CustomizationJobTriggerUploadRule")["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": "TrainingDataBucketFD9236C9"}]},
            "object": {"key": [{"prefix": "incoming/"}]},
        },
    }
    (target,) = rule["Targets"]
    assert flatten(target["Arn"]).startswith("<CustomizationJobTriggerFunction")
    assert flatten(target["DeadLetterConfig"]["Arn"]).startswith(
        "<CustomizationJobTriggerFunctionDeadLetters"
    )
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2}


@pytest.mark.parametrize("key", STACKS)
def test_job_state_changes_of_this_fine_tuning_only_and_an_hourly_schedule_reach_the_serving_function(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    environment, fine_tuning = key
    template = templates[key]
    rule = only(template, "AWS::Events::Rule", "ServingLifecycleJobStateRule")["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.bedrock"],
        "detail-type": ["Model Customization Job State Change"],
        "detail": {"jobName": [{"prefix": f"{environment}-{fine_tuning}-"}]},
    }
    schedule = only(template, "AWS::Events::Rule", "ServingLifecycleReconcileSchedule")["Properties"]
    # A gated fine-tuning (the sample's sql-generator) has temporary endpoints billing by the hour
    # while an evaluation runs: its reconcile runs every 15 minutes.
    gated = fine_tuning == "sql-generator"
    assert schedule["ScheduleExpression"] == ("rate(15 minutes)" if gated else "rate(1 hour)")
    for properties in (rule, schedule):
        (target,) = properties["Targets"]
        assert flatten(target["Arn"]).startswith("<ServingLifecycleFunction")
        assert "DeadLetterConfig" in target


@pytest.mark.parametrize("key", STACKS)
def test_serving_resource_carries_the_configured_serving(
    sample_app: SynthesizedApp, templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    serving = plan_of(sample_app, *key).config.serving
    properties = only(templates[key], "Custom::ServingLifecycle", "ServingLifecycle")["Properties"]
    assert properties["Mode"] == serving.mode
    assert properties["ModelUnits"] == str(serving.model_units)
    assert properties["Commitment"] == serving.commitment
    assert properties["IdleAlarmHours"] == str(serving.idle_alarm_hours)
    assert key != ("prod", "support-assistant") or properties["Mode"] == "provisioned"


@pytest.mark.parametrize("key", STACKS)
def test_serving_may_change_only_throughput_and_deployments_tagged_for_its_stack(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    stack_name = f"{key[0]}-{key[1]}"
    policy = only(templates[key], "AWS::IAM::Policy", "ServingLifecycleFunctionRoleDefaultPolicy")
    by_sid = {statement.get("Sid"): statement for statement in statements(policy)}
    change = by_sid["ChangeOnlyThisStacksServing"]
    assert change["Condition"] == {"StringEquals": {"aws:ResourceTag/finetune:stack": stack_name}}
    assert "bedrock:DeleteProvisionedModelThroughput" in change["Action"]
    create = by_sid["CreateServingOnlyTaggedForThisStack"]
    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/finetune:stack": stack_name}}
    # Finding 32: tagging is never a way to make another stack's PT or deployment this stack's.
    serving_arns = ("provisioned-model", "custom-model-deployment")
    tagging = [
        statement
        for statement in statements(policy)
        if "bedrock:TagResource" in as_list(statement["Action"])
        and any(
            kind in flatten(resource) for resource in as_list(statement["Resource"]) for kind in serving_arns
        )
    ]
    assert {statement["Sid"] for statement in tagging} == {
        "TagNewServingForThisStack",
        "RetagThisStacksServingWithItsModel",
    }
    assert by_sid["TagNewServingForThisStack"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/finetune:stack": stack_name},
        "Null": {"aws:ResourceTag/finetune:stack": "true"},
    }
    assert by_sid["RetagThisStacksServingWithItsModel"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/finetune:stack": stack_name},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["finetune:custom-model-arn"]},
    }
    for sid in ("ChangeOnlyThisStacksServing", "CreateServingOnlyTaggedForThisStack", "ReadJobsAndModels"):
        for resource in as_list(by_sid[sid]["Resource"]):
            assert flatten(resource).startswith("arn:aws:bedrock:us-west-2:"), resource
    assert by_sid["FindCompletedModels"]["Resource"] == "*"
    assert all(action.startswith("bedrock:List") for action in by_sid["FindCompletedModels"]["Action"])
    parameters = flatten(by_sid["OwnParameters"]["Resource"])
    assert parameters.endswith(f":parameter/finetune/{key[0]}/{key[1]}/*")
    alarms = flatten(by_sid["OwnIdleAlarms"]["Resource"])
    assert alarms.endswith(f":alarm:{stack_name}-pt-idle-*")
    # Finding 29: DescribeAlarms is authorized against `*`; on the prefix it would be denied.
    assert "cloudwatch:DescribeAlarms" not in by_sid["OwnIdleAlarms"]["Action"]
    assert by_sid["FindIdleAlarms"] == {
        "Action": "cloudwatch:DescribeAlarms",
        "Effect": "Allow",
        "Resource": "*",
        "Sid": "FindIdleAlarms",
    }


@pytest.mark.parametrize("key", STACKS)
def test_every_function_has_a_dead_letter_queue_alarm_to_the_topic(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    template = templates[key]
    functions = {
        name
        for name in resources(template, "AWS::Lambda::Function")
        if not name.startswith("CustomS3AutoDelete")
    }
    assert len(functions) == 3  # data staging, job trigger, serving
    topic = next(iter(resources(template, "AWS::SNS::Topic")))
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 3
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]


def test_stack_outputs_name_the_job_and_where_the_endpoint_is_published(
    templates: dict[tuple[str, str], Template],
) -> None:
    outputs = templates[("prod", "support-assistant")].to_json()["Outputs"]
    assert outputs["JobName"]["Value"].startswith("prod-support-assistant-")
    assert outputs["EndpointParameter"]["Value"] == "/finetune/prod/support-assistant/endpoint-arn"
    assert outputs["EndpointArn"]["Value"] == {"Fn::GetAtt": ["ServingLifecycle", "EndpointArn"]} or flatten(
        outputs["EndpointArn"]["Value"]
    ).startswith("<ServingLifecycle")


def function_environment(template: Template, logical_prefix: str) -> dict[str, Any]:
    function = only(template, "AWS::Lambda::Function", logical_prefix)
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


@pytest.mark.parametrize("key", STACKS)
def test_serving_settings_in_the_template_are_what_the_serving_handler_reads(
    sample_app: SynthesizedApp, templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    from finetune.core.contracts import ServingResource

    serving = plan_of(sample_app, *key).config.serving
    variables = function_environment(templates[key], "ServingLifecycleFunction")
    properties = only(templates[key], "Custom::ServingLifecycle", "ServingLifecycle")["Properties"]
    # One shape: the function's environment holds exactly the resource's properties.
    assert json.loads(flatten(variables[ServingResource.ENVIRONMENT_VARIABLE])) == {
        key: flatten(value)
        for key, value in properties.items()
        if key not in ("ServiceToken", "ServiceTimeout")
    }
    from_properties = ServingResource.from_properties(
        {key: flatten(value) for key, value in properties.items()}
    )
    assert (from_properties.environment, from_properties.fine_tuning, from_properties.region) == (
        key[0],
        key[1],
        "us-west-2",
    )
    assert from_properties.settings == serving
    environment = plan_of(sample_app, *key).config.environment
    assert from_properties.stop_jobs_on_destroy == environment.stop_jobs_on_destroy
    assert from_properties.delete_models_on_destroy == (environment.removal_policy == "destroy")
    assert from_properties.stack_id == "<AWS::StackId>"  # resolved by CloudFormation at deploy time
    assert str(from_properties.topic_arn).startswith("<NotificationsTopic")


@pytest.mark.parametrize("key", STACKS)
def test_upload_path_settings_are_the_job_template_the_trigger_handler_reads(
    sample_app: SynthesizedApp, templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    from finetune.core.contracts import JobTemplate

    plan = plan_of(sample_app, *key)
    variables = function_environment(templates[key], "CustomizationJobTriggerFunction")
    template = json.loads(flatten(variables["FINETUNE_JOB_TEMPLATE"]))
    expected = JobTemplate.for_spec(
        plan.job_spec,
        role_arn="r",
        output_s3_uri="o",
        validation_s3_uri="v",
        kms_key_arn="k",
        stop_superseded=True,
        training_budget=plan.training_budget,
    ).to_properties()
    assert set(template) == set(expected)
    for name in ("Environment", "FineTuning", "BaseModelIdentifier", "Hyperparameters", "ValidationSha256"):
        assert template[name] == expected[name]
    assert template.get("TrainingBudget") == expected.get("TrainingBudget"), "uploads are held to the budget"
    stop_superseded = plan_of(sample_app, *key).config.environment.stop_superseded_jobs
    assert template["StopSuperseded"] == ("true" if stop_superseded else "false")
    assert variables["FINETUNE_INCOMING_PREFIX"] == "incoming/"
    properties = only(templates[key], "Custom::CustomizationJob", "CustomizationJobTriggerJob")["Properties"]
    assert set(properties) - set(template) == {
        "ServiceToken",
        "ServiceTimeout",
        "TrainingDataS3Uri",
        "TrainingSha256",
        "JobName",
        "CustomModelName",
        "JobDigest",
        "StopOnDelete",
    }


CUSTOM_RESOURCE_TYPES = ("Custom::CustomizationJob", "Custom::ServingLifecycle", "Custom::TrainingDataUpload")


@pytest.mark.parametrize("key", STACKS)
def test_every_custom_resource_has_a_service_timeout_beyond_its_function_s_own(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    """Without one, an answer that never comes (import error, out of memory) holds a deploy an hour."""
    template = templates[key]
    functions = resources(template, "AWS::Lambda::Function")
    found = 0
    for resource_type in CUSTOM_RESOURCE_TYPES:
        for custom in resources(template, resource_type).values():
            found += 1
            properties = custom["Properties"]
            (function_id,) = properties["ServiceToken"]["Fn::GetAtt"][:1]
            timeout = functions[function_id]["Properties"]["Timeout"]
            service_timeout = int(properties["ServiceTimeout"])
            # Both attempts (Lambda retries once) and time to deliver the answer, within the 1 h cap.
            assert 2 * timeout < service_timeout <= 3600
    assert found >= 3


def depends_on(template: Template, resource_type: str, logical_prefix: str) -> list[str]:
    resource = only(template, resource_type, logical_prefix)
    return list(resource.get("DependsOn", []))


def logical_id(template: Template, resource_type: str, logical_prefix: str) -> str:
    (name,) = [key for key in resources(template, resource_type) if key.startswith(logical_prefix)]
    return name


@pytest.mark.parametrize("key", STACKS)
def test_on_delete_the_rules_go_before_the_teardown_and_jobs_start_after_the_bedrock_policy(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    template = templates[key]
    serving = logical_id(template, "Custom::ServingLifecycle", "ServingLifecycle")
    job = logical_id(template, "Custom::CustomizationJob", "CustomizationJobTriggerJob")
    # A resource that depends on another is deleted before it: no event reaches the serving
    # function, and no upload starts a job, once its teardown runs.
    for rule in (
        "ServingLifecycleJobStateRule",
        "ServingLifecycleReconcileSchedule",
        "CustomizationJobTriggerUploadRule",
    ):
        assert serving in depends_on(template, "AWS::Events::Rule", rule), rule
    assert job in depends_on(template, "Custom::ServingLifecycle", "ServingLifecycle")
    # Bedrock reads the data with the customization role: its policy exists before a job starts.
    policy = logical_id(template, "AWS::IAM::ManagedPolicy", "CustomizationRolePolicy")
    assert policy in depends_on(template, "Custom::CustomizationJob", "CustomizationJobTriggerJob")


@pytest.mark.parametrize("key", STACKS)
def test_serving_knows_the_environment_s_destroy_rules(
    sample_app: SynthesizedApp, templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    environment = plan_of(sample_app, *key).config.environment
    properties = only(templates[key], "Custom::ServingLifecycle", "ServingLifecycle")["Properties"]
    assert properties["StopJobsOnDestroy"] == ("true" if environment.stop_jobs_on_destroy else "false")
    # A destroy environment deletes the key the custom models are encrypted with: they go too.
    assert properties["DeleteModelsOnDestroy"] == (
        "true" if environment.removal_policy == "destroy" else "false"
    )
    assert properties["StackId"] == {"Ref": "AWS::StackId"}


@pytest.mark.parametrize("key", STACKS)
def test_the_key_lets_eventbridge_dead_letter_once_and_only_for_this_accounts_rules(
    templates: dict[tuple[str, str], Template], key: tuple[str, str]
) -> None:
    key_policy = next(iter(resources(templates[key], "AWS::KMS::Key").values()))["Properties"]["KeyPolicy"]
    events = [
        statement
        for statement in key_policy["Statement"]
        if statement.get("Principal") == {"Service": "events.amazonaws.com"}
    ]
    assert len(events) == 1  # both functions' rules dead-letter with one statement
    (statement,) = events
    assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert (
        flatten(statement["Condition"]["ArnLike"]["aws:SourceArn"])
        == "arn:aws:events:us-west-2:<AWS::AccountId>:rule/*"
    )
