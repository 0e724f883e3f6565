"""Benchmarks for the budgets in README.md ("Performance"), each runnable as `python -m bench.<name>`."""
