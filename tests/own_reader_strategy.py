"""A strategy that reads checkpoints its own way, as Lightning's FSDP does: with Lightning's lazy
unpickler (``_lazy_load``, FSDP's reader for a full checkpoint), which imports any class the file names.

FSDP needs a GPU, so the CLI test stands this single-device strategy in for it: it bypasses the
checkpoint IO plugin exactly where FSDP does, in ``load_checkpoint``.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.load import _lazy_load, _materialize_tensors
from lightning.pytorch.strategies import SingleDeviceStrategy


class OwnReaderStrategy(SingleDeviceStrategy):
    def __init__(self) -> None:
        super().__init__(device="cpu")

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> Any:
        return _materialize_tensors(_lazy_load(checkpoint_path))
