"""``memoturnd``: run one node (with no configuration, the embedded default) over HTTP or HTTPS."""

from __future__ import annotations

import argparse
import logging
import resource
import sys

from pydantic import ValidationError

from ..config import Settings, settings_error
from ..serving import serve
from ..tls import TLSError, client_context, server_files


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one, as Go programs do at start.

    A hot database holds four descriptors (its file, WAL and shared memory through SQLite, and
    the WAL again for capture), so the default hot budget of 1,000 needs about 4,000: more than
    the 1,024 soft limit some runtimes give. Returns the limit now in force."""
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == infinity or (hard != infinity and soft >= hard):
        return soft
    target = hard if hard != infinity else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft  # the node still runs, with fewer hot databases at once
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="memoturnd", description="Memoturn data-plane node")
    parser.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:7411, env MEMOTURN_LISTEN)")
    parser.add_argument("--data-dir", help="data directory (env MEMOTURN_DATA_DIR)")
    parser.add_argument(
        "--store",
        help="file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix (env MEMOTURN_STORE_URL)",
    )
    parser.add_argument("--durability", choices=["standard", "durable"])
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(
            listen=args.listen, data_dir=args.data_dir, store_url=args.store, durability=args.durability
        )
    except ValidationError as exc:
        print(f"memoturnd: invalid setting: {settings_error(exc)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        tls = server_files(settings.tls_cert_file, settings.tls_key_file)
        if tls is not None:
            tls.context()  # unreadable or mismatched files stop the start, in one line
        client_context(settings.node_ca_file)
    except TLSError as exc:
        print(f"memoturnd: {exc}", file=sys.stderr)
        return 2

    from ..errors import MemoturnError
    from ..storage.store.cloud_url import redact
    from .api.app import create_app
    from .node import Node

    raise_open_file_limit()
    try:
        node = Node(settings).start()
    except MemoturnError as exc:
        print(f"memoturnd: cannot start: {exc.detail}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"memoturnd: cannot start: {exc}", file=sys.stderr)
        return 2
    host, port = settings.listen_address
    if not settings.admin_token:
        print("memoturnd: auth is OFF (set MEMOTURN_ADMIN_TOKEN to require bearer tokens)", file=sys.stderr, flush=True)
    scheme = "https" if tls else "http"
    print(
        f"memoturnd {settings.node_id} listening on {scheme}://{settings.listen} "
        f"(store {redact(settings.resolved_store_url)}, durability {settings.durability}, "
        f"leases {'etcd ' + settings.etcd_endpoints if settings.etcd_endpoints else 'in-process'}, "
        f"API docs {scheme}://{settings.listen}/docs)",
        flush=True,
    )
    serve(
        create_app(node),
        host,
        port,
        tls,
        settings.http_server,
        log_level=args.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
