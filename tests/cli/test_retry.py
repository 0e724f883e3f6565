"""`python -m finetune retry ENV FINE_TUNING [--job NAME]`: the CLI side, with botocore's Stubber.

The trigger function's side (what a retry does) is tested with moto in
tests/runtime/test_customization_job_trigger.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from finetune.cli.commands import retry
from finetune.cli.main import main
from tests.conftest import SAMPLE_PROJECT

REGION = "us-west-2"
STACK = "dev-support-assistant"
FUNCTION = "dev-support-assistant-CustomizationJobTriggerFunct-AbCdEf123456"
DEPLOYED = "dev-support-assistant-0123456789ab"
RETRIED = "dev-support-assistant-012345678r2"
PARAMETER = "/finetune/dev/support-assistant/deployed-job"


@dataclass
class Stubbed:
    clients: retry.RetryClients
    cloudformation: Stubber
    lambda_: Stubber
    ssm: Stubber
    regions: list[str]

    def verify(self) -> None:
        for stubber in (self.cloudformation, self.lambda_, self.ssm):
            stubber.assert_no_pending_responses()


@pytest.fixture
def stubbed(fake_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubbed]:
    clients = retry.RetryClients(
        cloudformation=boto3.client("cloudformation", region_name=REGION),
        lambda_=boto3.client("lambda", region_name=REGION),
        ssm=boto3.client("ssm", region_name=REGION),
    )
    stubs = Stubbed(
        clients,
        Stubber(clients.cloudformation),
        Stubber(clients.lambda_),
        Stubber(clients.ssm),
        regions=[],
    )

    def clients_for(region: str, endpoint_url: str | None) -> retry.RetryClients:
        stubs.regions.append(region)
        return clients

    monkeypatch.setattr(retry, "clients_for", clients_for)
    with stubs.cloudformation, stubs.lambda_, stubs.ssm:
        yield stubs


def resource(logical_id: str, resource_type: str, physical_id: str) -> dict[str, Any]:
    return {
        "StackName": STACK,
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": physical_id,
        "ResourceType": resource_type,
        "Timestamp": "2026-08-01T00:00:00Z",
        "ResourceStatus": "CREATE_COMPLETE",
    }


STACK_RESOURCES = [
    resource("CustomizationJobTriggerFunctionRole7A96C55F", "AWS::IAM::Role", "trigger-role"),
    resource("CustomizationJobTriggerFunctionLogs1458A048", "AWS::Logs::LogGroup", "/aws/lambda/x"),
    resource("ServingLifecycleFunction0A1B2C3D", "AWS::Lambda::Function", "serving-function"),
    resource("CustomizationJobTriggerFunctionC09B1705", "AWS::Lambda::Function", FUNCTION),
]


def expect_stack(stubs: Stubbed, resources: list[dict[str, Any]] = STACK_RESOURCES) -> None:
    stubs.cloudformation.add_response(
        "describe_stack_resources", {"StackResources": resources}, {"StackName": STACK}
    )


def expect_deployed_job(stubs: Stubbed, name: str = DEPLOYED) -> None:
    value = json.dumps({"jobName": name, "digest": "d" * 64, "source": "deploy"})
    stubs.ssm.add_response(
        "get_parameter",
        {"Parameter": {"Name": PARAMETER, "Value": value, "Type": "String"}},
        {"Name": PARAMETER},
    )


def expect_invoke(stubs: Stubbed, job: str, answer: Any, *, function_error: str | None = None) -> None:
    body = json.dumps(answer).encode()
    response: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error:
        response["FunctionError"] = function_error
    stubs.lambda_.add_response(
        "invoke",
        response,
        {
            "FunctionName": FUNCTION,
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"finetune": "retry", "job": job}).encode(),
        },
    )


def run_retry(*argv: str) -> int:
    return main(["retry", "dev", "support-assistant", "--project", str(SAMPLE_PROJECT), *argv])


def test_the_deployed_job_is_retried_by_the_stacks_trigger_function(
    stubbed: Stubbed, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_deployed_job(stubbed)
    expect_stack(stubbed)
    expect_invoke(
        stubbed,
        DEPLOYED,
        {"outcome": "started", "job": DEPLOYED, "newJob": RETRIED, "status": "InProgress", "jobArn": "arn"},
    )

    assert run_retry() == 0

    stubbed.verify()
    assert stubbed.regions == [REGION]  # the fine-tuning's region from cdk.json
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"Asking {FUNCTION} ({STACK}, {REGION}) to retry {DEPLOYED} ...",
        f"Started {RETRIED} (InProgress), the next generation of {DEPLOYED}; it is the deployed job now, "
        "and its model is served once it completes.",
        "Follow it with: python -m finetune status dev support-assistant --watch",
    ]


def test_a_named_job_needs_no_ssm_and_a_running_generation_is_reported(
    stubbed: Stubbed, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_stack(stubbed)
    expect_invoke(
        stubbed,
        RETRIED,
        {"outcome": "exists", "job": RETRIED, "newJob": RETRIED[:-1] + "3", "status": "InProgress"},
    )

    assert run_retry("--job", RETRIED, "--region", "eu-west-1") == 0

    stubbed.verify()
    assert stubbed.regions == ["eu-west-1"]
    assert "already retrains" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "printed"),
    [
        (
            {"outcome": "refused", "job": DEPLOYED, "reason": f"{DEPLOYED} is not retried: it Completed"},
            f"error: not retried: {DEPLOYED} is not retried: it Completed",
        ),
        (
            {"outcome": "rejected", "job": DEPLOYED, "reason": "the data was rejected (1 problem)"},
            "error: rejected: the data was rejected (1 problem)",
        ),
    ],
)
def test_a_refusal_or_rejection_exits_1_with_the_functions_reason(
    stubbed: Stubbed, capsys: pytest.CaptureFixture[str], answer: dict[str, str], printed: str
) -> None:
    expect_deployed_job(stubbed)
    expect_stack(stubbed)
    expect_invoke(stubbed, DEPLOYED, answer)

    assert run_retry() == 1

    assert capsys.readouterr().err.strip() == printed


def test_a_failing_function_exits_1_with_its_error(
    stubbed: Stubbed, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_deployed_job(stubbed)
    expect_stack(stubbed)
    expect_invoke(
        stubbed,
        DEPLOYED,
        {"errorType": "ContractError", "errorMessage": "invalid trigger function environment"},
        function_error="Unhandled",
    )

    assert run_retry() == 1

    assert "the trigger function failed: ContractError: invalid trigger function environment" in (
        capsys.readouterr().err
    )


def test_a_stack_that_is_not_deployed_is_a_usage_error(
    stubbed: Stubbed, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_deployed_job(stubbed)
    stubbed.cloudformation.add_client_error(
        "describe_stack_resources",
        service_error_code="ValidationError",
        service_message=f"Stack with id {STACK} does not exist",
        expected_params={"StackName": STACK},
    )

    assert run_retry() == 2

    err = capsys.readouterr().err
    assert f"no stack {STACK} in {REGION}: deploy it first (make deploy), or pass --region" in err


def test_a_stack_without_the_trigger_function_is_a_usage_error(
    stubbed: Stubbed, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_deployed_job(stubbed)
    expect_stack(stubbed, STACK_RESOURCES[:3])

    assert run_retry() == 2

    assert "has no AWS::Lambda::Function CustomizationJobTriggerFunction" in capsys.readouterr().err


def test_no_deployed_job_recorded_asks_for_job(stubbed: Stubbed, capsys: pytest.CaptureFixture[str]) -> None:
    stubbed.ssm.add_client_error(
        "get_parameter", service_error_code="ParameterNotFound", expected_params={"Name": PARAMETER}
    )

    assert run_retry() == 2

    err = capsys.readouterr().err
    assert f"no deployed job is recorded in SSM {PARAMETER}" in err and "pass --job NAME" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--job", "dev-sql-generator-0123456789ab"],
            "--job dev-sql-generator-0123456789ab: not a job of dev/support-assistant",
        ),
        (["--job", "anything"], "its jobs are named dev-support-assistant-<12 hex>"),
    ],
)
def test_a_job_of_another_fine_tuning_is_a_usage_error_before_any_call(
    stubbed: Stubbed, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run_retry(*argv) == 2
    assert message in capsys.readouterr().err
    assert stubbed.regions == []  # no client was even made


def test_an_unknown_fine_tuning_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retry", "dev", "nope", "--project", str(SAMPLE_PROJECT)]) == 2
    assert "no fine-tuning 'nope' in environment 'dev'; known: support-assistant, sql-generator" in (
        capsys.readouterr().err
    )


def test_the_invoke_waits_as_long_as_the_function_may_run(fake_aws_credentials: None) -> None:
    clients = retry.clients_for(REGION, None)
    assert clients.lambda_.meta.config.read_timeout == 15 * 60 + 60
    # The CLI's one retry policy (finetune.cli.aws_access), for the invoke too.
    assert clients.lambda_.meta.config.retries == clients.ssm.meta.config.retries
    assert clients.ssm.meta.config.read_timeout == 60
    assert clients.lambda_.meta.region_name == clients.cloudformation.meta.region_name == REGION
