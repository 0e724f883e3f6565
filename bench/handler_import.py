"""Lambda cold-start cost of our code: importing each handler vs a bare `import boto3`.

Each import runs in a fresh interpreter (as in a new Lambda sandbox), alternating handler and
baseline; the budget (README.md, "Performance") is a median ratio <= 1.2.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUDGET_RATIO = 1.2
HANDLERS_DIR = PROJECT_ROOT / "finetune" / "runtime"
NOT_HANDLERS = ("__init__", "responder")


def _import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip())


def main(runs: int = 15) -> list[str]:
    handlers = sorted(path.stem for path in HANDLERS_DIR.glob("*.py") if path.stem not in NOT_HANDLERS)
    baseline: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name in handlers}
    for _ in range(runs):
        baseline.append(_import_seconds("import boto3"))
        for name in handlers:
            timings[name].append(_import_seconds(f"import finetune.runtime.{name}"))
    base = statistics.median(baseline)
    lines = [f"bare `import boto3`:                  median {base * 1000:.0f} ms of {runs}"]
    for name, values in timings.items():
        ratio = statistics.median(values) / base
        verdict = "" if ratio <= BUDGET_RATIO else "  OVER BUDGET"
        lines.append(
            f"import finetune.runtime.{name:<25} median {statistics.median(values) * 1000:.0f} ms, "
            f"{ratio:.2f}x (budget <= {BUDGET_RATIO}x){verdict}"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
