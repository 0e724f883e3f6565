"""`make bench`: every speed and memory figure of the project, each beside its baseline, in one run.

Figures are medians over alternating runs of the measured code and its baseline (this machine is
shared and noisy: ratios measured side by side are what the budgets in README.md ("Performance") are about).
`python -m bench --quick` runs smaller inputs; both print one line per figure.
"""

from __future__ import annotations

import sys

from bench import handler_import, synth, validation


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    print("== synth ==")
    print("\n".join(synth.main(runs=2 if quick else 5)))
    print("== Lambda handler import ==")
    print("\n".join(handler_import.main(runs=5 if quick else 15)))
    print("== data validation ==", flush=True)
    return validation.main(["--quick"] if quick else [])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
