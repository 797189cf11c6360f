"""Build a feature extractor by name, the way configs and callbacks ask for one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vtp_lightning.errors import ConfigError
from vtp_lightning.metrics.feature_extractor import FeatureExtractor
from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor
from vtp_lightning.metrics.inception import InceptionFeatureExtractor

_EXTRACTORS: dict[str, Callable[[str | Path | None], FeatureExtractor]] = {
    "inception": InceptionFeatureExtractor,
    "fmnist": FashionMNISTFeatureExtractor,
}


def available_feature_extractors() -> list[str]:
    return sorted(_EXTRACTORS)


def build_feature_extractor(name: str, weights: str | Path | None = None) -> FeatureExtractor:
    """``"inception"`` (needs a weights file, argument or ``VTP_INCEPTION_WEIGHTS``) or ``"fmnist"``
    (weights ship with the package; ``weights`` overrides them)."""
    if name not in _EXTRACTORS:
        raise ConfigError(
            f"unknown feature extractor {name!r}; choose one of {available_feature_extractors()}"
        )
    return _EXTRACTORS[name](weights)
