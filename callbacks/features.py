"""Feature extractors for Fréchet distances and stable names for the real data they are computed on."""

from __future__ import annotations

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


def _describe(source: Any) -> str:
    """Class name plus the source's simple settings (paths, split): the same data gives the same text."""
    if source is None:
        return "default"
    simple = {
        k: v for k, v in sorted(vars(source).items()) if isinstance(v, str | int | float | bool) or v is None
    }
    return f"{type(source).__qualname__}{simple}"


def data_id(datamodule: Any, split: str, num_images: int) -> str:
    """A stable name for the real images the reference statistics are computed on."""
    source = datamodule.source(split) if hasattr(datamodule, "source") else None
    size = getattr(datamodule, "image_size", "?")
    seed = getattr(datamodule, "seed", 0)
    return f"{_describe(source)}|split={split}|n={num_images}|size={size}|order_seed={seed}"
