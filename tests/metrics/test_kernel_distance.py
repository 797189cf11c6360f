"""The kernel distance is the unbiased cubic-kernel MMD of the KID paper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtp_lightning.metrics.kernel_distance import kernel_distance, unbiased_mmd2


def numpy_unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference, written with explicit off-diagonal masks."""
    m, d = x.shape
    kernel = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    off_diagonal = ~np.eye(m, dtype=bool)
    return float(
        kernel(x, x)[off_diagonal].mean() + kernel(y, y)[off_diagonal].mean() - 2 * kernel(x, y).mean()
    )


def test_unbiased_mmd_matches_an_independent_numpy_computation() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 10)), rng.normal(loc=0.5, size=(60, 10))

    ours = float(unbiased_mmd2(torch.from_numpy(x), torch.from_numpy(y)))

    assert ours == pytest.approx(numpy_unbiased_mmd2(x, y), rel=1e-10)


def test_is_about_zero_for_identical_sets_and_clearly_positive_for_shifted_ones() -> None:
    features = torch.randn(400, 32)

    same = kernel_distance(features, features, num_subsets=20, subset_size=200)
    shifted = kernel_distance(features, features + 0.5, num_subsets=20, subset_size=200)

    assert abs(same.mean) < 0.01 * shifted.mean
    assert shifted.mean > 10 * shifted.std / np.sqrt(20)


def test_is_reproducible_for_a_fixed_seed() -> None:
    a, b = torch.randn(300, 8), torch.randn(300, 8) + 0.2

    assert kernel_distance(a, b, num_subsets=5, subset_size=100, seed=3) == kernel_distance(
        a, b, num_subsets=5, subset_size=100, seed=3
    )
