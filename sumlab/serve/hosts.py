"""The Host names a server answers to: loopback names by default, more with ``--allowed-host``.

A browser sends the name it resolved in the ``Host`` header. Checking it stops DNS rebinding: a web
page whose own name later resolves to 127.0.0.1 would otherwise reach a loopback server with the
visitor's browser. Binding to another address adds no name by itself; the operator names them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"  # DNS labels; "_" too, as container names have it
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")
_PORT = re.compile(r"[0-9]{1,5}")


def normalize_host(name: str) -> str:
    """``name`` as the allow-list keeps it: lower case, an IPv6 address without brackets.

    Raises:
        ValueError: when ``name`` is neither a DNS name nor an IP address (a port or a scheme is not allowed).
    """
    host = name.strip().lower()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{name!r} is not a host name or an IP address (give the name alone, without port or scheme)")
    return host


def allowed_hosts(extra: Iterable[str] = ()) -> frozenset[str]:
    """The loopback names and ``extra`` (``--allowed-host`` values), normalized.

    Raises:
        ValueError: for a value of ``extra`` that is not a host name or an IP address.
    """
    return frozenset(normalize_host(name) for name in (*LOOPBACK_HOSTS, *extra))


def host_of(header: str) -> str | None:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), normalized; None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        address, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and _PORT.fullmatch(port[1:]))):
            return None
        value = address
    elif value.count(":") == 1:
        value, port = value.split(":")
        if not _PORT.fullmatch(port):
            return None
    try:
        return normalize_host(value)
    except ValueError:
        return None
