"""Feature extractors for Fréchet distances and stable names for the real data they are computed on."""

from __future__ import annotations

import torch

from vtp_lightning.metrics import FeatureExtractor, build_feature_extractor
from vtp_lightning.metrics.reference_statistics import data_id

__all__ = ["ExtractorHolder", "data_id"]  # data_id lives with the cache it keys


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
