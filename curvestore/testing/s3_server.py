"""A throw-away S3 API server for tests: ``with s3_server() as base_url: ...``.

Yields a base store URL ``s3://<bucket>?endpoint_url=...&region=...``: tests add a unique
prefix to it (:func:`with_prefix`) for each store.

* With ``CURVESTORE_TEST_S3_URL`` set, that service is used and nothing is started. The value
  is either such an ``s3://bucket[/prefix]?endpoint_url=...&region=...`` URL (the bucket must
  exist; credentials come from boto3's usual chain) or a bare endpoint ``http(s)://host:port``,
  in which case the bucket ``curvestore-test`` is created there if needed.
* Otherwise moto (``moto[server]``) is started in this process, in a thread, on 127.0.0.1 with a
  free port; boto3 talks to it over HTTP like to any S3 service. Dummy credentials are put in
  the environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, inherited by child
  processes) for the server's lifetime.

moto checks ``If-Match`` / ``If-None-Match`` and then writes, without a lock between the two, so
two concurrent conditional PUTs of one key can both succeed there, unlike on S3. The server
therefore runs writes (PUT, POST, DELETE) one at a time; reads stay concurrent. This makes moto
behave as S3 does; it changes nothing for the client.

Failures raise :class:`S3Unavailable`; the test fixtures turn that into a skip outside CI and a
hard failure under CI (``CI=true``, see :mod:`curvestore.testing.services`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from curvestore.testing.services import in_ci

__all__ = ["BUCKET", "ENV_URL", "S3Unavailable", "in_ci", "s3_server", "with_prefix"]

ENV_URL = "CURVESTORE_TEST_S3_URL"
BUCKET = "curvestore-test"
REGION = "us-east-1"
_DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key-id",
                      "AWS_SECRET_ACCESS_KEY": "testing-secret-key"}


class S3Unavailable(RuntimeError):
    """No S3 service could be started or reached."""


def with_prefix(base_url: str, prefix: str | None = None) -> str:
    """``base_url`` with a (new, unique unless given) prefix appended to its path."""
    prefix = prefix or uuid.uuid4().hex
    head, sep, query = base_url.partition("?")
    return f"{head.rstrip('/')}/{prefix}{sep}{query}"


def _serialising_writes(app: Callable[..., Any]) -> Callable[..., Any]:
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def _create_bucket(endpoint: str, bucket: str, region: str) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", endpoint_url=endpoint, region_name=region)
    try:
        if region == "us-east-1":
            client.create_bucket(Bucket=bucket)
        else:
            client.create_bucket(Bucket=bucket,
                                 CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",
                                                             "BucketAlreadyExists"):
            raise S3Unavailable(f"cannot create bucket {bucket!r} at {endpoint}: "
                                f"{exc.response.get('Error', {}).get('Code')}") from exc
    except BotoCoreError as exc:
        raise S3Unavailable(f"cannot reach {endpoint}: {type(exc).__name__}") from exc


def _url(endpoint: str, bucket: str, region: str) -> str:
    return f"s3://{bucket}?endpoint_url={quote(endpoint, safe=':/')}&region={region}"


@contextlib.contextmanager
def _moto() -> Iterator[str]:
    try:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server
    except ImportError as exc:
        raise S3Unavailable(f'moto[server] is not installed ({exc}); pip install '
                            '"moto[s3,server]" or set ' + ENV_URL) from exc

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            """Silence per-request logging: the tests would drown in it."""

    app = _serialising_writes(DomainDispatcherApplication(create_backend_app))
    try:
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    except OSError as exc:
        raise S3Unavailable(f"cannot start moto on 127.0.0.1: {exc}") from exc
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    saved = {name: os.environ.get(name) for name in _DUMMY_CREDENTIALS}
    os.environ.update(_DUMMY_CREDENTIALS)
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        _create_bucket(endpoint, BUCKET, REGION)
        yield _url(endpoint, BUCKET, REGION)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.shutdown()
        thread.join(10)
        server.server_close()


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Yield a base ``s3://bucket?endpoint_url=...`` URL; see the module docstring."""
    configured = os.environ.get(ENV_URL)
    if configured:
        if configured.startswith(("http://", "https://")):
            region = os.environ.get("AWS_DEFAULT_REGION", REGION)
            _create_bucket(configured, BUCKET, region)
            yield _url(configured, BUCKET, region)
        else:
            yield configured
        return
    with _moto() as url:
        yield url
