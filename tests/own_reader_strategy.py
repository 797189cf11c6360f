"""A strategy that reads checkpoints its own way, unpickling anything (as Lightning's FSDP does).

FSDP needs a GPU, so the CLI test stands this single-device strategy in for it: it bypasses the
checkpoint IO plugin exactly where FSDP does, in ``load_checkpoint``.
"""

from __future__ import annotations

import pickle
import zipfile
from typing import Any

from lightning.pytorch.strategies import SingleDeviceStrategy


class OwnReaderStrategy(SingleDeviceStrategy):
    def __init__(self) -> None:
        super().__init__(device="cpu")

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> Any:
        with zipfile.ZipFile(checkpoint_path) as archive:
            pickled = next(name for name in archive.namelist() if name.endswith("data.pkl"))
            return pickle.loads(archive.read(pickled))  # noqa: S301 - the unsafe reader under test
