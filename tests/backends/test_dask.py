"""Dask: ``read_dask`` and ``to_store`` on a real ``distributed.LocalCluster`` (two worker
processes, one thread each, shared by the module) against file://, postgresql:// and s3://
(moto) stores: reads equal ``read_many``, writes equal ``write_many``, concurrent partition
writes lose nothing, and a partition whose worker is killed after its commit is retried
without being written twice.

The workers open the stores from their URLs (loopback servers started by the session's
fixtures, before the cluster, so the workers inherit the S3 credentials moto's fixture puts
in the environment).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    InvalidDataError,
    SeriesExistsError,
)
from curvestore.testing.s3_server import with_prefix

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from curvestore.dask import read_dask, to_store  # noqa: E402

KEYS = {"site": str, "n": int}
FREQ, TZ = "15min", "Europe/Paris"
BACKENDS = ["file", "postgresql", "s3"]


def _service(request: pytest.FixtureRequest, name: str) -> str | None:
    try:
        return str(request.getfixturevalue(name))
    except pytest.skip.Exception:  # unavailable here (under CI that fails instead)
        return None


@pytest.fixture(scope="module")
def services(request: pytest.FixtureRequest) -> dict[str, str | None]:
    return {"postgresql": _service(request, "postgres_url"),
            "s3": _service(request, "s3_base_url")}


@pytest.fixture(scope="module")
def client(services: dict[str, str | None]) -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR
                                  ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(params=BACKENDS)
def new_url(request: pytest.FixtureRequest, services: dict[str, str | None],
            tmp_path: Path, client: Any) -> Callable[[], str]:
    """A factory of URLs of fresh stores on the backend (the cluster is up)."""
    kind = request.param
    if kind == "file":
        return lambda: (tmp_path / uuid.uuid4().hex).as_uri()
    base = services[kind]
    if base is None:
        pytest.skip(f"{kind} is not available")
    if kind == "s3":
        return lambda: with_prefix(base)
    return lambda: base + ("&" if "?" in base else "?") + f"table=t_{uuid.uuid4().hex[:20]}"


def _series() -> dict[tuple[str, int], pd.Series]:
    """Six series over late February to early April (3 month chunks, DST in March), with
    gaps, different spans and an all-NaN stretch."""
    rng = np.random.default_rng(7)
    index = pd.date_range("2024-02-20", "2024-04-10 23:45", freq=FREQ, tz=TZ)
    out = {}
    for i, (site, n) in enumerate([("a", 1), ("a", 2), ("b", 1), ("b", 3), ("é", 1),
                                   ("z", 9)]):
        values = rng.random(len(index)).round(3)
        values[rng.random(len(index)) < 0.02] = np.nan
        s = pd.Series(values, index=index)
        out[(site, n)] = s.iloc[i * 500:len(index) - i * 300]
    return out


def _create(url: str) -> curvestore.Store:
    return curvestore.create_store(url, keys=KEYS, freq=FREQ, tz=TZ)


@pytest.fixture
def source(new_url: Callable[[], str]) -> tuple[str, curvestore.Store]:
    url = new_url()
    store = _create(url)
    store.write_many(_series())
    return url, store


def _long(pairs: Any) -> pd.DataFrame:
    """(key dict, series) pairs as read_dask's rows, sorted by key then time."""
    frames = [pd.DataFrame({"site": k["site"], "n": k["n"], "value": s.dropna().to_numpy()},
                           index=s.dropna().index.rename("ts")) for k, s in pairs]
    return _sorted(pd.concat(frames))


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reset_index().sort_values(["site", "n", "ts"], ignore_index=True)
    out["site"] = out["site"].astype(object)
    return out


def test_read_dask_equals_read_many(source: tuple[str, curvestore.Store]) -> None:
    url, store = source
    by_series = read_dask(url, partition="series", series_per_partition=4)
    assert by_series.npartitions == 2 and not by_series.known_divisions
    assert list(by_series.columns) == ["site", "n", "value"]
    pd.testing.assert_frame_equal(_sorted(by_series.compute()), _long(store.read_many()))

    window = ("2024-03-05 10:00", "2024-04-02 05:15")
    pd.testing.assert_frame_equal(
        _sorted(read_dask(url, {"site": "a"}, *window, series_per_partition=1).compute()),
        _long(store.read_many({"site": "a"}, *window)))

    by_period = read_dask(url, partition="period")
    assert by_period.npartitions == 3 and by_period.known_divisions
    assert by_period.divisions[1] == pd.Timestamp("2024-03-01", tz=TZ)
    computed = by_period.compute()
    assert computed.index.is_monotonic_increasing  # time-major within each period
    pd.testing.assert_frame_equal(_sorted(computed), _long(store.read_many()))
    sliced = by_period.loc["2024-03-30":"2024-03-31 12:00"]
    assert sliced.npartitions == 1  # the other periods are never read
    pd.testing.assert_frame_equal(
        _sorted(sliced.compute()),
        _long(store.read_many(start="2024-03-30", end="2024-03-31 12:00")))


def test_to_store_equals_write_many(source: tuple[str, curvestore.Store],
                                    new_url: Callable[[], str]) -> None:
    url, store = source
    target_url = new_url()
    target = _create(target_url)
    report = to_store(read_dask(url, series_per_partition=2), target_url)
    points = sum(int(s.notna().sum()) for s in _series().values())
    assert (report.partitions, report.commits, report.series, report.points,
            report.already_written) == (3, 3, 6, points, 0)
    assert target.read_frame().equals(store.read_frame())
    frame = read_dask(url, series_per_partition=2)
    with pytest.raises(SeriesExistsError):  # other data in the way: refused
        to_store(frame.assign(value=frame.value + 1), target_url)

    # Every period partition updates every series: the workers' commits race on the same
    # series and the store's concurrency control merges them.
    by_period = read_dask(url, partition="period")
    report = to_store(by_period.assign(value=by_period.value * 2), target_url, mode="update")
    assert (report.partitions, report.commits, report.points) == (3, 3, points)
    assert target.read_frame().equals(store.read_frame() * 2)
    fresh_url = new_url()
    fresh = _create(fresh_url)
    to_store(by_period, fresh_url, mode="update")  # the series created concurrently
    assert fresh.read_frame().equals(store.read_frame())


def _arm(marker: str) -> None:
    """On a worker: the first partition committed anywhere kills its worker right after the
    commit, before the task can report it (``marker`` is created once, atomically)."""
    from curvestore.dask import _write

    original = _write.__dict__.setdefault("_original_commit", _write._commit)

    def commit_then_die(*args: Any) -> Any:
        report = original(*args)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return report
        os._exit(1)

    _write._commit = commit_then_die


def _disarm() -> None:
    from curvestore.dask import _write

    _write._commit = _write.__dict__.get("_original_commit", _write._commit)


@pytest.mark.slow
def test_a_killed_workers_partition_is_retried_without_duplication(
        client: Any, tmp_path: Path) -> None:
    """The worker is killed after its partition committed, before the task reported it:
    the task runs again elsewhere, finds its data committed and reports it as such."""
    url = (tmp_path / "source").as_uri()
    store = _create(url)
    store.write_many(_series())
    target_url = (tmp_path / "target").as_uri()
    target = _create(target_url)
    marker = tmp_path / "killed"
    pids = set(client.run(os.getpid).values())
    client.run(_arm, str(marker))
    try:
        report = to_store(read_dask(url, series_per_partition=2), target_url)
    finally:
        client.run(_disarm)
    assert marker.exists() and set(client.run(os.getpid).values()) != pids  # one died
    assert (report.commits, report.already_written, report.series) == (2, 1, 6)
    assert report.points == sum(int(s.notna().sum()) for s in _series().values())
    assert target.read_frame().equals(store.read_frame())
    # each chunk committed once: one change per chunk in the feed
    items = target.changes(limit=10_000).items
    assert len(items) == len({(tuple(i.key.values()), i.chunk) for i in items})
    assert len(items) == len(store.changes(limit=10_000).items)


def test_bad_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    url = (tmp_path / "s").as_uri()
    _create(url).write_many(_series())
    with pytest.raises(ConfigurationError, match="partition"):
        read_dask(url, partition="chunk")
    with pytest.raises(ConfigurationError, match="series_per_partition"):
        read_dask(url, series_per_partition=0)
    frame = read_dask(url)
    with pytest.raises(InvalidDataError, match="'value'"):
        to_store(frame.rename(columns={"value": "kw"}), url, mode="update")
    with pytest.raises(InvalidDataError, match="'ts'"):
        to_store(frame.reset_index(drop=True), url, mode="update")
    with pytest.raises(InvalidDataError, match="dask DataFrame"):
        to_store(frame.compute(), url, mode="update")
    with pytest.raises(ConfigurationError, match="mode"):
        to_store(frame, url, mode="upsert")


def test_without_dask_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(BackendNotInstalledError, match=r"curvestore\[dask\]"):
        read_dask((tmp_path / "s").as_uri())


def test_the_readme_example_runs_as_written(client: Any) -> None:
    """The README's example, on the module's cluster (starting the example's own would
    double the module's time): its cluster line is the one line swapped."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Dask: reads and writes on many workers", 1)[1].split("\n## ")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    cluster_line = ("with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, "
                    "Client(cluster):")
    assert code.count(cluster_line) == 1
    code = code.replace(cluster_line, "with client.as_current():")
    exec(compile(code, "README.md (dask)", "exec"), {"__name__": "readme_dask",
                                                     "client": client})


def test_default_partitions_hold_about_the_points_wanted(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``series_per_partition``, partitions are sized from the store's metadata:
    the matching series' mean points, or the window's length when shorter."""
    import curvestore.dask._read as reading

    url = (tmp_path / "s").as_uri()
    series = _series()
    _create(url).write_many(series)
    mean = np.mean([s.count() for s in series.values()])
    monkeypatch.setattr(reading, "POINTS_PER_PARTITION", int(2 * mean) + 1)
    assert read_dask(url).npartitions == 3  # two series a partition
    day = read_dask(url, start="2024-03-10", end="2024-03-10 23:45")  # 96 points a series
    monkeypatch.setattr(reading, "POINTS_PER_PARTITION", 96 * 4)
    assert read_dask(url, start="2024-03-10", end="2024-03-10 23:45").npartitions == 2
    assert day.npartitions == 1
    assert read_dask(url, series_per_partition=5).npartitions == 2  # given: as given
