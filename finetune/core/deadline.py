"""When an answer is due: the time a Lambda invocation has left, on the wall clock.

Shared by the CloudFormation responder (which answers at the deadline whatever the action is
doing) and the operations it runs (which check it before anything that costs money).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The guard answers this long before the Lambda function's own timeout: time to PUT the answer.
DEADLINE_MARGIN_SECONDS = 45.0
# Without a Lambda context (tests, the CLI) an action may run this long.
DEFAULT_SECONDS = 900.0


class DeadlineError(RuntimeError):
    """The action ran out of the time its answer allows; it must start nothing more."""


@dataclass
class Deadline:
    """When the answer to CloudFormation is due, on the wall clock (`time.time()`).

    The wall clock, not a monotonic one: a Lambda environment can be frozen between invocations,
    and a frozen action that wakes up later must find its deadline passed.
    """

    expires_at: float
    clock: Callable[[], float] = time.time

    @classmethod
    def from_context(cls, context: Any, *, margin: float = DEADLINE_MARGIN_SECONDS) -> Deadline:
        """The Lambda's remaining time minus `margin`, or `DEFAULT_SECONDS` without a context."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        seconds = DEFAULT_SECONDS if remaining is None else float(remaining()) / 1000.0
        return cls(expires_at=time.time() + max(seconds - margin, 0.0))

    def remaining(self) -> float:
        return max(self.expires_at - self.clock(), 0.0)

    @property
    def expired(self) -> bool:
        return self.clock() >= self.expires_at

    def check(self, before: str) -> None:
        """Raise `DeadlineError` when the deadline has passed (call it before `before`)."""
        if self.expired:
            raise DeadlineError(
                f"stopped before {before}: the answer to CloudFormation was due and has been sent"
            )
