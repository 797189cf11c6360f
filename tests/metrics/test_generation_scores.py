"""Scores for a few hundred samples: unbiased kernel distance with its standard error, the Fréchet
distance with its small-sample bias extrapolated away, and class agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtp_lightning.metrics.generation_scores import class_agreement, frechet_infinity, score_samples
from vtp_lightning.metrics.kernel_distance import kernel_distance_with_error


def numpy_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic kernel, written with explicit off-diagonal masks (sizes may differ)."""
    d = x.shape[1]
    kernel = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    k_xx, k_yy = kernel(x, x), kernel(y, y)
    off_x, off_y = ~np.eye(len(x), dtype=bool), ~np.eye(len(y), dtype=bool)
    return float(k_xx[off_x].mean() + k_yy[off_y].mean() - 2 * kernel(x, y).mean())


def numpy_jackknife_se(x: np.ndarray, y: np.ndarray) -> float:
    """The two-sample delete-one jackknife by brute force: recompute without each point in turn."""
    m, n = len(x), len(y)
    without_x = np.array([numpy_mmd2(np.delete(x, i, axis=0), y) for i in range(m)])
    without_y = np.array([numpy_mmd2(x, np.delete(y, j, axis=0)) for j in range(n)])
    variance = (m - 1) / m * ((without_x - without_x.mean()) ** 2).sum()
    variance += (n - 1) / n * ((without_y - without_y.mean()) ** 2).sum()
    return float(np.sqrt(variance))


def test_the_kernel_distance_and_its_jackknife_match_a_brute_force_computation() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(25, 6)), rng.normal(loc=0.4, size=(31, 6))  # unequal sizes on purpose

    estimate = kernel_distance_with_error(torch.from_numpy(x), torch.from_numpy(y))

    assert estimate.value == pytest.approx(numpy_mmd2(x, y), rel=1e-10)
    assert estimate.standard_error == pytest.approx(numpy_jackknife_se(x, y), rel=1e-8)


def test_the_standard_error_matches_the_spread_of_repeated_estimates() -> None:
    generator = torch.Generator().manual_seed(0)
    values, errors = [], []
    for _ in range(300):
        a = torch.randn(80, 4, generator=generator, dtype=torch.float64)
        b = torch.randn(80, 4, generator=generator, dtype=torch.float64) + 0.5
        estimate = kernel_distance_with_error(a, b)
        values.append(estimate.value)
        errors.append(estimate.standard_error)
    observed = float(np.std(values, ddof=1))
    assert np.mean(errors) == pytest.approx(observed, rel=0.2)


def test_extrapolating_in_one_over_n_removes_most_of_the_frechet_bias() -> None:
    """Two samples of one Gaussian: the true distance is 0, the plain estimate is biased by ~c/N."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(400, 16, generator=generator, dtype=torch.float64)
    b = torch.randn(400, 16, generator=generator, dtype=torch.float64)

    fd, fd_inf = frechet_infinity(a, b, torch.Generator().manual_seed(1))

    assert fd > 0.1  # about d^2 / N-ish for d = 16, N = 400
    assert abs(fd_inf) < 0.3 * fd


def test_with_a_real_difference_the_extrapolation_lands_near_the_true_distance() -> None:
    generator = torch.Generator().manual_seed(2)
    shift = torch.zeros(8, dtype=torch.float64)
    shift[0] = 1.5  # true Fréchet distance of N(0, I) and N(shift, I): |shift|^2 = 2.25
    a = torch.randn(600, 8, generator=generator, dtype=torch.float64)
    b = torch.randn(600, 8, generator=generator, dtype=torch.float64) + shift

    fd, fd_inf = frechet_infinity(a, b, torch.Generator().manual_seed(3))

    assert abs(fd_inf - 2.25) < abs(fd - 2.25) + 0.05
    assert fd_inf == pytest.approx(2.25, abs=0.25)


def test_class_agreement_counts_predictions_equal_to_the_conditioning_label() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    assert class_agreement(logits, torch.tensor([0, 1, 2, 0])) == 0.5
    with pytest.raises(ValueError):
        class_agreement(logits, torch.tensor([0, 1]))


def test_scores_are_reproducible_for_a_generator_seed_and_record_the_sizes() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(120, 5, generator=generator), torch.randn(90, 5, generator=generator) + 0.3

    first = score_samples(a, b, torch.Generator().manual_seed(4))
    again = score_samples(a, b, torch.Generator().manual_seed(4))

    assert first == again
    assert (first.num_samples, first.num_reference, first.feature_dim) == (120, 90, 5)
    assert first.fd_bias == pytest.approx(first.fd - first.fd_inf)
    assert first.class_agreement is None
