"""OpenTelemetry spans for Store operations, when ``opentelemetry-api`` is installed.

:func:`store_tracer` is what :mod:`curvestore.opening` hands every Store (the core's
:class:`~curvestore.core.tracing.Tracer`): None when OpenTelemetry cannot be imported or
``CURVESTORE_TRACING`` is ``0``/``off``/``false``/``no`` (each operation then costs one
``is None`` check), else a tracer on ``opentelemetry.trace.get_tracer("curvestore")``. Spans
go wherever the application's OpenTelemetry SDK sends them; while no tracer provider is set
(the API alone), operations open no span at all (:class:`OpenTelemetryTracer`).

Each span is named ``curvestore.<operation>`` (``write``, ``write_many``, ``write_frame``,
``ingest``, ``delete``, ``delete_many``, ``read``, ``read_many``, ``read_frame``,
``changes``, ``replicate``, ``compact``) and carries ``curvestore.backend`` (the URL scheme,
never the URL: it may hold credentials) and, as the operation reports them, the integer
attributes ``curvestore.series``, ``curvestore.points``, ``curvestore.chunks``,
``curvestore.changes``, ``curvestore.pages`` and ``curvestore.bytes`` (encoded payload bytes
committed). An exception ending an operation is recorded on its span (an ``exception``
event, with its message) and sets its status to ERROR, described by the exception's type.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any

from curvestore._version import __version__
from curvestore.core.tracing import Tracer

__all__ = ["OpenTelemetryTracer", "store_tracer"]

_OFF = {"0", "off", "false", "no"}
_unset: Any = object()
_cached: Any = _unset


def store_tracer() -> Tracer | None:
    """The tracer for new stores: decided once per process (see the module docstring)."""
    global _cached
    if _cached is _unset:
        _cached = _new_tracer()
    return _cached  # type: ignore[no-any-return]


def _new_tracer() -> Tracer | None:
    if os.environ.get("CURVESTORE_TRACING", "").strip().lower() in _OFF:
        return None
    try:
        from opentelemetry import trace
    except ImportError:  # not installed: stores hold no tracer
        return None
    return OpenTelemetryTracer(trace.get_tracer("curvestore", __version__))


def backend_name(store: Any) -> str:
    """The store's backend as a span may show it: its URL scheme, else its class name."""
    schemes = getattr(type(store.backend), "schemes", ())
    return str(schemes[0]) if schemes else type(store.backend).__name__


class _Counted:
    """An OpenTelemetry span and the amounts reported while it is open, set as attributes
    once it ends (a span's attributes cannot be read back through the API to add to)."""

    __slots__ = ("amounts", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.amounts: dict[str, int] = {}

    def count(self, **amounts: int) -> None:
        total = self.amounts
        for name, value in amounts.items():
            total[name] = total.get(name, 0) + int(value)

    def settle(self) -> None:
        if self.amounts and self.span.is_recording():
            self.span.set_attributes({f"curvestore.{k}": v for k, v in self.amounts.items()})

    def end(self, error: BaseException | None = None) -> None:
        self.settle()
        if error is not None:
            self.span.record_exception(error)
            _failed(self.span, error)
        self.span.end()


def _failed(span: Any, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


class _Idle:
    """The span of an operation while no tracer provider is set: it records nothing."""

    __slots__ = ()

    def __enter__(self) -> _Idle:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def count(self, **amounts: int) -> None:
        return None

    def end(self, error: BaseException | None = None) -> None:
        return None


_IDLE = _Idle()


class _Scope:
    """A span made current for the duration of a ``with`` block (a class, not a
    ``contextmanager`` generator: this runs around every operation)."""

    __slots__ = ("counted", "scope", "token", "tracer")

    def __init__(self, tracer: OpenTelemetryTracer, operation: str, store: Any) -> None:
        self.tracer = tracer
        # start_as_current_span records an escaping exception (an event with its message);
        # the status is set here, to the exception's type only
        self.scope = tracer.tracer.start_as_current_span(
            f"curvestore.{operation}", set_status_on_exception=False,
            attributes={"curvestore.backend": backend_name(store)})

    def __enter__(self) -> _Counted:
        self.counted = _Counted(self.scope.__enter__())
        self.token = self.tracer.current.set(self.counted)
        return self.counted

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> Any:
        self.tracer.current.reset(self.token)
        self.counted.settle()
        if error is not None:
            _failed(self.counted.span, error)
        return self.scope.__exit__(kind, error, traceback)


class OpenTelemetryTracer:
    """The core's :class:`~curvestore.core.tracing.Tracer` on an OpenTelemetry tracer.

    While no tracer provider is set (the API without an SDK), operations skip the API's
    no-op spans altogether: one check of the global provider instead of a span and a
    context switch each. A provider set later is used from the next operation on."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import trace

        self.tracer = tracer
        self.current: ContextVar[_Counted | None] = ContextVar("curvestore_span", default=None)
        self._provider = trace.get_tracer_provider
        self._unset = trace.ProxyTracerProvider

    def span(self, operation: str, store: Any) -> AbstractContextManager[Any]:
        if isinstance(self._provider(), self._unset):
            return _IDLE
        return _Scope(self, operation, store)

    def start(self, operation: str, store: Any) -> _Counted | _Idle:
        if isinstance(self._provider(), self._unset):
            return _IDLE
        return _Counted(self.tracer.start_span(
            f"curvestore.{operation}", attributes={"curvestore.backend": backend_name(store)}))

    def count(self, **amounts: int) -> None:
        current = self.current.get()
        if current is not None:
            current.count(**amounts)
