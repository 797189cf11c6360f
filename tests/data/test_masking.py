"""iBOT block masks: configured ratio, configured fraction of masked samples, block-shaped."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from vtp_lightning.data import BlockMaskGenerator
from vtp_lightning.errors import ConfigError


def boundary_length(mask: np.ndarray) -> int:
    """Masked / unmasked neighbour pairs: small for compact blocks, large for scattered patches."""
    return int((mask[1:] != mask[:-1]).sum() + (mask[:, 1:] != mask[:, :-1]).sum())


def test_shape_dtype_and_the_fraction_of_masked_samples() -> None:
    random.seed(0)
    masks = BlockMaskGenerator(grid_size=8, ratio_range=(0.1, 0.5), probability=0.5)(200)
    assert masks.shape == (200, 8, 8) and masks.dtype == torch.bool
    masked = masks.flatten(1).any(1)
    assert masked.sum() == 100
    assert (~masks[~masked]).all()


@pytest.mark.parametrize(("low", "high"), [(0.1, 0.5), (0.3, 0.3), (0.6, 0.8)])
def test_masked_fraction_follows_the_ratio_range(low: float, high: float) -> None:
    random.seed(0)
    masks = BlockMaskGenerator(grid_size=14, ratio_range=(low, high), probability=1.0)(200)
    fractions = masks.flatten(1).float().mean(1)
    assert low - 0.02 <= fractions.min() and fractions.max() <= high + 0.02
    assert low <= fractions.mean() <= high + 0.01
    assert abs(fractions.mean() - (low + high) / 2) < 0.03


def test_masks_are_blocks_not_per_patch_noise() -> None:
    random.seed(0)
    masks = BlockMaskGenerator(grid_size=16, ratio_range=(0.2, 0.4), probability=1.0)(100).numpy()
    rng = np.random.default_rng(0)
    noise = [rng.permutation(m.ravel()).reshape(m.shape) for m in masks]
    block_edges = np.mean([boundary_length(m) for m in masks])
    noise_edges = np.mean([boundary_length(m) for m in noise])
    assert block_edges < 0.5 * noise_edges


def test_probability_zero_disables_masking() -> None:
    generator = BlockMaskGenerator(grid_size=8, probability=0.0)
    assert not generator.enabled
    assert not generator(10).any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio_range": (0.5, 0.1)}, "mask_ratio must satisfy"),
        ({"probability": 1.5}, r"mask_probability must be in \[0, 1\]"),
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BlockMaskGenerator(grid_size=8, **kwargs)
