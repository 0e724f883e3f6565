"""Answering CloudFormation custom resource requests from a Lambda function, with the stdlib only.

CloudFormation waits (up to an hour) for an answer at the pre-signed `ResponseURL`, so every request
must be answered, success or failure, whatever goes wrong in between: `respond()` guarantees that.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger(__name__)

# CloudFormation rejects response bodies over 4 KB; the reason is the only long field.
MAX_REASON_CHARS = 3000
RESPONSE_TIMEOUT_SECONDS = 30


@dataclass
class Outcome:
    """What a custom resource handler decided: its physical id and the attributes (`Fn::GetAtt`)."""

    physical_id: str
    data: dict[str, str] = field(default_factory=dict)


Sender = Callable[[str, bytes], None]


def put_response(url: str, body: bytes) -> None:
    """PUT the response to CloudFormation's pre-signed S3 URL (content-type must be empty)."""
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"content-type": "", "content-length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_SECONDS) as answer:
        answer.read()


def respond(
    event: Mapping[str, Any],
    action: Callable[[Mapping[str, Any]], Outcome],
    *,
    send: Sender | None = None,
) -> dict[str, Any]:
    """Run `action(event)` and answer CloudFormation with its outcome, or with the error as reason.

    A failed Create has no resource yet: it answers with a placeholder physical id so that the
    rollback's Delete is recognisable and does nothing. Returns the body sent (for logs and tests).
    """
    request_type = event.get("RequestType", "?")
    try:
        outcome = action(event)
        status, reason = "SUCCESS", "OK"
    except Exception as error:  # every failure must reach CloudFormation, whatever its type
        LOG.exception("custom resource %s failed", request_type)
        fallback = event.get("PhysicalResourceId") or failed_create_id(event)
        outcome = Outcome(physical_id=fallback)
        status, reason = "FAILED", f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]
    body = {
        "Status": status,
        "Reason": reason,
        "PhysicalResourceId": outcome.physical_id,
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "NoEcho": False,
        "Data": outcome.data,
    }
    (send or put_response)(str(event["ResponseURL"]), json.dumps(body).encode())
    return body


def failed_create_id(event: Mapping[str, Any]) -> str:
    return f"failed-create-{event.get('RequestId', 'unknown')}"


def is_failed_create(physical_id: str) -> bool:
    return physical_id.startswith("failed-create-")
