"""Load benchmarks of both services; `python -m bench --help`, docs/performance.md."""
