"""Shared behaviour of sources held in memory as a uint8 image array plus integer labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vtp_lightning.data.sources.base import IndexedSource, Sample
from vtp_lightning.data.templates import templated_caption
from vtp_lightning.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "test")


def check_split(split: str, source: str) -> None:
    """Reject anything but ``train`` / ``test`` with a message listing both."""
    if split not in SPLITS:
        raise ConfigError(f"{source}: unknown split {split!r}; use one of {list(SPLITS)}")


class LabelledArraySource(IndexedSource):
    """Images ``(N, H, W)`` or ``(N, H, W, 3)`` uint8 with labels ``(N,)``; captions are templated.

    Args:
        images: the uint8 image array.
        labels: integer class ids, one per image.
        class_names: names indexed by label, filled into the caption templates.
        random_templates: draw a random caption template per access (training) instead of a fixed one.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], random_templates: bool
    ) -> None:
        self._images = images
        self._labels = labels.astype(np.int64)
        self.class_names = list(class_names)
        self.random_templates = random_templates

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> Sample:
        label = int(self._labels[index])
        caption = templated_caption(self.class_names[label], index, self.random_templates)
        return Sample(image=self._images[index], caption=caption, label=label)

    def labels(self) -> Sequence[int]:
        return self._labels
