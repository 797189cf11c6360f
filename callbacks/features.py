"""Feature extractors for Fréchet distances and stable names for the real data they are computed on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from vtp_lightning.metrics import FeatureExtractor, build_feature_extractor


class ExtractorHolder:
    """Lazily builds the named extractor (``fmnist`` or ``inception``) and moves it to the device."""

    def __init__(self, name: str, weights: str | None) -> None:
        self.name, self.weights = name, weights
        self._extractor: FeatureExtractor | None = None

    def get(self, device: torch.device) -> FeatureExtractor:
        if self._extractor is None:
            self._extractor = build_feature_extractor(self.name, self.weights)
            self._extractor.freeze()
        return self._extractor.to(device)


_SCALAR = (str, int, float, bool, type(None), Path)


def _describe(source: Any) -> str:
    """Class name plus the source's simple settings (paths, split): the same data gives the same text.

    Paths count as settings (as text), and so do public lists of them (e.g. WebDataset shard URLs,
    as a digest): two folders or shard sets must never share reference statistics.
    """
    if source is None:
        return "default"
    simple: dict[str, Any] = {}
    for key, value in sorted(vars(source).items()):
        if isinstance(value, list | tuple) and not key.startswith("_"):
            if not all(isinstance(item, _SCALAR) for item in value):
                continue
            text = json.dumps([item if item is None else str(item) for item in value])
            value = f"{len(value)} items, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}"
        elif not isinstance(value, _SCALAR):
            continue
        simple[key] = str(value) if isinstance(value, Path) else value
    return f"{type(source).__qualname__}{simple}"


def data_id(datamodule: Any, split: str, num_images: int) -> str:
    """A stable name for the real images the reference statistics are computed on."""
    source = datamodule.source(split) if hasattr(datamodule, "source") else None
    size = getattr(datamodule, "image_size", "?")
    seed = getattr(datamodule, "seed", 0)
    return f"{_describe(source)}|split={split}|n={num_images}|size={size}|order_seed={seed}"
