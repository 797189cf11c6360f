"""The Fréchet distance is the textbook formula, evaluated exactly (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from vtp_lightning.metrics.feature_statistics import FeatureStatistics
from vtp_lightning.metrics.frechet import frechet_distance, frechet_distance_from_statistics


def scipy_frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: numpy moments and scipy's general matrix square root."""
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root, _ = scipy.linalg.sqrtm(cov_x @ cov_y, disp=False)
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(root.real))


@pytest.mark.parametrize("dim", [8, 64])
def test_matches_an_independent_scipy_computation(dim: int) -> None:
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(500, dim))
    y = rng.normal(loc=0.3, size=(400, dim)) @ rng.normal(scale=0.5, size=(dim, dim))

    ours = frechet_distance_from_statistics(
        FeatureStatistics.from_features(torch.from_numpy(x)),
        FeatureStatistics.from_features(torch.from_numpy(y)),
    )

    assert ours == pytest.approx(scipy_frechet_distance(x, y), rel=1e-8)


def test_matches_torchmetrics_fid_on_the_same_features() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):
        num_features = 16

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return features

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=generator, dtype=torch.float64)
    y = torch.randn(300, 16, generator=generator, dtype=torch.float64) * 0.8 + 0.2
    fid = FrechetInceptionDistance(feature=Identity())
    fid.update(x, real=True)
    fid.update(y, real=False)

    ours = frechet_distance_from_statistics(
        FeatureStatistics.from_features(x), FeatureStatistics.from_features(y)
    )

    assert ours == pytest.approx(float(fid.compute()), rel=1e-5)


def test_of_a_set_with_itself_is_zero() -> None:
    features = torch.randn(300, 32, generator=torch.Generator().manual_seed(0))
    stats = FeatureStatistics.from_features(features)

    assert frechet_distance_from_statistics(stats, stats) == pytest.approx(0.0, abs=1e-9)


def test_is_symmetric_and_handles_singular_covariances() -> None:
    generator = torch.Generator().manual_seed(0)
    low_rank_a = torch.randn(50, 3, generator=generator) @ torch.randn(
        3, 20, generator=generator
    )  # rank 3 in 20-d
    low_rank_b = torch.randn(50, 3, generator=generator) @ torch.randn(3, 20, generator=generator)
    a, b = FeatureStatistics.from_features(low_rank_a), FeatureStatistics.from_features(low_rank_b)

    forward, backward = frechet_distance_from_statistics(a, b), frechet_distance_from_statistics(b, a)

    # Zero eigenvalues come out as +-1e-15 and their square roots as ~1e-8: agreement to 1e-6.
    assert forward == pytest.approx(backward, rel=1e-6)
    assert forward > 0


def test_of_two_known_gaussians_is_the_closed_form() -> None:
    # N(0, I) vs N(m, 4I) in d dims: |m|^2 + d + 4d - 2 * 2d = |m|^2 + d.
    d = 5
    mean_b = torch.full((d,), 2.0, dtype=torch.float64)
    distance = frechet_distance(torch.zeros(d, dtype=torch.float64), torch.eye(d), mean_b, 4 * torch.eye(d))

    assert distance == pytest.approx(4.0 * d + d)


def test_rejects_statistics_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
