"""Print a final summary table when fit ends: loss terms at the start vs the end, the evaluation
metrics, and how the wall time split between training and evaluation.

It is also written as ``summary.json`` in the run directory, so scripts (and the README's figures)
read the same numbers a person sees.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from callbacks.evaluation import EvaluationCallback, run_directory


class TrainingSummary(Callback):
    """Collects per-step loss terms and prints start/end means plus the evaluation results.

    Args:
        window: steps averaged at the start and at the end of training for the loss comparison.
    """

    def __init__(self, window: int = 20) -> None:
        super().__init__()
        self.window = window
        self._history: dict[str, list[float]] = defaultdict(list)
        self._start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        for key, value in trainer.callback_metrics.items():
            if key.startswith("train/loss"):
                self._history[key].append(float(value))

    def summary(self, trainer: pl.Trainer) -> dict[str, Any]:
        losses = {}
        for key, values in sorted(self._history.items()):
            n = max(1, min(self.window, len(values) // 4 or 1))
            losses[key] = {"start": sum(values[:n]) / n, "end": sum(values[-n:]) / n, "steps": len(values)}
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
            "wall_time_s": total,
            "evaluation_time_s": eval_seconds,
            "evaluation_share": eval_seconds / total if total > 0 else 0.0,
            "evaluation_time_by_callback_s": {type(cb).__name__: cb.seconds_spent for cb in evaluations},
        }

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
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
    lines.append(
        f"wall time {summary['wall_time_s']:.1f} s, of which evaluation {summary['evaluation_time_s']:.1f} s "
        f"({100 * summary['evaluation_share']:.1f}%)"
    )
    return "\n".join(lines)
