"""A tiny Django app holding the curvestore adapter's chunk stores that bench/django_adapter.py
benchmarks beside holcstore's (bench/hostore_bench)."""
