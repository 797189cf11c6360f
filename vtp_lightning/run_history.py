"""A CSV logger whose ``metrics.csv`` survives a resume into the same run folder.

Lightning's CSVLogger deletes an existing ``metrics.csv`` when it starts, so a run resumed into its
own folder loses every row before the checkpoint. :class:`ResumedCSVLogger` keeps the rows logged
before the checkpoint's step (later ones belong to the interrupted tail that training repeats) and
appends the resumed run's rows to them.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _ContinuedWriter(ExperimentWriter):
    def __init__(self, log_dir: str, resume_step: int) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Keep the rows before the resume step (instead of deleting the file) and their columns."""
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = [row for row in reader if _step(row) < self.resume_step]
        temp = f"{path}.tmp"
        with open(temp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temp, path)
        self.metrics_keys = sorted(columns)
        if columns != self.metrics_keys:  # Lightning appends in sorted column order
            self._rewrite_with_new_header(self.metrics_keys)


def _step(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class ResumedCSVLogger(CSVLogger):
    """CSVLogger that continues the ``metrics.csv`` of a run resumed at ``resume_step``."""

    def __init__(self, *args: Any, resume_step: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuedWriter(self.log_dir, self.resume_step)
        return self._experiment
