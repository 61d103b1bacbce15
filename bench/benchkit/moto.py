"""A moto S3 server in a child process that counts the requests it serves (bench/s3.py,
bench/fleet.py).

The child runs :func:`curvestore.testing.s3_server.s3_server` (writes serialised as there), in
its own process so that its Python does not share a GIL with the clients under test, and answers
``GET /__bench__/stats`` with its counters: per HTTP method (``LIST`` for listings), the number of
requests, the seconds spent serving them and the bytes in and out. Counting on the server sees
every request of every client (boto3 or ArcticDB's C++ one) exactly as S3 would bill it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from .env import BENCH, REPO

ACCESS, SECRET = "testing-key-id", "testing-secret-key"
STATS_PATH = "/__bench__/stats"
_CHILD = (f"import sys; sys.path[:0] = [{str(BENCH)!r}, {str(REPO)!r}]; "
          "from benchkit.moto import serve; serve()")


def serve() -> None:
    """Child process: run moto, counting requests, until stdin closes. Prints the base store URL
    on stdout."""
    import threading

    from curvestore.testing import s3_server as mod

    lock = threading.Lock()
    stats: dict[str, list[float]] = {}  # method -> [count, seconds, bytes in, bytes out]
    original = mod._serialising_writes

    def counting(app: Any) -> Any:
        inner = original(app)

        def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == STATS_PATH:
                with lock:
                    body = json.dumps(stats).encode()
                start_response("200 OK", [("Content-Type", "application/json")])
                return [body]
            t0 = time.perf_counter()
            out = list(inner(environ, start_response))
            elapsed = time.perf_counter() - t0
            method = environ.get("REQUEST_METHOD", "?")
            query = environ.get("QUERY_STRING", "")
            if method == "GET" and ("list-type=" in query or "prefix=" in query):
                method = "LIST"
            with lock:
                s = stats.setdefault(method, [0, 0.0, 0, 0])
                s[0] += 1
                s[1] += elapsed
                s[2] += int(environ.get("CONTENT_LENGTH") or 0)
                s[3] += sum(len(b) for b in out)
            return out

        return wrapped

    mod._serialising_writes = counting
    with mod.s3_server() as url:
        print(url, flush=True)
        sys.stdin.read()


class Moto:
    """The counting moto server (a child process) and a boto3 client on it."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.pop("CURVESTORE_TEST_S3_URL", None)
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("s3://"):
            self.close()
            raise SystemExit("moto did not start")
        self.endpoint = dict(p.split("=", 1) for p in self.url.split("?", 1)[1].split("&")
                             )["endpoint_url"]
        self.port = urlsplit(self.endpoint).port
        self.bucket = urlsplit(self.url).netloc
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET})
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def stats(self) -> dict[str, list[float]]:
        with urllib.request.urlopen(self.endpoint + STATS_PATH) as resp:
            return json.loads(resp.read())

    def prefix_bytes(self, prefix: str) -> tuple[int, int]:
        """(objects, bytes) under ``prefix``."""
        count = size = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/"):
            for obj in page.get("Contents", []):
                count += 1
                size += obj["Size"]
        return count, size

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def request_delta(after: dict[str, list[float]], before: dict[str, list[float]]
                  ) -> dict[str, Any]:
    """Per method, what was served between two :meth:`Moto.stats` snapshots."""
    out = {}
    for method, vals in after.items():
        prev = before.get(method, [0, 0.0, 0, 0])
        d = [a - b for a, b in zip(vals, prev, strict=True)]
        if d[0]:
            out[method] = {"requests": int(d[0]), "server_s": d[1], "bytes_in": int(d[2]),
                           "bytes_out": int(d[3])}
    return out
