"""Collates: from a list of samples to the batch dicts of ``docs/CONTRACTS.md``.

The training collate builds every view, so a DataLoader worker does all the image work for its
batch: the reconstruction view for every row, DINO multi-crop for a random subset of
``ssl_batch_size`` rows only (the paper trains SSL on 4k of 16k rows: no crops are cut for the
others), iBOT block masks for the global crops, and the caption tokens.

Skipped samples: with ``skip_corrupt`` the datasets hand an ``Unreadable`` (or ``None``) for an
unreadable sample; the collate drops it and reports how many it dropped as ``batch["skipped"]`` (a
long scalar tensor) and which as ``batch["skipped_names"]`` (a list of file names), both present only
with ``skip_corrupt``; :class:`callbacks.TrainingSummary` adds them up over the run. Such a batch
has fewer rows.

Randomness: a batch fetched by :class:`~vtp_lightning.data.resumable.SeededBatches` carries its seed,
and the collate draws its crops, flips and masks under it (so a resumed run rebuilds the same batch).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch

from vtp_lightning.data.masking import BlockMaskGenerator
from vtp_lightning.data.resumable import seeded_random
from vtp_lightning.data.sources.base import Sample
from vtp_lightning.data.tokenizer import CaptionTokenizer
from vtp_lightning.data.views import MultiCropView, ReconstructionView, to_normalized_batch
from vtp_lightning.errors import DataError


class TrainCollate:
    """Build the training batch ``{image, text, label[, global_crops, local_crops, masks, skipped]}``.

    Args:
        view: the reconstruction / CLIP view for every row.
        tokenizer: caption tokenizer.
        multicrop: the multi-crop view; ``None`` turns multi-crop (and masks) off.
        masks: block-mask generator for the global crops; ``None`` or disabled means no ``masks`` key.
        ssl_batch_size: rows that get multi-crop views (``None``: all rows; capped at the batch size).
        report_skipped: add ``batch["skipped"]``.
    """

    def __init__(
        self,
        view: ReconstructionView,
        tokenizer: CaptionTokenizer,
        multicrop: MultiCropView | None = None,
        masks: BlockMaskGenerator | None = None,
        ssl_batch_size: int | None = None,
        report_skipped: bool = False,
    ) -> None:
        self.view, self.tokenizer = view, tokenizer
        self.multicrop, self.masks = multicrop, masks
        self.ssl_batch_size = ssl_batch_size
        self.report_skipped = report_skipped

    def __call__(self, items: Sequence[Any]) -> dict[str, Any]:
        seed = getattr(items, "seed", None)
        with seeded_random(f"{seed}/collate") if seed is not None else nullcontext():
            return self._collate(items)

    def _collate(self, items: Sequence[Any]) -> dict[str, Any]:
        samples = [s for s in items if isinstance(s, Sample)]
        if not samples:
            raise DataError(f"all {len(items)} samples of a batch were unreadable; check the data source")
        batch: dict[str, Any] = {
            "image": to_normalized_batch([self.view(s.image) for s in samples]),
            "text": self.tokenizer([s.caption for s in samples]),
            "label": torch.tensor([s.label for s in samples], dtype=torch.long),
        }
        if self.multicrop is not None:
            batch.update(self._ssl_views(samples))
        if self.report_skipped:
            batch["skipped"] = torch.tensor(len(items) - len(samples), dtype=torch.long)
            batch["skipped_names"] = [getattr(s, "where", "?") for s in items if not isinstance(s, Sample)]
        return batch

    def _ssl_views(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        assert self.multicrop is not None
        rows = len(samples) if self.ssl_batch_size is None else min(self.ssl_batch_size, len(samples))
        index = sorted(random.sample(range(len(samples)), rows))
        crops = [self.multicrop(samples[i].image) for i in index]
        n_global, n_local = self.multicrop.NUM_GLOBAL, self.multicrop.num_local
        views: dict[str, torch.Tensor] = {"global_crops": _stack_views([c[0] for c in crops], n_global)}
        if n_local > 0:
            views["local_crops"] = _stack_views([c[1] for c in crops], n_local)
        if self.masks is not None and self.masks.enabled:
            grid = self.masks.grid_size
            views["masks"] = self.masks(n_global * rows).view(n_global, rows, grid, grid)
        return views


def _stack_views(per_row: list[list[Any]], num_views: int) -> torch.Tensor:
    """Crops listed per row -> tensor ``(num_views, rows, 3, H, W)``."""
    flat = [row[v] for v in range(num_views) for row in per_row]
    stacked = to_normalized_batch(flat)
    return stacked.view(num_views, len(per_row), *stacked.shape[1:])


class EvalCollate:
    """Stack evaluation items into ``{image, label, text}``, dropping ``None`` items."""

    def __init__(self, tokenizer: CaptionTokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: Sequence[dict[str, Any] | None]) -> dict[str, torch.Tensor]:
        kept = [item for item in items if item is not None]
        if not kept:
            raise DataError(f"all {len(items)} samples of an evaluation batch were unreadable")
        batch = {
            "image": torch.stack([item["image"] for item in kept]),
            "label": torch.stack([item["label"] for item in kept]),
        }
        if "caption" in kept[0]:
            batch["text"] = self.tokenizer([item["caption"] for item in kept])
        return batch
