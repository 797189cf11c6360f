"""Items to encode for ``lightning predict``: every sample of a source, in source order, with its index.

The index is what makes prediction exact-once under DDP and resumable (the latent writer places each
sample in its shard by index and drops an index it has seen). An unreadable image is an error naming
the file, never skipped or substituted: a hole or a stand-in would shift every later sample's place.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from vtp_lightning.data.datasets import readable
from vtp_lightning.data.sources.base import IndexedSource
from vtp_lightning.data.views import ReconstructionView, to_normalized_batch


class PredictItems(Dataset):
    """``{"image" (3, S, S) normalised, "label" (-1 when none), "index"}`` for source index ``index``."""

    def __init__(self, source: IndexedSource, view: ReconstructionView) -> None:
        self.source, self.view = source, view

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = readable(self.source[index])
        return {
            "image": to_normalized_batch([self.view(sample.image)])[0],
            "label": torch.tensor(sample.label, dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
        }
