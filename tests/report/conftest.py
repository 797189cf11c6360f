"""Fixtures for the report tests; the tree writers live in synthetic_runs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import write_fmnist_grid


@pytest.fixture
def fmnist_runs(tmp_path: Path) -> Path:
    return write_fmnist_grid(tmp_path / "runs" / "synthetic")
