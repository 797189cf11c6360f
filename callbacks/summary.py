"""Print a final summary table when fit ends: loss terms at the start vs the end, the evaluation
metrics, and how the wall time split between training and evaluation.

It is also written as ``summary.json`` in the run directory, so scripts (and the README's figures)
read the same numbers a person sees. With ``data.skip_corrupt`` it reports the skipped samples of the
whole run and names the first few files, each once, as counted by the always-on
:class:`~vtp_lightning.always_on.SkippedSamples` (which also logs them, with or without this summary).

What it collects is checkpointed, so a resumed run's summary still starts at step 0.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from callbacks.evaluation import EvaluationCallback, run_directory
from vtp_lightning.always_on import SkippedSamples


class TrainingSummary(Callback):
    """Collects per-step loss terms and prints start/end means plus the evaluation results.

    Args:
        window: steps averaged at the start and at the end of training for the loss comparison.
        skipped_names: how many distinct skipped files to name (the count covers all of them).
    """

    def __init__(self, window: int = 20, skipped_names: int = 5) -> None:
        super().__init__()
        self.window, self.max_skipped_names = window, skipped_names
        self._first: dict[str, list[float]] = defaultdict(list)  # the first `window` values
        self._last: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=self.window))
        self._steps: dict[str, int] = defaultdict(int)
        self._skipped: tuple[int, list[str]] = (0, [])  # over every rank, once fit ends
        self._start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        for key, value in trainer.callback_metrics.items():
            if key.startswith("train/loss"):
                self._record(key, float(value))

    def _record(self, key: str, value: float) -> None:
        if len(self._first[key]) < self.window:
            self._first[key].append(value)
        self._last[key].append(value)
        self._steps[key] += 1

    def summary(self, trainer: pl.Trainer) -> dict[str, Any]:
        losses = {}
        for key in sorted(self._steps):
            steps = self._steps[key]
            n = max(1, min(self.window, steps // 4 or 1))
            first, last = self._first[key][:n], list(self._last[key])[-n:]
            losses[key] = {"start": sum(first) / len(first), "end": sum(last) / len(last), "steps": steps}
        evaluations = [cb for cb in trainer.callbacks if isinstance(cb, EvaluationCallback)]
        metrics: dict[str, float] = {}
        for cb in evaluations:
            metrics.update(cb.last_results)
        total = time.perf_counter() - self._start
        eval_seconds = sum(cb.seconds_spent for cb in evaluations)
        return {
            "global_step": trainer.global_step,
            "losses": losses,
            "metrics": metrics,
            "skipped_samples": self._skipped[0],
            "skipped_files": self._skipped[1][: self.max_skipped_names],
            "wall_time_s": total,
            "evaluation_time_s": eval_seconds,
            "evaluation_share": eval_seconds / total if total > 0 else 0.0,
            "evaluation_time_by_callback_s": {type(cb).__name__: cb.seconds_spent for cb in evaluations},
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "first": {k: list(v) for k, v in self._first.items()},
            "last": {k: list(v) for k, v in self._last.items()},
            "steps": dict(self._steps),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key, values in state_dict.get("first", {}).items():
            self._first[key] = list(values)
        for key, values in state_dict.get("last", {}).items():
            self._last[key].extend(values)
        self._steps.update(state_dict.get("steps", {}))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._gather_skipped(trainer)
        self._write(trainer)

    def _gather_skipped(self, trainer: pl.Trainer) -> None:
        """Every rank skips its own samples: the summary counts and names those of all ranks."""
        counter = next((cb for cb in trainer.callbacks if isinstance(cb, SkippedSamples)), None)
        if counter is not None:  # (a module that is not this suite's may not supply one)
            self._skipped = counter.gathered(trainer)

    @rank_zero_only
    def _write(self, trainer: pl.Trainer) -> None:
        summary = self.summary(trainer)
        (run_directory(trainer) / "summary.json").write_text(json.dumps(summary, indent=2))
        print(format_summary(summary))


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"\n== vtp-lightning summary (step {summary['global_step']}) =="]
    if summary["losses"]:
        lines.append(f"{'loss term':<28}{'start':>12}{'end':>12}")
        for key, row in summary["losses"].items():
            lines.append(f"{key:<28}{row['start']:>12.4f}{row['end']:>12.4f}")
    if summary["metrics"]:
        lines.append(f"{'evaluation':<28}{'value':>12}")
        for key, value in sorted(summary["metrics"].items()):
            lines.append(f"{key:<28}{value:>12.4f}")
    if summary.get("skipped_samples"):
        names = summary.get("skipped_files") or []
        lines.append(
            f"skipped {summary['skipped_samples']} unreadable samples (skip_corrupt), from: {', '.join(names)}"
        )
    lines.append(
        f"wall time {summary['wall_time_s']:.1f} s, of which evaluation {summary['evaluation_time_s']:.1f} s "
        f"({100 * summary['evaluation_share']:.1f}%)"
    )
    return "\n".join(lines)
