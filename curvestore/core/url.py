"""Store URLs: ``scheme://netloc/path?options``, a bare path meaning ``file://``.

Store-level options (``codec``, ``read_only``) are split off by the core; each backend parses
the rest in its ``from_url`` and rejects options it does not know. ``redacted()`` is the only
form of a URL that may reach logs, reprs and error messages: passwords and secret-looking
options are masked, in URLs nested in options too (``tiered://?hot=postgresql://...``), and a
relative filesystem path is shown absolute, so the URL printed opens the same store from
anywhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit

from curvestore.errors import ConfigurationError

__all__ = ["StoreURL", "parse_url"]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class StoreURL:
    scheme: str
    netloc: str
    path: str
    options: dict[str, str] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None
    hostname: str | None = None
    port: int | None = None

    def pop_options(self, *names: str) -> tuple[dict[str, str], StoreURL]:
        """Split the given options off; returns them and the URL without them."""
        taken = {n: self.options[n] for n in names if n in self.options}
        rest = {k: v for k, v in self.options.items() if k not in taken}
        return taken, StoreURL(self.scheme, self.netloc, self.path, rest, self.username,
                               self.password, self.hostname, self.port)

    def reject_unknown_options(self, known: set[str] | frozenset[str]) -> None:
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {unknown} for {self.scheme}:// URLs; known: {sorted(known)}"
            )

    def redacted(self) -> str:
        """The URL to show: no password, no secret option, nested URLs redacted alike."""
        netloc, path = self.netloc, self.path
        if self.password is not None:
            netloc = netloc.replace(f":{quote(self.password, safe='')}@", ":***@", 1)
            netloc = netloc.replace(f":{self.password}@", ":***@", 1)
        if self.scheme == "file" and netloc in ("", ".", ".."):
            # a bare or ./relative path: file:///rel would name another directory
            netloc, path = "", os.path.abspath(netloc + path)
        query = "&".join(f"{k}={_shown_option(k, v)}" for k, v in self.options.items())
        # not urlunsplit: it drops the // of an empty host (tiered:?hot=...), and such a URL
        # would no longer parse as one
        return f"{self.scheme}://{netloc}{path}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.redacted()


def _secret(name: str) -> bool:
    return any(word in name.lower() for word in ("password", "secret", "token", "key"))


def _shown_option(name: str, value: str) -> str:
    if _secret(name):
        return "***"
    if _SCHEME.match(value):  # a store URL inside a URL (tiered://?hot=...): redact it too
        value = parse_url(value).redacted()
    return quote(value, safe="/:,*")


def parse_url(url: str) -> StoreURL:
    """Parse a store URL; a string without ``scheme://`` is a filesystem path."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"a store URL must be a non-empty string, got {url!r}")
    if not _SCHEME.match(url):
        return StoreURL("file", "", url)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"invalid port in store URL {parts.scheme}://…") from exc
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise ConfigurationError(f"option {name!r} is given twice in the store URL")
        options[name] = value
    return StoreURL(
        scheme=parts.scheme.lower(), netloc=parts.netloc, path=parts.path, options=options,
        username=parts.username, password=parts.password, hostname=parts.hostname, port=port,
    )
