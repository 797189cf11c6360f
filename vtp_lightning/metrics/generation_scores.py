"""Scores of generated samples against real images, sized for a few hundred samples.

* ``fd``: the Fréchet distance of the sample and reference features at the sizes used. It is
  biased upwards at small N, roughly by ``c / N`` (Chong & Forsyth 2020, "Effectively Unbiased FID").
* ``fd_inf``: the bias removed as they propose: the distance is measured on random subsets of
  both sets at several fractions of their size, a line is fitted to it against ``1 / N`` and
  read off at ``1 / N = 0``. ``fd_bias = fd - fd_inf`` states the bias at the N used.
* ``kd`` and ``kd_se``: the unbiased kernel distance (KID's statistic) of the whole sets and its
  jackknife standard error, the metric's own noise to set against differences between tokenizers.
* ``class_agreement``: how often a classifier names the class each sample was conditioned on
  (Fashion-MNIST's network on the embedded data; real held-out images score about 0.9).

Subset draws use a generator seeded by the protocol seed, so scores are reproducible bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vtp_lightning.metrics.feature_statistics import FeatureStatistics
from vtp_lightning.metrics.frechet import frechet_distance_from_statistics
from vtp_lightning.metrics.kernel_distance import kernel_distance_with_error

FD_FRACTIONS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Fractions of both sets the Fréchet distance is measured at for the 1/N extrapolation."""
FD_DRAWS_PER_FRACTION = 3


@dataclass(frozen=True)
class GenerationScores:
    fd: float
    fd_inf: float
    fd_bias: float
    kd: float
    kd_se: float
    num_samples: int
    num_reference: int
    feature_dim: int
    class_agreement: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def frechet(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance of two feature sets (float64)."""
    stats_a = FeatureStatistics.from_features(features_a.double())
    stats_b = FeatureStatistics.from_features(features_b.double())
    return frechet_distance_from_statistics(stats_a, stats_b)


def frechet_infinity(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    generator: torch.Generator,
    fractions: Sequence[float] = FD_FRACTIONS,
    draws: int = FD_DRAWS_PER_FRACTION,
) -> tuple[float, float]:
    """``(fd at the full sizes, fd extrapolated to infinitely many samples)``.

    At each fraction ``f`` random subsets of ``f`` times both sizes are drawn (``draws`` times; the
    full sets once) and a least-squares line ``fd = fd_inf + slope / n_a`` is fitted.
    """
    m, n = features_a.shape[0], features_b.shape[0]
    inverse_sizes, distances = [], []
    for fraction in fractions:
        size_a, size_b = max(2, round(fraction * m)), max(2, round(fraction * n))
        repeats = 1 if (size_a, size_b) == (m, n) else draws
        for _ in range(repeats):
            subset_a = torch.randperm(m, generator=generator)[:size_a].to(features_a.device)
            subset_b = torch.randperm(n, generator=generator)[:size_b].to(features_b.device)
            inverse_sizes.append(1.0 / size_a)
            distances.append(frechet(features_a[subset_a], features_b[subset_b]))
    full = frechet(features_a, features_b)
    if len(set(inverse_sizes)) < 2:
        return full, full
    _, intercept = np.polyfit(np.asarray(inverse_sizes), np.asarray(distances), deg=1)
    return full, float(intercept)


def class_agreement(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose predicted class is the class they were generated for."""
    if logits.shape[0] != labels.shape[0] or logits.shape[0] == 0:
        raise ValueError(f"{logits.shape[0]} predictions for {labels.shape[0]} labels")
    return float((logits.argmax(dim=1).cpu() == labels.cpu()).double().mean())


def score_samples(
    sample_features: torch.Tensor,
    reference_features: torch.Tensor,
    generator: torch.Generator,
    sample_logits: torch.Tensor | None = None,
    sample_labels: torch.Tensor | None = None,
) -> GenerationScores:
    """Every score of generated ``sample_features (N, D)`` against ``reference_features (M, D)``."""
    fd, fd_inf = frechet_infinity(sample_features, reference_features, generator)
    kernel = kernel_distance_with_error(sample_features, reference_features)
    agreement = None
    if sample_logits is not None and sample_labels is not None:
        agreement = class_agreement(sample_logits, sample_labels)
    return GenerationScores(
        fd=fd,
        fd_inf=fd_inf,
        fd_bias=fd - fd_inf,
        kd=kernel.value,
        kd_se=kernel.standard_error,
        num_samples=sample_features.shape[0],
        num_reference=reference_features.shape[0],
        feature_dim=sample_features.shape[1],
        class_agreement=agreement,
    )
