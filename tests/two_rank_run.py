"""Running a 2-rank test script in a child process: its environment, and a hang that cannot outlive the test.

The script starts rank 1 itself (Lightning's launcher re-runs it), so rank 1 is rank 0's child: the
script runs in its own process group, and a timeout kills the whole group, never just rank 0.
Imported as ``from two_rank_run import ...``: pytest puts ``tests/`` on ``sys.path`` (the root conftest
lives there).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what a launcher sets; inherited from a pytest that itself runs under one, Lightning would join that job
LAUNCHER_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR")


def launcher_free_env(**extra: str) -> dict[str, str]:
    """This process's environment with ``extra`` set, this checkout first on ``PYTHONPATH`` (the ranks
    import its packages, as the test process does) and no launcher variable."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    for variable in LAUNCHER_VARIABLES:
        env.pop(variable, None)
    return env


def run_two_ranks(command: list[str], out: Path, env: dict[str, str], timeout_s: float, what: str) -> None:
    """Run ``command`` with its output in ``out/output.log``; fail with the log's tail if it exits non-zero
    or, after killing both ranks, if it has not finished in ``timeout_s`` (``what`` names it there)."""
    log_path = out / "output.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: rank 1 is a child of rank 0
        )
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            tail = log_path.read_text()[-3000:]
            pytest.fail(f"{what} did not finish in {timeout_s} s (deadlock?); its output ends:\n{tail}")
    if returncode != 0:
        pytest.fail(f"{what} failed ({returncode}):\n{log_path.read_text()[-5000:]}")
