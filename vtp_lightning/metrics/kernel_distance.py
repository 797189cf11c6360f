"""Kernel distance (KID when the features are Inception's): unbiased squared MMD, cubic kernel.

Unlike the Fréchet distance it is unbiased in the number of samples, so it is the better number
when only a few hundred images can be afforded (e.g. Inception on CPU). It needs the features
themselves, not just their moments. :func:`kernel_distance_with_error` uses every pair of the two
sets once and gives the estimate's standard error (the tests check it against torchmetrics' KID).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``k(x, y) = (x . y / d + 1)^3``, the kernel of the KID paper."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of squared MMD between two equally sized samples ``(m, D)``."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.mean()


@dataclass(frozen=True)
class KernelDistanceEstimate:
    """The unbiased MMD^2 of two whole feature sets and its jackknife standard error."""

    value: float
    standard_error: float


def kernel_distance_with_error(features_a: torch.Tensor, features_b: torch.Tensor) -> KernelDistanceEstimate:
    """Unbiased squared MMD (cubic kernel) of all of ``a (m, D)`` against all of ``b (n, D)``, with its SE.

    torchmetrics' ``KernelInceptionDistance`` and torch-fidelity report the mean and the *spread*
    of estimates on random subsets; that spread is not the standard error of the estimate, and the
    subsets waste samples. Here the U-statistic uses every pair once, ``m`` and ``n`` may differ,
    and the standard error is the two-sample delete-one jackknife (``(m-1)/m`` times the sum of
    squared deviations of the leave-one-``a``-out estimates, plus the same over ``b``), computed in
    closed form from kernel row sums in ``O((m + n)^2 D)``. Float64 throughout.
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"need (N, D) features of equal D, got {tuple(features_a.shape)}, {tuple(features_b.shape)}"
        )
    m, n = features_a.shape[0], features_b.shape[0]
    if min(m, n) < 3:
        raise ValueError("the kernel distance's standard error needs at least 3 samples in each set")
    a, b = features_a.to(torch.float64), features_b.to(torch.float64)
    k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    rows_aa = k_aa.sum(dim=1) - k_aa.diagonal()  # sum over j != i
    rows_bb = k_bb.sum(dim=1) - k_bb.diagonal()
    cross_a, cross_b = k_ab.sum(dim=1), k_ab.sum(dim=0)
    within_a, within_b, cross = rows_aa.sum(), rows_bb.sum(), k_ab.sum()
    value = within_a / (m * (m - 1)) + within_b / (n * (n - 1)) - 2 * cross / (m * n)
    # leave a_i out: its row and column leave the within-a sum, its row leaves the cross sum
    without_a = (
        (within_a - 2 * rows_aa) / ((m - 1) * (m - 2))
        + within_b / (n * (n - 1))
        - 2 * (cross - cross_a) / ((m - 1) * n)
    )
    without_b = (
        within_a / (m * (m - 1))
        + (within_b - 2 * rows_bb) / ((n - 1) * (n - 2))
        - 2 * (cross - cross_b) / (m * (n - 1))
    )
    variance = (m - 1) / m * (without_a - without_a.mean()).square().sum()
    variance = variance + (n - 1) / n * (without_b - without_b.mean()).square().sum()
    return KernelDistanceEstimate(value=float(value), standard_error=float(variance.sqrt()))
