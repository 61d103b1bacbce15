"""The ``curvestore`` command line: every subcommand, file formats, and the error contract
(one ``curvestore: error: ...`` line on stderr, exit 1; usage errors exit 2; no traceback)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curvestore import __version__
from curvestore._text import human_bytes
from curvestore.cli import main, parse_key_spec
from curvestore.registry import PluginEntry, get_registry

TZ = "Europe/Paris"


# -- helpers ------------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("curvestore: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def curve(start: str = "2024-03-30", end: str = "2024-04-01", freq: str = "15min"
          ) -> pd.Series:
    """A curve across the spring DST change, values exact in binary and decimal text."""
    index = pd.date_range(start, end, freq=freq, tz=TZ, inclusive="left")
    return pd.Series(np.arange(len(index)) * 0.25 + 1.0, index=index, name="kw")


def write_csv(series: pd.Series, path: Path, naive: bool = False) -> Path:
    frame = series.rename_axis("ts").reset_index()
    if naive:
        frame["ts"] = frame["ts"].dt.tz_localize(None)
    frame.to_csv(path, index=False)
    return path


def read_csv_output(text: str) -> pd.Series:
    frame = pd.read_csv(io.StringIO(text))
    assert list(frame.columns) == ["timestamp", "value"]
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True)).tz_convert(TZ)
    return pd.Series(frame["value"].to_numpy(), index=index)


def assert_same(got: pd.Series, expected: pd.Series) -> None:
    assert got.index.as_unit("ns").equals(expected.index.as_unit("ns"))
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


@pytest.fixture
def url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A fresh filesystem store with keys site:str, year:int."""
    store_url = f"file://{tmp_path.as_posix()}/store"
    code, _, err = run(capsys, "create", store_url, "--keys", "site:str,year:int",
                       "--freq", "15min", "--tz", TZ)
    assert code == 0, err
    return store_url


# -- basics -------------------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("create", "info", "ls", "put", "get", "rm", "plugins", "demo"):
        assert command in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"], ["info"], ["put", "memory://x"],
                 ["create", "memory://x", "--keys", "a"], ["demo", "--meters", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
        assert "Traceback" not in capsys.readouterr().err


def test_helpers() -> None:
    assert parse_key_spec("site:str, year:int,kind") == {"site": "str", "year": "int",
                                                          "kind": "str"}
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"


# -- create / info / ls -------------------------------------------------------------------
def test_create_then_info(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", url)
    assert code == 0
    assert "site:str, year:int" in out and "15min" in out and TZ in out and "lz4" in out
    code, out, _ = run(capsys, "info", url, "--json")
    info = json.loads(out)
    assert info["keys"] == {"site": "str", "year": "int"}
    assert info["series"] == 0 and info["max_timestamp"] is None


def test_create_existing(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["create", url, "--keys", "site:str,year:int", "--freq", "15min", "--tz", TZ]
    code, _, err = run(capsys, *args)
    assert_one_line_error(code, err, "already exists")
    code, out, _ = run(capsys, *args, "--exist-ok")
    assert code == 0 and "exists (same configuration)" in out
    code, _, err = run(capsys, "create", url, "--keys", "site", "--freq", "15min", "--tz", TZ,
                       "--exist-ok")
    assert_one_line_error(code, err, "frozen configuration differs")


def test_create_with_options_on_memory(capsys: pytest.CaptureFixture[str]) -> None:
    store = f"memory://clitest-{uuid.uuid4().hex}"
    code, out, err = run(capsys, "create", store, "--keys", "meter", "--freq", "1h",
                         "--tz", "UTC", "--chunking", "year", "--codec", "none")
    assert code == 0, err
    assert "year chunks" in out and "codec none" in out
    code, out, _ = run(capsys, "info", store, "--json")  # same process: same memory store
    assert json.loads(out)["chunking"] == "year"


def test_put_info_ls(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(curve(), tmp_path / "load.csv")
    for site, year in (("paris", 2023), ("paris", 2024), ("lyon", 2024)):
        code, out, err = run(capsys, "put", url, path, f"site={site}", f"year={year}")
        assert code == 0, err
        assert "wrote 188 points" in out
    code, out, _ = run(capsys, "ls", url)
    assert out.split() == ["site", "year", "lyon", "2024", "paris", "2023", "paris", "2024"]
    code, out, _ = run(capsys, "ls", url, "year=2024", "--json")
    assert json.loads(out) == [{"site": "lyon", "year": 2024}, {"site": "paris", "year": 2024}]
    code, out, _ = run(capsys, "ls", url, "--json", "site=paris")  # filter after an option
    assert [k["year"] for k in json.loads(out)] == [2023, 2024]
    code, out, _ = run(capsys, "info", url, "--json")
    info = json.loads(out)
    assert info["series"] == 3 and info["points"] == 3 * 188
    assert info["max_timestamp"] == "2024-03-31T23:45:00+02:00"
    code, out, _ = run(capsys, "info", url)
    assert "KiB" in out or " B " in out


def test_ls_bad_filters(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "ls", url, "year=abc")
    assert_one_line_error(code, err, "'year' is an int key", "'abc'")
    code, _, err = run(capsys, "ls", url, "color=red")
    assert_one_line_error(code, err, "unknown key 'color'", "site, year")
    code, _, err = run(capsys, "ls", url, "site")
    assert_one_line_error(code, err, "expected key=value")


# -- put / get ----------------------------------------------------------------------------
def test_csv_round_trip_across_dst(url: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    series = curve()
    run(capsys, "put", url, write_csv(series, tmp_path / "in.csv"), "site=a", "year=1")
    code, out, err = run(capsys, "get", url, "site=a", "year=1")
    assert code == 0, err
    assert_same(read_csv_output(out), series)

    code, out, _ = run(capsys, "get", url, "site=a", "year=1", "--start", "2024-03-31 01:30",
                       "--end", "2024-03-31T03:15")
    window = read_csv_output(out)
    assert [t.strftime("%H:%M%z") for t in window.index] == [
        "01:30+0100", "01:45+0100", "03:00+0200", "03:15+0200"]

    target = tmp_path / "out.csv"
    code, _, err = run(capsys, "get", url, "site=a", "year=1", "-o", target)
    assert code == 0 and "wrote 188 rows" in err
    assert_same(read_csv_output(target.read_text()), series)


def test_put_modes(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = curve()
    path = write_csv(series, tmp_path / "in.csv")
    run(capsys, "put", url, path, "site=a", "year=1")
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1")
    assert_one_line_error(code, err, "already has data", "--mode update")

    patch = series.iloc[:4] * 0 - 1.0
    run(capsys, "put", url, write_csv(patch, tmp_path / "patch.csv"), "site=a", "year=1",
        "--mode", "update")
    code, out, _ = run(capsys, "get", url, "site=a", "year=1")
    expected = series.copy()
    expected.iloc[:4] = -1.0
    assert_same(read_csv_output(out), expected)

    code, out, err = run(capsys, "put", url, tmp_path / "patch.csv", "site=a", "year=1",
                         "--mode", "replace")
    assert code == 0, err
    code, out, _ = run(capsys, "get", url, "site=a", "year=1")
    assert_same(read_csv_output(out), patch)

    # replacing with a file without any value deletes the series
    nothing = write_csv(patch * np.nan, tmp_path / "nothing.csv")
    code, out, err = run(capsys, "put", url, nothing, "site=a", "year=1", "--mode", "replace")
    assert code == 0, err
    assert "deleted site=a year=1 (1 chunk tombstoned, mode=replace)" in out
    code, _, err = run(capsys, "get", url, "site=a", "year=1")
    assert_one_line_error(code, err, "no data for series")


def test_put_naive_csv_needs_tz(url: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    # Autumn DST change: 02:00-02:45 happen twice; --tz must localize them in order.
    series = curve("2024-10-26", "2024-10-28")
    path = write_csv(series, tmp_path / "naive.csv", naive=True)
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1")
    assert_one_line_error(code, err, "no UTC offset", "--tz")
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1", "--tz", TZ)
    assert code == 0, err
    code, out, _ = run(capsys, "get", url, "site=a", "year=1")
    assert_same(read_csv_output(out), series)


def test_put_mixed_naive_and_aware(url: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("ts,kw\n2024-01-01 00:00:00+01:00,1\n2024-01-01 00:15:00,2\n")
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1", "--tz", TZ)
    assert_one_line_error(code, err, "with and without a UTC offset")


def test_put_column_choice(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = curve().to_frame("kw")
    frame["kvar"] = 2.5
    path = tmp_path / "two.csv"
    frame.rename_axis("ts").reset_index().to_csv(path, index=False)
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1")
    assert_one_line_error(code, err, "2 value columns", "--column")
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1", "--column", "nope")
    assert_one_line_error(code, err, "no value column 'nope'")
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1", "--column", "kvar")
    assert code == 0, err
    code, out, _ = run(capsys, "get", url, "site=a", "year=1")
    assert (read_csv_output(out) == 2.5).all()


def test_parquet_round_trip(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyarrow")
    series = curve()
    source = tmp_path / "in.parquet"
    series.to_frame().to_parquet(source)  # the timestamps as a DatetimeIndex
    code, _, err = run(capsys, "put", url, source, "site=a", "year=1")
    assert code == 0, err
    target = tmp_path / "out.parquet"
    code, _, err = run(capsys, "get", url, "site=a", "year=1", "-o", target)
    assert code == 0, err
    frame = pd.read_parquet(target)
    assert list(frame.columns) == ["timestamp", "value"]
    # in the unit pandas gives new timestamps (us on pandas 3, ns on pandas 2), as written
    assert frame["timestamp"].dtype == pd.DatetimeTZDtype(series.index.unit, TZ)
    got = pd.Series(frame["value"].to_numpy(), index=pd.DatetimeIndex(frame["timestamp"]))
    assert_same(got, series)
    code, _, err = run(capsys, "get", f"{url}?time_unit=ms", "site=a", "year=1", "-o", target)
    assert code == 0, err
    assert pd.read_parquet(target)["timestamp"].dtype == pd.DatetimeTZDtype("ms", TZ)
    # and the exported file (timestamps as a column) goes back in unchanged
    code, _, err = run(capsys, "put", url, target, "site=b", "year=1")
    assert code == 0, err


def test_parquet_without_pyarrow(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "in.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now fails
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1")
    assert_one_line_error(code, err, "pyarrow", 'pip install "curvestore[parquet]"')


def test_get_errors(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "get", url, "site=nope", "year=1")
    assert_one_line_error(code, err, "no data for series site=nope year=1")
    code, _, err = run(capsys, "get", url, "site=nope")
    assert_one_line_error(code, err, "full series key", "year=...")
    code, _, err = run(capsys, "get", url, "site=a", "year=1", "--start", "garbage")
    assert_one_line_error(code, err, "garbage")
    code, _, err = run(capsys, "get", url, "site=a", "year=1", "-o", tmp_path / "x.json")
    assert_one_line_error(code, err, "unknown file type")


# -- rm -----------------------------------------------------------------------------------
def test_rm(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(curve("2024-01-30", "2024-02-02"), tmp_path / "in.csv")  # 2 chunks
    for site, year in (("a", 1), ("a", 2), ("b", 1)):
        run(capsys, "put", url, path, f"site={site}", f"year={year}")

    code, _, err = run(capsys, "rm", url, "site=a")
    assert_one_line_error(code, err, "--all-matching")
    code, out, err = run(capsys, "rm", url, "site=b", "year=1")
    assert code == 0, err
    assert out.strip() == "deleted 2 chunks (series site=b year=1)"
    code, _, err = run(capsys, "rm", url, "site=b", "year=1")
    assert_one_line_error(code, err, "no series site=b year=1")
    code, out, _ = run(capsys, "rm", url, "site=a", "--all-matching")
    assert out.strip() == "deleted 4 chunks (2 series matching site=a)"
    code, out, _ = run(capsys, "ls", url, "--json")
    assert json.loads(out) == []


# -- plugins ------------------------------------------------------------------------------
def test_plugins(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(get_registry().codecs, "ghost", PluginEntry(
        "codec", "ghost", "curvestore_ghost_codec_not_installed:Ghost", "ghost", "curvestore-x"))
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    assert "Backends" in out and "Codecs" in out
    assert "file://" in out and "memory://" in out and "lz4" in out
    assert 'missing: pip install "curvestore[ghost]"' in out
    code, out, _ = run(capsys, "plugins", "--json")
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)}
    assert rows[("backend", "file")]["installed"] is True
    assert rows[("backend", "file")]["distribution"].startswith("curvestore ")
    assert rows[("codec", "zstd")]["extra"] == "zstd"
    assert rows[("codec", "ghost")]["installed"] is False
    assert rows[("codec", "ghost")]["distribution"] == "curvestore-x"


# -- the error contract -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["info", "memory://clitest-absent-{u}"], "no curvestore store"),
        (["info", "nosuchscheme://x"], "unknown store URL scheme 'nosuchscheme'"),
        (["create", "memory://clitest-{u}", "--keys", "a", "--freq", "15min", "--tz", "UTC",
          "--codec", "nope"], "unknown codec 'nope'"),
        (["create", "memory://clitest-{u}", "--keys", "a", "--freq", "15min",
          "--tz", "Mars/Olympus"], "Mars/Olympus"),
        (["create", "memory://clitest-{u}", "--keys", "a:float", "--freq", "15min",
          "--tz", "UTC"], "must be str or int"),
        (["create", "memory://clitest-{u}", "--keys", "Site", "--freq", "15min",
          "--tz", "UTC"], "'Site' is invalid"),
        (["put", "memory://clitest-absent-{u}", "missing.csv", "a=1"], "no curvestore store"),
    ],
)
def test_errors_are_one_line(argv: list[str], fragment: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    u = uuid.uuid4().hex
    code, _, err = run(capsys, *(a.format(u=u) for a in argv))
    assert_one_line_error(code, err, fragment)


def test_missing_input_file(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "put", url, "no-such-file.csv", "site=a", "year=1")
    assert_one_line_error(code, err, "no-such-file.csv")


def test_traceback_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--traceback", "info", f"memory://clitest-{uuid.uuid4().hex}")
    assert code == 1
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("curvestore: error:")
    code, _, err = run(capsys, "info", f"memory://clitest-{uuid.uuid4().hex}", "--traceback")
    assert code == 1 and "Traceback" in err


def test_keyboard_interrupt_exits_130(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import curvestore.registry

    def interrupted() -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(curvestore.registry, "get_registry", interrupted)
    code, out, err = run(capsys, "plugins")
    assert code == 130 and out == "" and err == ""


def test_subprocess(tmp_path: Path) -> None:
    store = f"file://{tmp_path.as_posix()}/store"

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "curvestore.cli", *argv],
                              capture_output=True, text=True, timeout=120)

    done = cli("create", store, "--keys", "site", "--freq", "1h", "--tz", "UTC")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "in.csv"
    path.write_text("ts,kw\n2024-01-01T00:00:00Z,1.5\n2024-01-01T01:00:00Z,2.5\n")
    assert cli("put", store, str(path), "site=x").returncode == 0
    done = cli("get", store, "site=x")
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["timestamp,value", "2024-01-01 00:00:00+00:00,1.5",
                                        "2024-01-01 01:00:00+00:00,2.5"]
    done = cli("info", str(tmp_path / "nothing-here"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("curvestore: error: ")
    assert cli("get", store).returncode == 1  # key missing: an error, not a crash
    assert cli("bogus-command").returncode == 2


# -- demo ---------------------------------------------------------------------------------
def test_demo_creates_then_reuses_then_fresh(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "data"
    code, out, err = run(capsys, "demo", "--dir", directory, "--meters", "3")
    assert code == 0, err
    assert "created the store" in out
    assert "verified: all 3 series read back bit-exact" in out
    assert "105,408" in out  # 3 meters x 366 days x 96 quarter-hours
    for label in ("bytes on disk", "compression ratio", "bytes/point", "points/s",
                  "window read", "update"):
        assert label in out
    assert "as 'curvestore put --mode update' does" in out and "mode=" not in out
    first_size = sum(f.stat().st_size for f in (directory / "demo").rglob("*") if f.is_file())

    code, out, err = run(capsys, "demo", "--dir", directory, "--meters", "3")
    assert code == 0, err
    assert "reusing the store" in out and "'curvestore put --mode replace'" in out
    assert "mode=" not in out  # command-line wording, not Python's
    assert "verified: all 3 series" in out

    code, out, err = run(capsys, "demo", "--dir", directory, "--meters", "2", "--fresh")
    assert code == 0, err
    assert "--fresh: deleted the existing store" in out and "created the store" in out
    code, out, _ = run(capsys, "info", f"file://{(directory / 'demo').as_posix()}", "--json")
    assert json.loads(out)["series"] == 2
    assert first_size > 0


def test_demo_refuses_a_foreign_directory(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "precious.txt").write_text("keep me")
    code, _, err = run(capsys, "demo", "--dir", tmp_path, "--meters", "1", "--fresh")
    assert_one_line_error(code, err, "not a curvestore store")
    assert (tmp_path / "demo" / "precious.txt").exists()


def test_demo_reports_a_verification_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import curvestore.demo as demo

    monkeypatch.setattr(demo, "same", lambda expected, got: "3 values differ")
    code, _, err = run(capsys, "demo", "--dir", tmp_path, "--meters", "1")
    assert code == 1 and "Traceback" not in err
    # stderr also holds the progress bars; the error is the last line, on its own
    assert err.rstrip().splitlines()[-1] == (
        "curvestore: error: verification failed for meter=M00000: 3 values differ")


# -- input that is altered or badly refused: one line, nothing written ----------------------
@pytest.mark.parametrize("rows, fragment", [
    ("2024-01-01T00:00:00+01:00,1\n2024-01-01T00:15:00+01:00,9007199254740993\n",
     "9007199254740993 at 2023-12-31 23:15:00+00:00 cannot be stored exactly"),
    ("2024-01-01T00:00:00+01:00,1\n2500-01-01T00:00:00+01:00,2\n", "1970-2199"),
], ids=["int-beyond-2**53", "year-2500"])
def test_put_refuses_what_it_would_alter(url: str, tmp_path: Path, rows: str, fragment: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.csv"
    path.write_text("ts,value\n" + rows)
    code, _, err = run(capsys, "put", url, path, "site=a", "year=1")
    assert_one_line_error(code, err, fragment)
    code, out, _ = run(capsys, "ls", url, "--json")
    assert json.loads(out) == []


def test_key_value_with_lone_surrogate_is_one_line(url: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(curve(), tmp_path / "load.csv")
    code, _, err = run(capsys, "put", url, path, "site=a\udc80", "year=1")
    assert_one_line_error(code, err, "not valid Unicode")
    code, out, _ = run(capsys, "ls", url, "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize("field", ["codec", "store_id", "keys"])
def test_damaged_manifest_is_one_line(field: str, capsys: pytest.CaptureFixture[str]) -> None:
    from curvestore.backends.memory import MemoryBackend

    name = f"clitest-{uuid.uuid4().hex}"
    code, _, err = run(capsys, "create", f"memory://{name}", "--keys", "site", "--freq",
                       "15min", "--tz", TZ)
    assert code == 0, err
    try:
        manifest = MemoryBackend(name).state.manifest
        assert manifest is not None
        del manifest[field]
        for command in ("info", "ls"):
            code, _, err = run(capsys, command, f"memory://{name}")
            assert_one_line_error(code, err, f"the manifest of memory://{name} is damaged",
                                  f"'{field}' is missing")
    finally:
        MemoryBackend.forget(name)


def test_damaged_manifest_file_is_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path = Path(url.removeprefix("file://")) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["codec"]
    manifest_path.write_text(json.dumps(manifest))
    code, _, err = run(capsys, "info", url)
    assert_one_line_error(code, err, "manifest")


@pytest.mark.parametrize("content", [b'stores = "x"\n', b'[[stores]]\nurl = "x"\n',
                                     b"\x89PNG\r\n\x1a\n\x00"],
                         ids=["string", "array-of-tables", "binary"])
def test_bad_config_file_is_one_line(content: bytes, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "curvestore.toml"
    config.write_bytes(content)
    monkeypatch.setenv("CURVESTORE_CONFIG", str(config))
    code, _, err = run(capsys, "info", "@loads")
    assert_one_line_error(code, err, str(config))


# -- ingest -------------------------------------------------------------------------------
def long_csv(path: Path, sites: list[str], naive: bool = False) -> pd.DataFrame:
    """Long rows (site, yr, ts, kw) of ``curve()`` per site, shuffled, written to ``path``."""
    parts = [pd.DataFrame({"site": site, "yr": 2024, "ts": curve().index,
                           "kw": curve().to_numpy() * (i + 1)}) for i, site in enumerate(sites)]
    rows = pd.concat(parts).sample(frac=1.0, random_state=1)
    if naive:
        rows["ts"] = rows["ts"].dt.tz_localize(None)
    if path.suffix == ".parquet":
        rows.to_parquet(path, index=False)
    else:
        rows.to_csv(path, index=False)
    return rows


def test_ingest_csv_and_parquet(url: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    long_csv(tmp_path / "day.csv", ["a", "b", "c"])
    code, out, err = run(capsys, "ingest", url, tmp_path / "day.csv", "--key", "site,yr",
                         "--time", "ts", "--value", "kw")
    assert code == 0, err
    assert err == ""  # no progress bar when stderr is not a terminal
    points = len(curve())
    assert out.startswith(f"ingested {3 * points:,} rows of 3 series: {3 * points:,} points "
                          "in 3 chunks, 1 commit (mode=insert)")
    code, out, _ = run(capsys, "get", url, "site=c", "year=2024")
    assert_same(read_csv_output(out), curve() * 3)
    pytest.importorskip("pyarrow")
    long_csv(tmp_path / "again.parquet", ["c", "d"])
    code, _, err = run(capsys, "ingest", url, tmp_path / "again.parquet", "--key", "site",
                       "--key", "yr", "--time", "ts", "--value", "kw")
    assert_one_line_error(code, err, "site=c year=2024 already has data", "--mode update")
    code, out, err = run(capsys, "ingest", url, tmp_path / "again.parquet", "--key", "site",
                         "--key", "yr", "--time", "ts", "--value", "kw", "--mode", "update",
                         "--quiet")
    assert code == 0 and err == "", err
    assert "of 2 series" in out and "(mode=update)" in out
    code, out, _ = run(capsys, "ls", url)
    assert [line.split() for line in out.splitlines()[1:]] == [
        [s, "2024"] for s in ("a", "b", "c", "d")]


def test_ingest_errors_are_one_line(url: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    rows = long_csv(tmp_path / "naive.csv", ["a"], naive=True)
    args = ["--key", "site,yr", "--time", "ts", "--value", "kw"]
    code, _, err = run(capsys, "ingest", url, tmp_path / "naive.csv", *args)
    assert_one_line_error(code, err, "naive", "--tz")
    code, _, err = run(capsys, "ingest", url, tmp_path / "naive.csv", *args, "--tz", TZ)
    assert code == 0, err
    pd.concat([rows, rows.iloc[:1]]).to_csv(tmp_path / "twice.csv", index=False)
    code, _, err = run(capsys, "ingest", url, tmp_path / "twice.csv", *args, "--tz", TZ,
                       "--mode", "update")
    assert_one_line_error(code, err, "two rows for series site='a', year=2024")
    (tmp_path / "mixed.csv").write_text("site,yr,ts,kw\na,2024,2024-03-31T01:45:00+0100,1\n"
                                        "a,2024,2024-03-31 03:00:00,2\n")
    for argv, fragment in [
        ([tmp_path / "mixed.csv", *args], "mixes timestamps with and without a UTC offset"),
        ([tmp_path / "naive.csv", "--key", "site", "--time", "ts", "--value", "kw"],
         "one column per key"),
        ([tmp_path / "naive.csv", "--time", "ts", "--value", "kw"], "no column 'year'"),
        ([tmp_path / "nothing.csv", *args], "nothing.csv"),
        ([tmp_path / "naive.json", *args], "unknown file type"),
        (["-", *args], "not stdin"),
    ]:
        code, _, err = run(capsys, "ingest", url, *argv)
        assert_one_line_error(code, err, fragment)
    with pytest.raises(SystemExit) as exc:
        main(["ingest", url, str(tmp_path / "naive.csv"), *args, "--buffer", "x"])
    assert exc.value.code == 2 and "2G or 512M" in capsys.readouterr().err


def test_ingest_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """Through the installed entry point, stderr a pseudo-terminal: the bar shows rows and
    series; with --quiet, nothing."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    store = f"file://{tmp_path.as_posix()}/store"
    long_csv(tmp_path / "day.csv", [f"m{i}" for i in range(20)])

    def cli(*argv: str) -> tuple[int, str]:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        try:
            done = subprocess.run([sys.executable, "-m", "curvestore.cli", *argv],
                                  stdout=subprocess.PIPE, stderr=follower, text=True,
                                  timeout=120)
            os.close(follower)
            shown = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal is closed once everything was read
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(leader)
        return done.returncode, shown.decode(errors="replace")

    code, _ = cli("create", store, "--keys", "site:str,year:int", "--freq", "15min", "--tz", TZ)
    assert code == 0
    args = ["--key", "site,yr", "--time", "ts", "--value", "kw"]
    code, shown = cli("ingest", store, str(tmp_path / "day.csv"), *args)
    assert code == 0, shown
    assert "read" in shown and "rows" in shown and "20 series" in shown, shown
    assert "write" in shown and "1 commit" in shown, shown
    code, shown = cli("ingest", store, str(tmp_path / "day.csv"), *args, "--mode", "update",
                      "--quiet")
    assert code == 0 and shown == "", shown
