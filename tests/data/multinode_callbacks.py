"""Callbacks the two-node test passes to the real CLI (``class_path: multinode_callbacks.…``).

The test's shard samples are uniform grey images whose grey level is the sample's number, which
survives crops, flips and resizing: the recorder reads each batch's sample numbers from its pixels.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


class SampleKeyRecorder(pl.Callback):
    """Appends ``{"rank", "epoch", "step", "keys"}`` per training batch to ``<folder>/keys-rank<r>.jsonl``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        grey01 = batch["image"][:, 0].float().mul(0.5).add(0.5)  # the suite normalises with mean = std = 0.5
        keys = [round(float(image.mean()) * 255) for image in grey01]
        record = {"rank": trainer.global_rank, "epoch": trainer.current_epoch, "step": trainer.global_step}
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"keys-rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps({**record, "keys": keys}) + "\n")


class KillAtStep(pl.Callback):
    """SIGKILLs its own process (a node going down) when global rank ``rank`` starts step ``step``."""

    def __init__(self, step: int, rank: int) -> None:
        self.step, self.rank = step, rank

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
