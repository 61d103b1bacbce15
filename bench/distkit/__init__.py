"""Measures run by bench/distributed.py, each a ``measure(url, *, meters, ...) -> dict`` that
can also run alone (``python bench/distkit/<name>.py --meters 500``)."""
