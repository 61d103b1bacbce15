"""The measures of bench/distributed.py: ``measures`` (Dask reads and writes) and ``report``
(its results page) are the driver's own; the others are each a ``measure(url, *, meters, ...)
-> dict`` that can also run alone (``python bench/distkit/<name>.py --meters 500``)."""
