"""finetune.aws.serving_events: what the serving function tells people (the runs: tests/runtime)."""

from __future__ import annotations

from finetune.aws.serving_events import describe_failure, model_from_change
from finetune.core.contracts import JobStateChange, ServingResource

SPEC = ServingResource("dev", "support-assistant", "us-west-2")


def change(status: str, **detail: str) -> JobStateChange:
    return JobStateChange.from_event(
        {"detail": {"jobName": "dev-support-assistant-aaaaaaaaaaaa", "jobStatus": status, **detail}}
    )


def test_a_failure_names_the_job_the_reason_and_how_to_retry() -> None:
    message = describe_failure(
        SPEC, change("Failed", failureMessage="Training data has 3 records", jobArn="arn:j")
    )
    assert "dev-support-assistant-aaaaaaaaaaaa is Failed" in message
    assert "Reason: Training data has 3 records" in message and "Job: arn:j" in message
    assert "python -m finetune retry dev support-assistant" in message
    assert "A stopped job produced no custom model" in describe_failure(SPEC, change("Stopped"))


def test_the_model_a_completion_announces() -> None:
    model = model_from_change(
        change("Completed", outputModelArn="arn:m", endTime="2026-08-01T10:00:00+00:00")
    )
    assert model is not None and model.model_arn == "arn:m" and model.end_time is not None
    assert model.end_time.hour == 10
    assert model_from_change(change("Completed")) is None  # no model named
    assert model_from_change(change("Failed", outputModelArn="arn:m")) is None
