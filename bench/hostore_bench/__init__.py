"""A tiny Django app holding the concrete holcstore model that bench/run.py benchmarks."""
