"""Fixtures for the report tests; the tree writers live in synthetic_runs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import write_fmnist_grid

from vtp_lightning.report import Report, build_report


@pytest.fixture
def fmnist_runs(tmp_path: Path) -> Path:
    return write_fmnist_grid(tmp_path / "runs" / "synthetic")


@pytest.fixture(scope="module")
def fmnist_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One report built for the tests that only read it (drawing takes seconds on 2 cores)."""
    return build_report(write_fmnist_grid(tmp_path_factory.mktemp("runs") / "synthetic"))
