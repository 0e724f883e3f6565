"""Data validation speed and memory: `python -m bench.validation [--quick] [--check]`.

Budget (README.md, "Performance"): validation >= 0.8x the throughput of a bare `json.loads` line loop on the
same 100+ MB file, and peak memory independent of the file's size.

- Throughput: a generated JSONL file of distinct, valid prompt/completion records (~1 KB each) is
  read by the bare loop (text mode and binary mode) and by `validate_file` with Titan Text Express's
  limits (token limits on, no record maximum, so duplicate tracking runs on every record: the slow
  case), alternating, several rounds; the figures are medians of wall-clock MB/s, and the ratio is
  against the faster bare loop.
- Memory: each measurement runs in a fresh interpreter that reports its own peak RSS (VmHWM from
  /proc/self/status; `ru_maxrss` elsewhere), on a ~110 MB and a ~0.9 GB file (just under Titan
  Text Express's 1 GB training-file maximum).

Everything lives in a temporary directory that is removed at the end. `--check` exits 1 when a
budget is missed (the machine's noise can move the ratio by a few percent: read the medians).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from finetune.core.catalog import find_model
from finetune.core.dataset import DUPLICATE_TRACKING_FALLBACK, validate_file
from finetune.core.formats import DataFormat, DatasetLimits

MB = 1000**2
THROUGHPUT_BUDGET_RATIO = 0.8
# Peak memory counts as flat when the large-file run stays within this of the small-file run.
MEMORY_FLAT_TOLERANCE_MB = 10.0
BENCH_MODEL = "amazon.titan-text-express-v1:0:8k"  # prompt/completion, no record maximum
# fmt: off
WORDS = (
    "the", "model", "answers", "questions", "about", "invoices", "orders", "shipping", "returns",
    "refunds", "accounts", "and", "billing", "in", "a", "friendly", "concise", "tone", "with",
    "examples", "where", "useful", "données", "über", "日本語", "✓",
)
# fmt: on


def bench_limits() -> DatasetLimits:
    model = find_model(BENCH_MODEL)
    limits = model.dataset_limits("FINE_TUNING") if model is not None else None
    if limits is None or limits.data_format != DataFormat.PROMPT_COMPLETION:
        raise SystemExit(f"bench: {BENCH_MODEL} is not a prompt/completion model in the catalog")
    return limits


def generate(path: Path, target_bytes: int, *, seed: int = 7) -> int:
    """Write distinct valid prompt/completion records until the file holds `target_bytes`; the count.

    A pool of pre-encoded texts is combined with a running number, so generating is cheap and no two
    lines are identical.
    """
    rng = random.Random(seed)
    prompts = [json.dumps(" ".join(rng.choices(WORDS, k=rng.randint(30, 160))))[1:-1] for _ in range(500)]
    completions = [json.dumps(" ".join(rng.choices(WORDS, k=rng.randint(20, 120))))[1:-1] for _ in range(500)]
    written = 0
    count = 0
    with path.open("w", encoding="utf-8") as stream:
        while written < target_bytes:
            batch = [
                f'{{"prompt": "#{count + i} {prompts[(count + i) % 500]}", '
                f'"completion": "{completions[(count + i) * 7 % 500]}"}}\n'
                for i in range(2_000)
            ]
            text = "".join(batch)
            stream.write(text)
            written += len(text.encode())
            count += len(batch)
    return count


def bare_loop_text(path: Path) -> None:
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            json.loads(line)


def bare_loop_binary(path: Path) -> None:
    with path.open("rb") as stream:
        for line in stream:
            json.loads(line)


def run_validator(path: Path) -> None:
    report = validate_file(path, limits=bench_limits())
    if not report.ok:
        raise SystemExit(f"bench: the generated file is invalid: {report.issues()[:3]}")


def throughput(path: Path, rounds: int) -> dict[str, float]:
    """Median MB/s per contender, running them in alternating order each round."""
    contenders: dict[str, Callable[[Path], None]] = {
        "bare loop, text mode (for line in f: json.loads(line))": bare_loop_text,
        "bare loop, binary mode": bare_loop_binary,
        "validate_file": run_validator,
    }
    size_mb = path.stat().st_size / MB
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for round_number in range(rounds):
        for name in order if round_number % 2 == 0 else reversed(order):
            started = time.perf_counter()
            contenders[name](path)
            samples[name].append(size_mb / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in samples.items()}


def peak_rss_mb(mode: str, path: Path | None) -> float:
    """Peak RSS of a fresh interpreter running one contender (`mode`) on `path`."""
    command = [sys.executable, "-m", "bench.validation", "--child", mode]
    if path is not None:
        command.append(str(path))
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} failed:\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB


def child(mode: str, path: str | None) -> int:
    if mode == "validate" and path:
        run_validator(Path(path))
    elif mode == "bare" and path:
        bare_loop_text(Path(path))
    # mode "baseline": the interpreter with the validator imported, nothing read
    print(_peak_rss_kib())
    return 0


def _peak_rss_kib() -> int:
    """This process's peak resident set size in KiB.

    Linux's VmHWM belongs to the current address space, so it starts afresh at exec; getrusage's
    ru_maxrss would also count the parent's pages the child had before exec.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20 MB / 160 MB run with 3 rounds")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--child", nargs="+", metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1] if len(args.child) > 1 else None)

    small_bytes = 20 * MB if args.quick else 110 * MB
    # ~0.9 GB: Titan Text Express takes training files up to 1 GB.
    copies = 8
    rounds = 3 if args.quick else 5
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as folder:
        small = Path(folder) / "small.jsonl"
        records = generate(small, small_bytes)
        size_mb = small.stat().st_size / MB
        print(
            f"file: {size_mb:,.1f} MB, {records:,} distinct prompt/completion records, limits of {BENCH_MODEL}"
        )

        figures = throughput(small, rounds)
        for name, value in figures.items():
            print(f"throughput, {name}: {value:,.1f} MB/s (median of {rounds})")
        fastest_bare = max(value for name, value in figures.items() if name.startswith("bare"))
        ratio = figures["validate_file"] / fastest_bare
        verdict = "ok" if ratio >= THROUGHPUT_BUDGET_RATIO else "MISSED"
        print(
            f"throughput ratio, validate_file / fastest bare loop: {ratio:.2f} (budget >= {THROUGHPUT_BUDGET_RATIO}: {verdict})"
        )
        ok = ok and ratio >= THROUGHPUT_BUDGET_RATIO

        # The large file: the small one's lines, repeated with a new running number (so still distinct).
        large = Path(folder) / "large.jsonl"
        _repeat_distinct(small, large, copies)
        large_mb = large.stat().st_size / MB
        print(f"peak RSS, interpreter with the validator imported: {peak_rss_mb('baseline', None):,.1f} MiB")
        small_rss = peak_rss_mb("validate", small)
        large_rss = peak_rss_mb("validate", large)
        print(f"peak RSS, validate_file, {size_mb:,.0f} MB file: {small_rss:,.1f} MiB")
        print(f"peak RSS, validate_file, {large_mb:,.0f} MB file: {large_rss:,.1f} MiB")
        print(f"peak RSS, bare loop, {large_mb:,.0f} MB file: {peak_rss_mb('bare', large):,.1f} MiB")
        growth = large_rss - small_rss
        if args.quick:
            verdict = (
                f"quick run, no verdict: {records:,} records do not fill the duplicate table "
                f"({DUPLICATE_TRACKING_FALLBACK:,} records, ~12 MiB) the large file fills"
            )
        else:
            flat = growth <= MEMORY_FLAT_TOLERANCE_MB
            verdict = f"budget: flat, within {MEMORY_FLAT_TOLERANCE_MB:g} MiB: {'ok' if flat else 'MISSED'}"
            ok = ok and flat
        print(f"peak RSS growth from {size_mb:,.0f} MB to {large_mb:,.0f} MB: {growth:+,.1f} MiB ({verdict})")
    return 1 if args.check and not ok else 0


def _repeat_distinct(source: Path, target: Path, copies: int) -> None:
    """`copies` copies of `source`'s lines, each copy's prompts tagged with its number."""
    with source.open("rb") as reader, target.open("wb") as writer:
        data = reader.read()
        for copy in range(copies):
            writer.write(data.replace(b'{"prompt": "#', b'{"prompt": "%d#' % copy))


if __name__ == "__main__":
    sys.exit(main())
