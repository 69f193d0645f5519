"""CI smoke of the Locust load test: a short, bounded run against a local cluster, no errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_locust_smoke_runs_every_operation_without_errors(tmp_path):
    out = tmp_path / "lt"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.run",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--duration",
            "20s",
            "--smoke",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == 0 and summary["requests"] > 50
    assert set(summary["operations"]) == {
        "memory_write",
        "recall",
        "kv_put",
        "kv_get",
        "doc_insert",
        "doc_query",
        "fork_burner",
    }
    assert summary["operations"]["kv_get"]["requests"] > summary["operations"]["fork_burner"]["requests"]
    assert (out / "locust.html").exists() and (out / "locust_stats.csv").exists()
