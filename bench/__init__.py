"""Benchmarks for the budgets in shared/DESIGN.md, each runnable as `python -m bench.<name>`."""
