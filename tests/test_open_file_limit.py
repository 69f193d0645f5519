"""memoturnd lifts its soft open-file limit to the hard one (a hot database holds four descriptors)."""

from __future__ import annotations

import resource
import subprocess
import sys


def test_the_soft_limit_is_raised_to_the_hard_one():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    code = (
        "import resource; from memoturn.server.main import raise_open_file_limit; "
        "print(raise_open_file_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run(
        ["bash", "-c", f"ulimit -Sn 256 && exec {sys.executable} -c '{code}'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    expected = hard if hard != resource.RLIM_INFINITY else max(256, 1 << 20)
    assert [int(x) for x in out] == [expected, expected, hard]
