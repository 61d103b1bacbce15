"""Dask: a store's series as a Dask DataFrame, and Dask DataFrames written into a store, with
the work done by the workers (``pip install "curvestore[dask]"``).

- :func:`read_dask` builds a DataFrame in long layout (key columns, ``value``, indexed by
  ``ts``) with ``dask.dataframe.from_map``: one task per group of series, or per chunk period
  with known divisions, each reading through the store's bulk paths;
- :func:`to_store` writes the partitions of a DataFrame in that layout from the workers, each
  partition one all-or-nothing commit, and returns a :class:`WriteReport`.

Tasks carry the store's URL, never a store: each worker process opens the store once and
keeps it. Importing this module does not import Dask; calling either function without it
raises :class:`~curvestore.errors.BackendNotInstalledError`.
"""

from __future__ import annotations

from curvestore.dask._read import read_dask
from curvestore.dask._write import WriteReport, to_store

__all__ = ["WriteReport", "read_dask", "to_store"]
