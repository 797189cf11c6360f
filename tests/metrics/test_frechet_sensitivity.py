"""On real images and the shipped fmnist extractor, the distance behaves like a quality metric:
zero for the same set, growing with every step of added noise or blur."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from vtp_lightning.metrics.feature_statistics import FeatureStatistics
from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor
from vtp_lightning.metrics.frechet import frechet_distance_from_statistics
from vtp_lightning.metrics.reference_statistics import compute_feature_statistics

NUM_IMAGES = 1000


@pytest.fixture(scope="module")
def real_images(fmnist_test_split: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return fmnist_test_split[0][:NUM_IMAGES]


@pytest.fixture(scope="module")
def real_statistics(
    fmnist_extractor: FashionMNISTFeatureExtractor, real_images: torch.Tensor
) -> FeatureStatistics:
    return compute_feature_statistics(fmnist_extractor, real_images.split(500))


def distance_to(
    extractor: FashionMNISTFeatureExtractor, reference: FeatureStatistics, images: torch.Tensor
) -> float:
    return frechet_distance_from_statistics(
        reference, compute_feature_statistics(extractor, images.split(500))
    )


def test_distance_of_real_images_to_themselves_is_zero(
    fmnist_extractor, real_images, real_statistics
) -> None:
    assert distance_to(fmnist_extractor, real_statistics, real_images) == pytest.approx(0.0, abs=1e-6)


def test_distance_grows_monotonically_with_noise(fmnist_extractor, real_images, real_statistics) -> None:
    noise = torch.randn(real_images.shape, generator=torch.Generator().manual_seed(0))
    distances = [
        distance_to(fmnist_extractor, real_statistics, (real_images + sigma * noise).clamp(0, 1))
        for sigma in (0.05, 0.1, 0.2, 0.4)
    ]

    assert distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_distance_grows_monotonically_with_blur(fmnist_extractor, real_images, real_statistics) -> None:
    distances = [
        distance_to(fmnist_extractor, real_statistics, gaussian_blur(real_images, kernel_size=9, sigma=sigma))
        for sigma in (0.5, 1.0, 1.5, 2.5)
    ]

    assert distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_two_real_halves_are_close_next_to_heavy_noise(
    fmnist_extractor, fmnist_test_split, real_statistics
) -> None:
    other_real = fmnist_test_split[0][NUM_IMAGES:]
    noisy = (
        other_real + 0.4 * torch.randn(other_real.shape, generator=torch.Generator().manual_seed(1))
    ).clamp(0, 1)

    real_vs_real = distance_to(fmnist_extractor, real_statistics, other_real)

    assert real_vs_real < 0.2 * distance_to(fmnist_extractor, real_statistics, noisy)
