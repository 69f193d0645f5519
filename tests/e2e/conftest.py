"""The e2e suite's cluster choice (:mod:`support.testcluster`): its own control plane unless
``MEMOTURN_E2E_KUBECONFIG`` (or ``MEMOTURN_E2E_EXTERNAL=1`` with ``KUBECONFIG``) names another one.
Tests marked ``own_cluster(reason)`` are skipped on an external cluster, and listed with the reason."""

from __future__ import annotations

import pytest
from support.testcluster import external_kubeconfig

_SKIPPED: list[tuple[str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "own_cluster(reason): needs the suite's own control plane and node agent; skipped on an external one"
    )


def pytest_report_header(config: pytest.Config) -> str:
    kubeconfig = external_kubeconfig()
    return f"e2e cluster: external, kubeconfig {kubeconfig}" if kubeconfig else "e2e cluster: the suite's own"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not external_kubeconfig():
        return
    for item in items:
        marker = item.get_closest_marker("own_cluster")
        if marker is None:
            continue
        reason = marker.args[0] if marker.args else "needs the suite's own cluster"
        item.add_marker(pytest.mark.skip(reason=f"own cluster only: {reason}"))
        _SKIPPED.append((item.nodeid, reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SKIPPED:
        terminalreporter.section("skipped on the external cluster (own cluster only)")
        for nodeid, reason in _SKIPPED:
            terminalreporter.write_line(f"{nodeid}: {reason}")
