"""`python -m finetune status`: jobs in several states, serving, SSM, unavailable APIs and --watch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from moto.bedrock.models import bedrock_backends

from finetune.aws import serving
from finetune.cli import aws_access
from finetune.cli.commands import status
from finetune.cli.local_serving import FakeBedrockServing
from finetune.cli.main import build_parser, main
from finetune.core import names as identity
from finetune.core.contracts import ServingResource, ServingSettings
from finetune.core.project import load_config
from tests.conftest import SAMPLE_PROJECT

REGION = "us-west-2"  # the sample configuration's region
ACCOUNT = "123456789012"
RUNNING_JOB = "dev-support-assistant-111111111111"
DONE_JOB = "dev-support-assistant-222222222222"
FAILED_JOB = "dev-support-assistant-333333333333"
OTHER_JOB = "dev-support-assistant-bot-444444444444"  # another fine-tuning sharing the prefix
DATA_SHA = "ab" * 32


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


def create_job(name: str, state: str = "InProgress", *, tagged: bool = True) -> str:
    bedrock = boto3.client("bedrock", region_name=REGION)
    tags = [{"key": "finetune:data-sha256", "value": DATA_SHA}] if tagged else []
    arn = str(
        bedrock.create_model_customization_job(
            jobName=name,
            customModelName=name,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/customization",
            baseModelIdentifier="anthropic.claude-3-haiku-20240307-v1:0:200k",
            trainingDataConfig={"s3Uri": "s3://bucket/training/train.jsonl"},
            outputDataConfig={"s3Uri": "s3://bucket/output/"},
            hyperParameters={"epochCount": "2"},
            **({"jobTags": tags} if tags else {}),
        )["jobArn"]
    )
    set_state(name, state)
    return arn


def set_state(
    name: str, state: str, message: str = "the data has 3 records; at least 32 are required"
) -> None:
    job = bedrock_backends[ACCOUNT][REGION].model_customization_jobs[name]
    job.status = state
    job.failure_message = message


def args(*argv: str) -> object:
    return build_parser().parse_args(["status", *argv, "--project", str(SAMPLE_PROJECT)])


def test_jobs_in_several_states_with_models_and_parameters(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_job(RUNNING_JOB)
    create_job(DONE_JOB, "Completed", tagged=False)
    create_job(FAILED_JOB, "Failed")
    create_job(OTHER_JOB, "Completed")
    ssm = boto3.client("ssm", region_name=REGION)
    model_path = identity.ssm_parameter_name("dev", "support-assistant", "custom-model-arn")
    ssm.put_parameter(Name=model_path, Value="arn:aws:bedrock:model", Type="String")

    assert main(["status", "dev", "support-assistant", "--project", str(SAMPLE_PROJECT)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "dev/support-assistant (us-west-2)"
    running = next(line for line in lines if RUNNING_JOB in line and "InProgress" in line)
    assert "running for" in running and f"data sha256 {DATA_SHA[:12]}" in running
    assert "base anthropic.claude-3-haiku-20240307-v1:0:200k" in running
    done = next(line for line in lines if DONE_JOB in line and "Completed" in line)
    assert "ended " in done and "job digest 222222222222 (from the name; no data tag readable)" in done
    assert any(FAILED_JOB in line and "Failed" in line for line in lines)
    assert "      failure: the data has 3 records; at least 32 are required" in lines
    assert OTHER_JOB not in out  # dev-support-assistant-bot is not this fine-tuning
    assert sum(1 for line in lines if line.startswith("    dev-support-assistant-") and ": arn:" in line) == 3
    assert f"    {model_path} = arn:aws:bedrock:model" in lines
    assert "    /finetune/dev/support-assistant/endpoint-arn = (not set)" in lines
    # moto (in-process) lacks the serving APIs: reported, not a crash.
    assert "    unavailable at this endpoint (ListProvisionedModelThroughputs)" in lines
    assert "    unavailable at this endpoint (ListCustomModelDeployments)" in lines


def test_every_fine_tuning_of_the_environment_is_shown(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "dev", "--project", str(SAMPLE_PROJECT)]) == 0
    out = capsys.readouterr().out
    assert "dev/support-assistant (us-west-2)" in out and "dev/sql-generator (us-west-2)" in out
    assert out.count("  jobs:\n    none") == 2


def test_serving_endpoints_show_units_and_commitment(aws: None) -> None:
    config = next(
        item for item in load_config(SAMPLE_PROJECT).fine_tunings if item.environment.name == "prod"
    )
    bedrock = boto3.client("bedrock", region_name=REGION)
    fake = FakeBedrockServing(bedrock, region=REGION)
    tags = [
        {"key": key, "value": value} for key, value in identity.resource_tags("prod", config.name).items()
    ]
    spec = ServingResource("prod", config.name, REGION, ServingSettings("provisioned", 2, "OneMonth"))
    fake.create_provisioned_model_throughput(
        modelUnits=2,
        provisionedModelName=serving.throughput_name(spec),
        modelId="arn:aws:bedrock:us-west-2:123456789012:custom-model/m",
        commitmentDuration="OneMonth",
        tags=tags,
    )
    fake.settle()
    ssm = boto3.client("ssm", region_name=REGION)
    collector = status.Collector(lambda region: status.StatusClients(bedrock=fake, ssm=ssm))
    found = collector.collect(config, REGION)
    rendered = status.render(found, datetime.now(UTC))
    expires = next(iter(fake.throughputs.values()))["commitmentExpirationTime"]
    assert (
        f"    provisioned throughput {serving.throughput_name(spec)} InService, 2 model unit(s), OneMonth "
        f"commitment until {expires:%Y-%m-%d %H:%M:%S} UTC: "
    ) in "\n".join(rendered)
    assert "  serving:" in rendered and "unavailable" not in "\n".join(rendered)


def test_an_endpoint_without_the_serving_apis_is_reported_over_http(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finetune.cli.rehearsal import aws_pointed_at, moto_endpoint

    monkeypatch.setattr(aws_access, "RETRY_ATTEMPTS", 1)  # moto's HTTP 500 would otherwise be retried
    with moto_endpoint() as url, aws_pointed_at(url, REGION):
        create_job(RUNNING_JOB, "Completed")
        code = main(["status", "dev", "--endpoint-url", url, "--project", str(SAMPLE_PROJECT)])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("unavailable at this endpoint (ListProvisionedModelThroughputs)") == 2
    assert out.count("unavailable at this endpoint (ListCustomModelDeployments)") == 2
    assert RUNNING_JOB in out


def test_watch_prints_until_the_job_completes(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    create_job(RUNNING_JOB)
    slept: list[float] = []
    ticks = iter([0.0, 0.0, 30.0, 30.0])

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        set_state(RUNNING_JOB, "Completed")

    code = status.run(
        args("dev", "support-assistant", "--watch", "--interval", "30"),  # type: ignore[arg-type]
        sleep=sleep,
        clock=lambda: next(ticks),
        now=lambda: datetime(2026, 8, 1, 12, 0, tzinfo=UTC),
    )
    assert code == 0
    assert slept == [30.0]
    out = capsys.readouterr().out
    assert "--- 2026-08-01 12:00:00 UTC, watching for 0:00:00 ---" in out
    assert f"1 job(s) in progress: {RUNNING_JOB} InProgress for " in out
    assert "next check in 0:00:30" in out
    assert "--- 2026-08-01 12:00:00 UTC, watching for 0:00:30 ---" in out
    assert out.rstrip().endswith("no job in progress: done")


def test_unknown_environment_or_fine_tuning_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "staging", "--project", str(SAMPLE_PROJECT)]) == 2
    assert "no environment 'staging' in cdk.json; known: dev, prod" in capsys.readouterr().err
    assert main(["status", "dev", "chatbot", "--project", str(SAMPLE_PROJECT)]) == 2
    assert "no fine-tuning 'chatbot' in environment 'dev'; known: sql-generator, support-assistant" in (
        capsys.readouterr().err
    )


def test_missing_credentials_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert main(["status", "dev", "support-assistant", "--project", str(SAMPLE_PROJECT)]) == 2
    assert "no AWS credentials found" in capsys.readouterr().err


def test_a_gated_fine_tuning_shows_each_trials_record_and_the_winner(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ssm = boto3.client("ssm", region_name=REGION)

    def put(name: str, value: object) -> None:
        path = identity.ssm_parameter_name("dev", "sql-generator", name)
        ssm.put_parameter(Name=path, Value=json.dumps(value), Type="String")

    put(
        "trial-main",
        {
            "trial": "main",
            "job_name": "dev-sql-generator-aaaaaaaaaaaa",
            "state": "failed",
            "scores": {"scores": {"Builtin.Correctness": 0.61, "Builtin.Completeness": None}, "prompts": 24},
            "verdict": {
                "passed": False,
                "misses": ["Builtin.Correctness: 0.61 < minimum 0.70 (missed by 0.09)"],
            },
        },
    )
    assert main(["status", "dev", "sql-generator", "--project", str(SAMPLE_PROJECT)]) == 0
    lines = capsys.readouterr().out.splitlines()
    gate = lines[lines.index("  evaluation gate:") + 1 :]
    assert gate == [
        "    main: failed (job dev-sql-generator-aaaaaaaaaaaa); Builtin.Correctness 0.6100, Builtin.Completeness -; "
        "Builtin.Correctness: 0.61 < minimum 0.70 (missed by 0.09)",
        "    gentle (meta.llama3-1-8b-instruct-v1:0:128k): waiting for its job to complete",
        "    winner: not decided yet",
    ]
    put("gate-winner", {"trial": None, "reason": "no trial passed the evaluation gate"})
    assert main(["status", "dev", "sql-generator", "--project", str(SAMPLE_PROJECT)]) == 0
    assert "    winner: none (no trial passed the evaluation gate)" in capsys.readouterr().out.splitlines()
    # Not gated: no such section.
    assert main(["status", "dev", "support-assistant", "--project", str(SAMPLE_PROJECT)]) == 0
    assert "  evaluation gate:" not in capsys.readouterr().out
