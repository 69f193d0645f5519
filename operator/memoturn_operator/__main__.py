"""``memoturn-operator``: ``kopf run`` with the Memoturn handlers loaded.

Every option is kopf's (``--all-namespaces``, ``--namespace``, ``--peering NAME``,
``--standalone``, ``--liveness URL``, ``--verbose``, ...); see ``memoturn-operator --help``.
Settings of its own come from the environment (:mod:`.settings`): ``MEMOTURN_OPERATOR_RESYNC_SECONDS`` (how often
each tenant is reconciled and scaled, default 10), ``MEMOTURN_OPERATOR_SCALE_COOLDOWN_SECONDS``
(least time between two scaling steps, default 60), ``MEMOTURN_OPERATOR_BRANCH_CHECK_SECONDS``
(how often burner branches are checked for expiry, default 5),
``MEMOTURN_OPERATOR_REAPPLY_SECONDS`` (longest time an unchanged tenant goes without its
objects being re-applied, default 300) and
``MEMOTURN_OPERATOR_METRICS_LISTEN`` (``HOST:PORT`` for Prometheus metrics; unset: none).

With ``--peering`` and no ``--priority``, each process takes a random priority: kopf pauses
*every* replica that sees a live peer of the same priority, so equal priorities (kopf's
default, 0) would leave two replicas both idle; distinct ones leave exactly one acting.
"""

from __future__ import annotations

import secrets
import sys


def main(argv: list[str] | None = None) -> int:
    from kopf.cli import main as kopf_main

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        args = ["--help"]
    peering = any(a in ("-P", "--peering") or a.startswith("--peering=") for a in args)
    if peering and not any(a in ("-p", "--priority") or a.startswith("--priority=") for a in args):
        args += ["--priority", str(1 + secrets.randbelow(1_000_000))]
    kopf_main(args=["run", "--module", "memoturn_operator.handlers", *args], prog_name="memoturn-operator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
