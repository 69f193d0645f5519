"""``HOST:PORT`` parsing, once, for every listen address and endpoint Memoturn is given.

Accepts ``host:port``, ``[v6addr]:port`` and, for endpoints, a leading ``scheme://`` and a
trailing ``/``. A bad value raises :class:`ValueError` with a one-line message that names the
setting, which configuration validators and CLIs show as they are.
"""

from __future__ import annotations


def parse_host_port(text: str, *, what: str = "address", allow_scheme: bool = False) -> tuple[str, int]:
    """``(host, port)`` from ``text``; ``what`` names the setting in the error message."""
    value = text.strip()
    if allow_scheme:
        value = value.split("://", 1)[-1].rstrip("/")
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be HOST:PORT with a port in 1-65535, got {text!r}")
    return host, int(port)
