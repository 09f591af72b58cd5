"""Which etcd to talk to: etcdctl's endpoint habits, shared by the CLI and ``Client``.

An endpoint list is comma-separated; each item is a URL (``http://h:2379``,
``https://h:2379``) or ``host:port`` (``127.0.0.1:2379``, ``[::1]:2379``,
``etcd1``), which gets ``https://`` when TLS options are given and
``http://`` otherwise, and port 2379 when it has none. Without an explicit
list the environment decides: ``ETCDWAMP_ENDPOINTS``, then etcdctl's own
``ETCDCTL_ENDPOINTS``, then ``http://127.0.0.1:2379``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["DEFAULT_ENDPOINT", "ENDPOINT_ENV_VARS", "EndpointError", "endpoint_texts",
           "endpoint_urls"]

DEFAULT_ENDPOINT = "http://127.0.0.1:2379"
ENDPOINT_ENV_VARS = ("ETCDWAMP_ENDPOINTS", "ETCDCTL_ENDPOINTS")
_DEFAULT_PORT = 2379


class EndpointError(ValueError):
    """An endpoint that is not a usable http(s) URL or ``host:port``."""


def endpoint_urls(spec: str | None = None, *, tls: bool = False,
                  environ: Mapping[str, str] | None = None) -> list[str]:
    """The endpoint URLs for ``spec`` (comma-separated), or for the environment if None.

    :param tls: items without a scheme get ``https://`` instead of ``http://``
    :param environ: the environment to read (default ``os.environ``)
    :raises EndpointError: an item is not a valid endpoint, or the list is empty
    """
    items, source = _items(spec, environ)
    if not items:
        return [DEFAULT_ENDPOINT]
    return [_one(item, tls, source) for item in items]


def endpoint_texts(spec: str | None = None, *, tls: bool = False,
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each URL of :func:`endpoint_urls` (same arguments) to the text the user
    wrote for it, which etcdctl echoes (``127.0.0.1:2379`` stays so); the
    default endpoint, which nobody wrote, maps to itself.

    :raises EndpointError: as :func:`endpoint_urls`
    """
    items, source = _items(spec, environ)
    if not items:
        return {DEFAULT_ENDPOINT: DEFAULT_ENDPOINT}
    texts: dict[str, str] = {}
    for item in items:
        texts.setdefault(_one(item, tls, source), item)  # the first one written wins
    return texts


def _items(spec: str | None, environ: Mapping[str, str] | None) -> tuple[list[str], str]:
    """The items of ``spec`` or of the first endpoint variable set, and where they
    came from; no items when neither is given (the default applies)."""
    source = "--endpoints"
    if spec is None:
        env = os.environ if environ is None else environ
        for name in ENDPOINT_ENV_VARS:
            if env.get(name, "").strip():
                spec, source = env[name], name
                break
        else:
            return [], source
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise EndpointError(f"{source} is empty: give host:port or URLs, comma-separated")
    return items, source


def _one(item: str, tls: bool, source: str) -> str:
    text = item if "://" in item else ("https://" if tls else "http://") + item
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise EndpointError(f"bad endpoint {item!r} in {source}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise EndpointError(f"bad endpoint {item!r} in {source}: "
                            "the scheme must be http:// or https://")
    if not parts.hostname:
        raise EndpointError(f"bad endpoint {item!r} in {source}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EndpointError(f"bad endpoint {item!r} in {source}: "
                            "give only scheme, host and port (the API path is detected)")
    if parts.username is not None or parts.password is not None:
        raise EndpointError(f"bad endpoint {item!r} in {source}: "
                            "credentials belong in --user/--password, not the URL")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port if port is not None else _DEFAULT_PORT}"
