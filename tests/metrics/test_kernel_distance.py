"""The kernel distance is the unbiased cubic-kernel MMD of the KID paper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtp_lightning.metrics.kernel_distance import kernel_distance_with_error, unbiased_mmd2


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


def test_the_whole_set_estimate_equals_torchmetrics_kid_on_one_full_subset() -> None:
    from torchmetrics.image.kid import KernelInceptionDistance

    class Identity(torch.nn.Module):
        num_features = 12

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return features

    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(80, 12, generator=generator), torch.randn(80, 12, generator=generator) + 0.3
    kid = KernelInceptionDistance(feature=Identity(), subsets=1, subset_size=80)
    kid.update(a, real=True)
    kid.update(b, real=False)
    theirs, _ = kid.compute()

    assert kernel_distance_with_error(a, b).value == pytest.approx(float(theirs), rel=1e-5)


def test_is_about_zero_for_two_samples_of_one_distribution_and_grows_with_a_shift() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 32, generator=generator), torch.randn(400, 32, generator=generator)

    same = kernel_distance_with_error(a, b)
    small_shift = kernel_distance_with_error(a, b + 0.2)
    large_shift = kernel_distance_with_error(a, b + 0.5)

    assert abs(same.value) < 3 * same.standard_error  # unbiased: zero within its error
    assert same.value < small_shift.value - 3 * small_shift.standard_error
    assert small_shift.value < large_shift.value
