"""The tracing seam: what a Store tells an optional tracer about each operation.

The core knows no tracing library. A :class:`~curvestore.core.store.Store` is handed a
:class:`Tracer` by the layer above (``curvestore.tracing`` builds one on OpenTelemetry when
it is installed) or None, and then each traced operation costs one ``is None`` check.

A tracer opens a span per operation (:func:`traced`) and sums the amounts the operation
reports while it runs (:meth:`Tracer.count`: series, points, chunks, changes, payload
bytes) onto the innermost span open in the calling context, so a commit made inside
``replicate`` or ``ingest`` adds to that operation's span. Operations that hand back an
iterator (``read_many``) open a span that is not made current (:meth:`Tracer.start`), since
a generator's code runs in its consumer's context, and end it when the iterator is done.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

__all__ = ["Span", "Tracer", "traced", "traced_iterator"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Span(Protocol):
    """A span the core holds itself (one not made current)."""

    def count(self, **amounts: int) -> None:
        """Add ``amounts`` to the span's counters."""

    def end(self, error: BaseException | None = None) -> None:
        """End the span; ``error``: the exception that ended the operation."""


class Tracer(Protocol):
    """What the core asks of a tracer. Implementations must not raise."""

    def span(self, operation: str, store: Any) -> AbstractContextManager[Any]:
        """A span for ``operation`` on ``store``, current while the block runs; an exception
        leaving the block is recorded on it (status error) and re-raised."""

    def start(self, operation: str, store: Any) -> Span:
        """A span for ``operation`` that is not made current (for iterators)."""

    def count(self, **amounts: int) -> None:
        """Add ``amounts`` to the innermost current span's counters (nothing without one)."""


def traced(operation: str) -> Callable[[F], F]:
    """Decorate a Store method (or a function whose first argument is the store) so that
    it runs in a span named ``operation`` when the store has a tracer."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def run(store: Any, *args: Any, **kwargs: Any) -> Any:
            tracer = store.tracer
            if tracer is None:
                return method(store, *args, **kwargs)
            with tracer.span(operation, store):
                return method(store, *args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def traced_iterator(store: Any, operation: str, items: Iterator[T],
                    measure: Callable[[T], dict[str, int]]) -> Iterator[T]:
    """``items`` with a span around their consumption (when the store has a tracer): it
    ends when the iterator is exhausted, closed or fails; ``measure(item)`` gives what each
    item adds to the span's counters."""
    tracer = store.tracer
    if tracer is None:
        return items
    return _spanned(tracer.start(operation, store), items, measure)


def _spanned(span: Span, items: Iterator[T], measure: Callable[[T], dict[str, int]]
             ) -> Iterator[T]:
    error: BaseException | None = None
    try:
        for item in items:
            span.count(**measure(item))
            yield item
    except GeneratorExit:
        raise  # closed early by its consumer: not an error
    except BaseException as exc:
        error = exc
        raise
    finally:
        span.end(error)
