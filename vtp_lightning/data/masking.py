"""iBOT block masks, made in the collate so the model receives them ready with the crops.

A masked sample covers a target number of patches (``ratio * h * w``, the ratio drawn uniformly from
``ratio_range``) with random rectangles of log-uniform aspect ratio, each no larger than what is
still missing, until the target is reached. Rectangles may overlap earlier ones, so masks come out as
a few connected blobs rather than per-patch noise. A fixed fraction (``probability``) of the samples
is masked; the others get all-False masks (DINOv2: ratio U(0.1, 0.5) on half of the global crops).
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from vtp_lightning.errors import ConfigError


class BlockMaskGenerator:
    """Random block masks for a ``grid_size x grid_size`` patch grid.

    Args:
        grid_size: patches per side (global crop size // patch size).
        ratio_range: ``(low, high)`` fraction of patches masked in a masked sample.
        probability: fraction of samples that are masked at all.
        min_block: smallest rectangle (in patches) while more than that is still missing.
        aspect_range: ``(low, high)`` height / width ratio of the rectangles (sampled log-uniformly).
        max_failures: attempts in a row that add nothing before a mask is accepted slightly short.
    """

    def __init__(
        self,
        grid_size: int,
        ratio_range: tuple[float, float] = (0.1, 0.5),
        probability: float = 0.5,
        min_block: int = 4,
        aspect_range: tuple[float, float] = (0.3, 1 / 0.3),
        max_failures: int = 50,
    ) -> None:
        low, high = ratio_range
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(f"mask_ratio must satisfy 0 <= low <= high <= 1, got {ratio_range}")
        if not 0.0 <= probability <= 1.0:
            raise ConfigError(f"mask_probability must be in [0, 1], got {probability}")
        if grid_size < 1:
            raise ConfigError(f"the mask grid needs at least one patch per side, got {grid_size}")
        self.grid_size = grid_size
        self.ratio_range = (float(low), float(high))
        self.probability = probability
        self.min_block = min_block
        self.log_aspect = (math.log(aspect_range[0]), math.log(aspect_range[1]))
        self.max_failures = max_failures

    @property
    def enabled(self) -> bool:
        """False when no patch would ever be masked (the batch then carries no ``masks``)."""
        return self.probability > 0 and self.ratio_range[1] > 0

    def __call__(self, num_samples: int) -> torch.Tensor:
        """Bool masks ``(num_samples, grid, grid)``; exactly ``round(probability * num_samples)`` are masked."""
        masks = np.zeros((num_samples, self.grid_size, self.grid_size), dtype=bool)
        num_masked = math.floor(self.probability * num_samples + 0.5)
        patches = self.grid_size * self.grid_size
        for i in random.sample(range(num_samples), num_masked):
            ratio = random.uniform(*self.ratio_range)
            if ratio > 0:
                masks[i] = self.block_mask(max(1, round(ratio * patches)))
        return torch.from_numpy(masks)

    def block_mask(self, target: int) -> np.ndarray:
        """One mask with (almost always exactly) ``target`` patches covered by rectangles."""
        g = self.grid_size
        mask = np.zeros((g, g), dtype=bool)
        count, failures = 0, 0
        while count < target and failures < self.max_failures:
            remaining = target - count
            area = random.uniform(min(self.min_block, remaining), remaining)
            aspect = math.exp(random.uniform(*self.log_aspect))
            h = min(g, max(1, round(math.sqrt(area * aspect))))
            w = min(g, max(1, round(math.sqrt(area / aspect))))
            top, left = random.randint(0, g - h), random.randint(0, g - w)
            added = int((~mask[top : top + h, left : left + w]).sum())
            if 0 < added <= remaining:
                mask[top : top + h, left : left + w] = True
                count += added
                failures = 0
            else:
                failures += 1
        return mask
