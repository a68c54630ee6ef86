"""Benchmarks run by `make bench`, `make bench-scale` and `make bench-efficacy`, each as
`python -m bench.NAME` from the repository root."""
