"""Streaming first and second moments of a feature set, the input of every Fréchet distance.

Callbacks see images batch by batch. Keeping the raw sums (sum, sum of outer products, count) in
float64 instead of a running mean makes batches add up exactly and lets a cache file store them;
the mean and covariance are only formed at the end. (Under DDP the callbacks gather features
before this, so every rank computes the same statistics.)
"""

from __future__ import annotations

import torch

from vtp_lightning.errors import NonFiniteError


class FeatureStatistics:
    """Accumulates ``sum x``, ``sum x x^T`` and ``n`` for features of a fixed dimension."""

    def __init__(self, feature_dim: int, device: torch.device | str | None = None) -> None:
        self.feature_dim = feature_dim
        self.feature_sum = torch.zeros(feature_dim, dtype=torch.float64, device=device)
        self.outer_sum = torch.zeros(feature_dim, feature_dim, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    @classmethod
    def from_features(cls, features: torch.Tensor) -> FeatureStatistics:
        """One-shot statistics of a ``(N, D)`` feature matrix."""
        stats = cls(features.shape[1], device=features.device)
        stats.update(features)
        return stats

    @classmethod
    def from_tensors(
        cls, feature_sum: torch.Tensor, outer_sum: torch.Tensor, count: torch.Tensor | float
    ) -> FeatureStatistics:
        """Rebuild statistics from the tensors of :meth:`tensors` (e.g. read from a cache file)."""
        stats = cls(feature_sum.shape[0], device=feature_sum.device)
        stats.feature_sum = feature_sum.to(torch.float64).clone()
        stats.outer_sum = outer_sum.to(torch.float64).clone()
        stats.count = torch.as_tensor(count, dtype=torch.float64, device=feature_sum.device).clone()
        return stats

    def update(self, features: torch.Tensor) -> None:
        """Add a batch of features ``(B, D)``."""
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(
                f"expected features of shape (B, {self.feature_dim}), got {tuple(features.shape)}"
            )
        x = features.detach().to(device=self.feature_sum.device, dtype=torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteError(
                "features for the Fréchet statistics hold NaN or infinity: the model (or its generated "
                "images) diverged; evaluate an earlier checkpoint"
            )
        # Out of place, so statistics made under inference mode can be updated outside it and back.
        self.feature_sum = self.feature_sum + x.sum(dim=0)
        self.outer_sum = self.outer_sum + x.T @ x
        self.count = self.count + x.shape[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        """The raw sums, by name: what a cache file or a checkpoint stores."""
        return {"feature_sum": self.feature_sum, "outer_sum": self.outer_sum, "count": self.count}

    @property
    def num_samples(self) -> int:
        return int(self.count.item())

    def mean(self) -> torch.Tensor:
        """Feature mean, float64 ``(D,)``."""
        self._require_samples(1)
        return self.feature_sum / self.count

    def covariance(self) -> torch.Tensor:
        """Unbiased (``n - 1``) feature covariance, float64 ``(D, D)``, as ``numpy.cov`` computes it."""
        self._require_samples(2)
        mean = self.mean()
        covariance = (self.outer_sum - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return (covariance + covariance.T) / 2

    def _require_samples(self, minimum: int) -> None:
        if self.num_samples < minimum:
            raise ValueError(f"feature statistics need at least {minimum} samples, have {self.num_samples}")
