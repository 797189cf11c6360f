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


def test_is_about_zero_for_two_samples_of_one_distribution_and_grows_with_a_shift() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 32, generator=generator), torch.randn(1000, 32, generator=generator)

    same = kernel_distance(a, b, num_subsets=10, subset_size=500)
    small_shift = kernel_distance(a, b + 0.2, num_subsets=10, subset_size=500)
    large_shift = kernel_distance(a, b + 0.5, num_subsets=10, subset_size=500)

    assert abs(same.mean) < 0.02 * small_shift.mean
    assert 0 < small_shift.mean < large_shift.mean


def test_of_a_set_with_itself_is_about_zero() -> None:
    # Slightly negative, O(1/subset_size): a point drawn into both subsets adds k(x, x) to the cross term.
    features = torch.randn(1000, 32, generator=torch.Generator().manual_seed(0))
    shifted = kernel_distance(features, features + 0.5, num_subsets=10, subset_size=500)

    same = kernel_distance(features, features, num_subsets=10, subset_size=500)

    assert abs(same.mean) < 0.05 * shifted.mean


def test_is_reproducible_for_a_fixed_seed() -> None:
    a, b = torch.randn(300, 8), torch.randn(300, 8) + 0.2

    assert kernel_distance(a, b, num_subsets=5, subset_size=100, seed=3) == kernel_distance(
        a, b, num_subsets=5, subset_size=100, seed=3
    )
