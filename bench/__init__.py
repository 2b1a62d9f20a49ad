"""Benchmarks of kpi-watch: ``python -m bench [--quick] [--json]``. Not tests."""
