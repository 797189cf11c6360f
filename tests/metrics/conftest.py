"""Shared fixtures: real embedded Fashion-MNIST images (read straight from the npz) and the
shipped fmnist extractor, built once per session because every sensitivity test uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor

EMBEDDED_NPZ = (
    Path(__file__).resolve().parents[2] / "vtp_lightning" / "data" / "assets" / "fashion_mnist_slice.npz"
)


def images01_from_grey(grey_uint8: np.ndarray) -> torch.Tensor:
    """``(N, 28, 28)`` uint8 -> ``(N, 3, 28, 28)`` float in ``[0, 1]``."""
    return torch.from_numpy(grey_uint8).float().div(255).unsqueeze(1).repeat(1, 3, 1, 1)


@pytest.fixture(scope="session")
def fmnist_test_split() -> tuple[torch.Tensor, torch.Tensor]:
    """All 2000 embedded test images in ``[0, 1]`` and their labels."""
    with np.load(EMBEDDED_NPZ) as data:
        return images01_from_grey(data["test_images"]), torch.from_numpy(data["test_labels"]).long()


@pytest.fixture(scope="session")
def fmnist_extractor() -> FashionMNISTFeatureExtractor:
    return FashionMNISTFeatureExtractor()
