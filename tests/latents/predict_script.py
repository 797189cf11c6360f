"""Run ``lightning predict`` in its own process: ``predict_script.py ARGS_JSON [KILL_AFTER_BATCHES]``.

Under DDP Lightning re-runs this script for rank 1. With a batch count the process SIGKILLs itself after
that many batches: a real kill, not an exception (no ``finally`` or Lightning teardown runs), as when a
job is pre-empted. The killer comes after the LatentWriter, which has already taken the batch.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from lightning.pytorch import Callback


class KillAfter(Callback):
    """SIGKILL the process at the end of predict batch number ``batches`` (1-based)."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def on_predict_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx + 1 == self.batches:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    from vtp_lightning.cli import main

    args = json.loads(sys.argv[1])
    if len(sys.argv) > 2:
        killer = {"class_path": "__main__.KillAfter", "init_args": {"batches": int(sys.argv[2])}}
        args.append(f"--trainer.callbacks+={json.dumps(killer)}")
    sys.exit(main(args))
