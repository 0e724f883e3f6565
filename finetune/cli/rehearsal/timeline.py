"""What a rehearsal prints: one line per step, and whether every step behaved as deployed code must."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class Deviation(Exception):  # noqa: N818 (a step's outcome, not an error of the code)
    """A step's outcome differs from what the deployed lifecycle must do."""


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    at: datetime
    name: str
    ok: bool
    detail: str
    logs: tuple[str, ...] = ()

    def line(self) -> str:
        stamp = self.at.strftime("%H:%M:%S.%f")[:-3]
        return f"{stamp}  {self.name}  {'ok' if self.ok else 'FAILED'}  {self.detail}"


@dataclass
class Result:
    """The timeline of one rehearsal."""

    stack: str
    bad_data: bool
    serving_mode: str
    endpoint_url: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def first_deviation(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)

    def outcomes(self) -> list[tuple[str, bool]]:
        return [(step.name, step.ok) for step in self.steps]

    def summary(self) -> str:
        kind = "rejection of bad data" if self.bad_data else f"lifecycle (serving mode {self.serving_mode})"
        failed = self.first_deviation
        if failed is None:
            return f"rehearsal of {self.stack}: {kind}: all {len(self.steps)} steps behaved as deployed code must"
        return (
            f"rehearsal of {self.stack}: {kind}: step {failed.name} deviated: {failed.detail} "
            f"({sum(step.ok for step in self.steps)} of {len(self.steps)} steps ok before it)"
        )
