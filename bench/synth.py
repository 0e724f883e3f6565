"""Synth speed: the whole sample app (2 environments x 2 fine-tunings, cdk-nag on) vs a one-bucket app.

Both run as the CDK CLI runs them (`python <app>` with CDK_OUTDIR and CDK_CONTEXT_JSON set), in
alternation, so a noisy machine slows both alike; the figure that counts is the ratio of medians.
Also: how long an invalid configuration takes to fail (budget: < 2 s, before jsii starts).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SYNTH_BUDGET_RATIO = 1.5
INVALID_CONFIG_BUDGET_SECONDS = 2.0


def _context() -> dict[str, object]:
    context: dict[str, object] = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    return context


def _run(app: Path, context: dict[str, object], *, expect_success: bool = True) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as outdir:
        environment = {**os.environ, "CDK_OUTDIR": outdir, "CDK_CONTEXT_JSON": json.dumps(context)}
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(app)],
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
    if (result.returncode == 0) != expect_success:
        raise SystemExit(f"bench: {app.name} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return elapsed


def main(runs: int = 3) -> list[str]:
    context = _context()
    sample, minimal = [], []
    for _ in range(runs):
        sample.append(_run(PROJECT_ROOT / "app.py", context))
        minimal.append(_run(PROJECT_ROOT / "bench" / "minimal_app.py", context))
    broken = json.loads(json.dumps(context))
    broken["fine_tunings"]["support-assistant"]["hyperparameters"]["epochCount"] = 99
    invalid = [_run(PROJECT_ROOT / "app.py", broken, expect_success=False) for _ in range(runs)]
    ratio = statistics.median(sample) / statistics.median(minimal)
    return [
        f"synth sample app (4 stacks, cdk-nag): median {statistics.median(sample):.2f} s of {runs}",
        f"synth minimal one-bucket app:         median {statistics.median(minimal):.2f} s of {runs}",
        f"synth ratio sample/minimal:           {ratio:.2f}x (budget <= {SYNTH_BUDGET_RATIO}x)"
        + ("" if ratio <= SYNTH_BUDGET_RATIO else "  OVER BUDGET"),
        f"invalid configuration fails in:       median {statistics.median(invalid):.2f} s "
        f"(budget < {INVALID_CONFIG_BUDGET_SECONDS} s)"
        + ("" if statistics.median(invalid) < INVALID_CONFIG_BUDGET_SECONDS else "  OVER BUDGET"),
    ]


if __name__ == "__main__":
    print("\n".join(main()))
