"""The CloudFormation responder: exactly one answer, in time, under 4,096 bytes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from finetune.core import deadline as deadlines
from finetune.core.deadline import Deadline
from finetune.runtime import responder as custom_resource
from finetune.runtime.responder import Outcome


class Responses:
    """Stands in for CloudFormation's pre-signed response URL: every body PUT to it, raw."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.arrived = threading.Event()

    def __call__(self, _url: str, body: bytes) -> None:
        self.sent.append(body)
        self.arrived.set()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.sent]


def request(request_type: str = "Create", **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://example.invalid/response",
        "StackId": "arn:aws:cloudformation:us-west-2:123456789012:stack/dev-x/1",
        "RequestId": "request-1",
        "LogicalResourceId": "Thing",
        "ResourceProperties": {},
        **extra,
    }


def test_a_long_non_ascii_reason_is_cut_by_encoded_bytes() -> None:
    """Japanese validator output: JSON escapes each character to 6 bytes; 4,096 bytes is the limit."""
    responses = Responses()

    def reject(_event: Mapping[str, Any], _deadline: Deadline) -> Outcome:
        raise ValueError("訓練データの形式が正しくありません: " * 200)

    body = custom_resource.respond(request("Update", PhysicalResourceId="thing-1"), reject, send=responses)
    assert body["Status"] == "FAILED"
    assert body["PhysicalResourceId"] == "thing-1"  # an update keeps its resource
    assert len(responses.sent) == 1
    assert len(responses.sent[0]) <= custom_resource.MAX_RESPONSE_BYTES
    assert len(responses.sent[0]) > custom_resource.MAX_RESPONSE_BYTES - 12  # the budget is used
    assert body["Reason"].startswith("ValueError: 訓練データ") and body["Reason"].endswith(
        custom_resource.ELLIPSIS
    )


def test_a_reason_that_fits_is_sent_whole() -> None:
    responses = Responses()

    def reject(_event: Mapping[str, Any], _deadline: Deadline) -> Outcome:
        raise ValueError("s3://bucket/train.jsonl:7: 'messages' is missing")

    body = custom_resource.respond(request(), reject, send=responses)
    assert body["Reason"] == "ValueError: s3://bucket/train.jsonl:7: 'messages' is missing"


@pytest.mark.parametrize("budget", [0, 3, 10, 50])
def test_bounded_reason_never_exceeds_its_budget(budget: int) -> None:
    reason = 'é"\\\n' * 40
    cut = custom_resource.bounded_reason(reason, budget)
    assert len(json.dumps(cut)) - 2 <= budget
    assert reason.startswith(cut.removesuffix(custom_resource.ELLIPSIS))


def test_a_failed_create_answers_with_the_resource_s_own_failure_id() -> None:
    responses = Responses()

    def fail(_event: Mapping[str, Any], _deadline: Deadline) -> Outcome:
        raise RuntimeError("made a throughput, then failed")

    body = custom_resource.respond(request(), fail, failure_id=lambda _e: "dev-x-serving", send=responses)
    assert body["PhysicalResourceId"] == "dev-x-serving"
    default = custom_resource.respond(request(), fail, send=Responses())
    assert custom_resource.is_failed_create(default["PhysicalResourceId"])


def test_the_deadline_guard_answers_failed_once_while_the_action_still_runs() -> None:
    responses = Responses()
    release = threading.Event()
    checked: list[str] = []

    def slow(_event: Mapping[str, Any], deadline: Deadline) -> Outcome:
        assert responses.arrived.wait(5), "the guard did not answer"
        try:
            deadline.check("starting the job")
        except deadlines.DeadlineError as error:
            checked.append(str(error))
            raise
        release.set()
        return Outcome(physical_id="never-sent")

    body = custom_resource.respond(request(), slow, deadline=Deadline(time.time() + 0.2), send=responses)
    assert [sent["Status"] for sent in responses.bodies()] == ["FAILED"]  # one answer, the guard's
    assert "did not finish before its time ran out" in body["Reason"]
    assert checked and "stopped before starting the job" in checked[0]
    assert not release.is_set()


def test_a_finished_action_cancels_the_guard() -> None:
    responses = Responses()

    def quick(_event: Mapping[str, Any], _deadline: Deadline) -> Outcome:
        return Outcome(physical_id="thing-1", data={"Arn": "arn:x"})

    body = custom_resource.respond(request(), quick, deadline=Deadline(time.time() + 0.3), send=responses)
    time.sleep(0.5)
    assert [sent["Status"] for sent in responses.bodies()] == ["SUCCESS"]
    assert body["Data"] == {"Arn": "arn:x"} and body["PhysicalResourceId"] == "thing-1"


def test_the_deadline_comes_from_the_lambda_context() -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 100_000

    deadline = Deadline.from_context(Context(), margin=40.0)
    assert 59.0 < deadline.remaining() <= 60.0
    default = deadlines.DEFAULT_SECONDS - deadlines.DEADLINE_MARGIN_SECONDS
    assert default - 5 < Deadline.from_context(None).remaining() <= default
    assert Deadline(time.time() - 1).expired
