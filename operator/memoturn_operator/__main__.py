"""``memoturn-operator``: ``kopf run`` with the Memoturn handlers loaded.

Every option is kopf's (``--all-namespaces``, ``--namespace``, ``--peering NAME``,
``--standalone``, ``--liveness URL``, ``--verbose``, ...); see ``memoturn-operator --help``.
Settings of its own come from the environment: ``MEMOTURN_OPERATOR_RESYNC_SECONDS`` (how often
each tenant is reconciled and scaled, default 10), ``MEMOTURN_OPERATOR_SCALE_COOLDOWN_SECONDS``
(least time between two scaling steps, default 60), ``MEMOTURN_OPERATOR_BRANCH_CHECK_SECONDS``
(how often burner branches are checked for expiry, default 5) and
``MEMOTURN_OPERATOR_METRICS_LISTEN`` (``HOST:PORT`` for Prometheus metrics; unset: none).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from kopf.cli import main as kopf_main

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        args = ["--help"]
    kopf_main(args=["run", "--module", "memoturn_operator.handlers", *args], prog_name="memoturn-operator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
