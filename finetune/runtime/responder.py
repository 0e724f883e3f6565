"""Answering CloudFormation custom resource requests from a Lambda function, with the stdlib only.

CloudFormation waits for an answer at the pre-signed `ResponseURL` until the resource's
`ServiceTimeout` (an hour without one), so every request must be answered, success or failure,
whatever goes wrong in between. `respond()` guarantees that:
- an exception becomes a FAILED answer with the error as its reason;
- a deadline guard answers FAILED shortly before the Lambda function would be stopped, so a slow
  action (validating a 10 GB file, waiting for a deletion) never leaves CloudFormation waiting. The
  action gets the same `Deadline` and checks it before anything that costs money (`check`), so an
  action that overran its answer starts nothing;
- the body stays under CloudFormation's 4,096-byte limit: the reason is cut by its encoded size
  (JSON escapes a non-ASCII character to 6 bytes), not by its number of characters.

What no code in the function can answer (an import error, running out of memory, the Lambda timeout
itself) is bounded by the resource's `ServiceTimeout`, which the constructs set.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from finetune.core.deadline import Deadline

LOG = logging.getLogger(__name__)

# CloudFormation rejects a response body over 4,096 bytes.
MAX_RESPONSE_BYTES = 4096
RESPONSE_TIMEOUT_SECONDS = 30
ELLIPSIS = " [...]"


@dataclass
class Outcome:
    """What a custom resource handler decided: its physical id and the attributes (`Fn::GetAtt`)."""

    physical_id: str
    data: dict[str, str] = field(default_factory=dict)


Sender = Callable[[str, bytes], None]
Action = Callable[[Mapping[str, Any], Deadline], Outcome]


def put_response(url: str, body: bytes) -> None:
    """PUT the response to CloudFormation's pre-signed S3 URL (content-type must be empty)."""
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"content-type": "", "content-length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_SECONDS) as answer:
        answer.read()


def respond(
    event: Mapping[str, Any],
    action: Action,
    *,
    context: Any = None,
    deadline: Deadline | None = None,
    failure_id: Callable[[Mapping[str, Any]], str] | None = None,
    send: Sender | None = None,
) -> dict[str, Any]:
    """Run `action(event, deadline)` and answer CloudFormation exactly once; returns the body sent.

    On failure the physical id is the request's own (an Update or Delete keeps its resource). A
    Create has none yet: `failure_id(event)` gives it, for resources whose Delete must clean up
    after a Create that failed half way (default: a placeholder that Delete recognises and skips).
    """
    deadline = deadline or Deadline.from_context(context)
    answer = _Answer(event, send or put_response, failure_id or failed_create_id)
    timer = threading.Timer(deadline.remaining(), answer.overdue, args=(deadline,))
    timer.daemon = True
    timer.start()
    try:
        outcome = action(event, deadline)
    except Exception as error:  # every failure must reach CloudFormation, whatever its type
        LOG.exception("custom resource %s failed", event.get("RequestType", "?"))
        answer.fail(f"{type(error).__name__}: {error}")
    else:
        answer.succeed(outcome)
    finally:
        timer.cancel()
    return answer.body


class _Answer:
    """The one response to a request: whichever of the action and the deadline guard comes first."""

    def __init__(
        self, event: Mapping[str, Any], send: Sender, failure_id: Callable[[Mapping[str, Any]], str]
    ) -> None:
        self.event = event
        self.send = send
        self.failure_id = failure_id
        self.body: dict[str, Any] = {}
        self._lock = threading.Lock()

    def succeed(self, outcome: Outcome) -> None:
        self._send("SUCCESS", "OK", outcome)

    def fail(self, reason: str) -> None:
        physical_id = str(self.event.get("PhysicalResourceId") or self.failure_id(self.event))
        self._send("FAILED", reason, Outcome(physical_id=physical_id))

    def overdue(self, deadline: Deadline) -> None:
        LOG.error("custom resource %s: deadline reached, answering FAILED", self.event.get("RequestType"))
        self.fail(
            "the function did not finish before its time ran out and answered now so that "
            "CloudFormation does not wait; nothing more is started by this request. Deploy again "
            "(a repeated request finds what this one did)."
        )

    def _send(self, status: str, reason: str, outcome: Outcome) -> None:
        with self._lock:
            if self.body:
                LOG.warning(
                    "custom resource already answered %s; not answering %s", self.body["Status"], status
                )
                return
            body = {
                "Status": status,
                "Reason": "",
                "PhysicalResourceId": outcome.physical_id,
                "StackId": self.event.get("StackId", ""),
                "RequestId": self.event.get("RequestId", ""),
                "LogicalResourceId": self.event.get("LogicalResourceId", ""),
                "NoEcho": False,
                "Data": outcome.data,
            }
            body["Reason"] = bounded_reason(reason, MAX_RESPONSE_BYTES - len(encode(body)))
            self.body = body
            self.send(str(self.event["ResponseURL"]), encode(body))


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body).encode()


def bounded_reason(reason: str, budget: int) -> str:
    """The longest start of `reason` whose JSON encoding adds at most `budget` bytes to the body."""

    def size(text: str) -> int:
        return len(json.dumps(text)) - 2  # the quotes are already in the body

    if size(reason) <= budget:
        return reason
    low, high = 0, len(reason)  # binary search: the largest prefix that fits with the ellipsis
    while low < high:
        middle = (low + high + 1) // 2
        if size(reason[:middle] + ELLIPSIS) <= budget:
            low = middle
        else:
            high = middle - 1
    return reason[:low] + ELLIPSIS if size(ELLIPSIS) <= budget else ""


def failed_create_id(event: Mapping[str, Any]) -> str:
    return f"failed-create-{event.get('RequestId', 'unknown')}"


def is_failed_create(physical_id: str) -> bool:
    return physical_id.startswith("failed-create-")
