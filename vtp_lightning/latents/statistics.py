"""Per-channel latent statistics, exact in float64 and streaming: per-shard moments combined in shard order.

Each shard's moments (count, mean, sum of squared deviations) are computed from its own latents in
float64 with two passes, so no large sums cancel; shards are merged with Chan et al.'s pairwise update,
always in shard order, so the result does not depend on how many ranks wrote the shards. ``std`` is the
unbiased (N - 1) standard deviation over every position of every image, as ``torch.std(dim=[0, 2, 3])``
(what LightningDiT's ``ImgLatentDataset`` computes when it has no statistics file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ChannelMoments:
    """``count`` values per channel, their float64 ``mean`` (C,) and summed squared deviations ``m2`` (C,)."""

    count: int
    mean: torch.Tensor
    m2: torch.Tensor

    @classmethod
    def of(cls, latents: torch.Tensor) -> ChannelMoments:
        """Moments of ``latents`` (N, C, H, W) per channel, in float64."""
        values = latents.detach().to(torch.float64).transpose(0, 1).reshape(latents.shape[1], -1)
        mean = values.mean(dim=1)
        m2 = ((values - mean[:, None]) ** 2).sum(dim=1)
        return cls(values.shape[1], mean, m2)

    def combine(self, other: ChannelMoments) -> ChannelMoments:
        """The moments of both sets together (Chan, Golub and LeVeque's pairwise update)."""
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return ChannelMoments(count, mean, m2)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean`` and unbiased ``std`` in float64, shaped ``(1, C, 1, 1)``."""
        std = (self.m2 / (self.count - 1)).sqrt()
        return self.mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    def to_text(self) -> str:
        """Exact text form (floats as hex) for a shard file's metadata."""
        return json.dumps(
            {
                "count": self.count,
                "mean": [float(v).hex() for v in self.mean.tolist()],
                "m2": [float(v).hex() for v in self.m2.tolist()],
            }
        )

    @classmethod
    def from_text(cls, text: str) -> ChannelMoments:
        data = json.loads(text)
        to_tensor = lambda values: torch.tensor([float.fromhex(v) for v in values], dtype=torch.float64)  # noqa: E731
        return cls(int(data["count"]), to_tensor(data["mean"]), to_tensor(data["m2"]))
