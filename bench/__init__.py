"""Benchmarks: `make bench` (or `python -m bench`) prints each as a table and writes JSON to bench/results/."""
