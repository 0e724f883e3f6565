"""finetune.cli.local_serving: what the serving fake shares with the other fakes (`FakeService`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from finetune.cli.local_serving import REGION, FakeBedrockServing

MODEL_ARN = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abcdef123456"


@pytest.fixture
def fake(fake_aws_credentials: None) -> Iterator[FakeBedrockServing]:
    with mock_aws():
        yield FakeBedrockServing(boto3.client("bedrock", region_name=REGION), page_size=2)


def deploy(fake: FakeBedrockServing, name: str, **extra: Any) -> str:
    return str(
        fake.create_custom_model_deployment(modelDeploymentName=name, modelArn=MODEL_ARN, **extra)[
            "customModelDeploymentArn"
        ]
    )


def test_a_request_botocore_would_refuse_is_refused_and_recorded(fake: FakeBedrockServing) -> None:
    with pytest.raises(ParamValidationError, match="modelArn"):
        fake.create_custom_model_deployment(modelDeploymentName="dev-x-od")

    assert fake.calls_of("create_custom_model_deployment") == [{"modelDeploymentName": "dev-x-od"}]
    assert fake.deployments == {}


def test_a_name_outside_the_service_pattern_gets_the_services_validation_message(
    fake: FakeBedrockServing,
) -> None:
    with pytest.raises(ClientError) as caught:
        deploy(fake, "dev.x.od")

    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        "1 validation error detected: Value 'dev.x.od' at 'modelDeploymentName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ([0-9a-zA-Z][_-]?)+"
    )


def test_queued_faults_are_raised_in_order_then_calls_succeed(fake: FakeBedrockServing) -> None:
    fake.fail_next("create_custom_model_deployment", "ThrottlingException", "slow down", times=2)

    codes = []
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            deploy(fake, "dev-x-od")
        codes.append((caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]))
    arn = deploy(fake, "dev-x-od")

    assert codes == [("ThrottlingException", {"HTTPStatusCode": 429})] * 2
    assert list(fake.deployments) == [arn]


def test_lists_are_paged_by_next_token(fake: FakeBedrockServing) -> None:
    arns = [deploy(fake, f"dev-x-od{index}") for index in range(5)]

    first = fake.list_custom_model_deployments(nameContains="dev-x-od")
    second = fake.list_custom_model_deployments(nameContains="dev-x-od", nextToken=first["nextToken"])
    third = fake.list_custom_model_deployments(nameContains="dev-x-od", nextToken=second["nextToken"])

    pages = [first, second, third]
    assert [len(page["modelDeploymentSummaries"]) for page in pages] == [2, 2, 1]
    assert "nextToken" not in third
    listed = [item["customModelDeploymentArn"] for page in pages for item in page["modelDeploymentSummaries"]]
    assert listed == arns


def test_a_request_token_seen_before_returns_the_resource_it_created(fake: FakeBedrockServing) -> None:
    first = deploy(fake, "dev-x-od", clientRequestToken="token-1")
    again = deploy(fake, "dev-x-od", clientRequestToken="token-1")

    assert again == first
    assert len(fake.deployments) == 1
