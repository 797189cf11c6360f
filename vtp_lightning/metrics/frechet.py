"""Fréchet distance between two Gaussians fitted to feature sets (FID when the features are Inception's).

``FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``.

The trace of the matrix square root is taken from eigenvalues instead of ``scipy.linalg.sqrtm``:
with ``R = S_a^(1/2)`` (symmetric, from ``eigh``), ``S_a S_b`` is similar to the symmetric PSD
matrix ``R S_b R``, so ``tr((S_a S_b)^(1/2)) = sum sqrt(eig(R S_b R))``. Two symmetric
eigendecompositions in float64 are faster than ``sqrtm`` and never return a complex result
for singular covariances (few samples, dead features), where ``sqrtm`` needs an epsilon hack.

Not torchmetrics' ``FrechetInceptionDistance``: it keeps the moments inside a Metric, while the
callbacks need them as values (an on-disk reference cache, the 1/N extrapolation in
``generation_scores``); the tests check this distance against torchmetrics' on the same features.
"""

from __future__ import annotations

import torch

from vtp_lightning.metrics.feature_statistics import FeatureStatistics


def _symmetric_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T


def trace_sqrt_product(cov_a: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    """``tr((cov_a cov_b)^(1/2))`` for symmetric PSD matrices, in float64."""
    root_a = _symmetric_sqrt(cov_a.to(torch.float64))
    middle = root_a @ cov_b.to(torch.float64) @ root_a
    eigenvalues = torch.linalg.eigvalsh((middle + middle.T) / 2)
    return eigenvalues.clamp_min(0).sqrt().sum()


def frechet_distance(
    mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor
) -> float:
    """Fréchet distance between ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)``, computed in float64.

    Everything is moved to ``mean_a``'s device, so cached CPU reference statistics can meet
    statistics accumulated on a GPU.
    """
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape:
        raise ValueError(
            f"statistics differ in shape: means {tuple(mean_a.shape)} vs {tuple(mean_b.shape)}, "
            f"covariances {tuple(cov_a.shape)} vs {tuple(cov_b.shape)}"
        )
    device = mean_a.device
    mean_a, mean_b = mean_a.to(device, torch.float64), mean_b.to(device, torch.float64)
    cov_a, cov_b = cov_a.to(device, torch.float64), cov_b.to(device, torch.float64)
    mean_term = (mean_a - mean_b).square().sum()
    distance = mean_term + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt_product(cov_a, cov_b)
    # Round-off can push a zero distance slightly below 0; a distance is never negative.
    return max(float(distance), 0.0)


def frechet_distance_from_statistics(stats_a: FeatureStatistics, stats_b: FeatureStatistics) -> float:
    """Fréchet distance between two accumulated feature sets."""
    return frechet_distance(stats_a.mean(), stats_a.covariance(), stats_b.mean(), stats_b.covariance())
