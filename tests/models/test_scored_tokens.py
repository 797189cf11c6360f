"""The last block on the scored tokens only: the full pass's values there, with its stochastic depth."""

from __future__ import annotations

import pytest
import torch

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.blocks import Block
from vtp_lightning.models.stochastic_depth import add_residual_on_kept_samples
from vtp_lightning.models.vit import ViTConfig, ViTEncoder


def test_kept_samples_rows_get_the_scaled_branch_and_a_samples_rows_are_kept_or_dropped_together() -> None:
    torch.manual_seed(0)
    rows = torch.randn(12, 4)
    sample_of_row = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5])  # 6 samples, 2 rows each on average

    def branch(r: torch.Tensor) -> torch.Tensor:
        return 2 * r + 1

    for _ in range(30):
        out = add_residual_on_kept_samples(rows, sample_of_row, 6, branch, drop_rate=0.5, training=True)
        changed = (out != rows).any(dim=1)
        kept_samples = sample_of_row[changed].unique()
        # whole samples: every row of a kept sample changed, no row of a dropped one did
        assert torch.equal(changed, torch.isin(sample_of_row, kept_samples))
        k = len(kept_samples)
        assert k == 3  # 0.5 x 6 is whole: no random rounding
        torch.testing.assert_close(out[changed], rows[changed] + branch(rows[changed]) * (6 / k))


def test_kept_samples_expectation_is_the_no_drop_residual() -> None:
    torch.manual_seed(1)
    rows = torch.randn(7, 3)
    sample_of_row = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    draws = 4000
    mean = (
        sum(
            add_residual_on_kept_samples(rows, sample_of_row, 4, torch.tanh, drop_rate=0.3, training=True)
            for _ in range(draws)
        )
        / draws
    )
    # weight 4/k with probability k/4: mean residual tanh(rows); weights are at most 4/2 = 2, so the
    # per-entry standard error is below 2 * 1 / sqrt(4000) ~ 0.03.
    torch.testing.assert_close(mean, rows + torch.tanh(rows), atol=0.1, rtol=0)


def test_no_drop_or_eval_is_exactly_rows_plus_branch() -> None:
    rows = torch.randn(5, 3)
    index = torch.tensor([0, 1, 1, 2, 2])
    for drop, training in [(0.0, True), (0.4, False)]:
        out = add_residual_on_kept_samples(rows, index, 3, torch.sin, drop, training)
        assert torch.equal(out, rows + torch.sin(rows))


@pytest.mark.parametrize("drop_rate", [0.0, 0.5])
def test_block_on_selected_tokens_equals_the_full_block_at_those_tokens_under_the_same_draws(
    drop_rate: float,
) -> None:
    torch.manual_seed(0)
    block = Block(16, 2).train()
    x = torch.randn(6, 9, 16, requires_grad=True)
    selected = torch.rand(6, 9) < 0.3
    selected[:, 0] = True
    torch.manual_seed(5)
    full = block(x, drop_rate=drop_rate)[selected]
    torch.manual_seed(5)  # the same stochastic-depth draws: one per branch, over samples
    rows = block(x, drop_rate=drop_rate, selected=selected)
    torch.testing.assert_close(rows, full, rtol=1e-5, atol=1e-6)
    (g_full,) = torch.autograd.grad(full.square().sum(), x)
    (g_rows,) = torch.autograd.grad(rows.square().sum(), x)
    torch.testing.assert_close(g_rows, g_full, rtol=1e-4, atol=1e-6)


def test_encoder_patch_rows_give_the_full_passs_cls_and_those_patches() -> None:
    torch.manual_seed(0)
    encoder = ViTEncoder(ViTConfig(width=32, depth=3, heads=2, patch_size=4, image_size=16)).train()
    images = torch.randn(5, 3, 16, 16)
    masks = torch.rand(5, 16) < 0.25
    masks[2] = False  # a crop with no scored patch keeps only its CLS
    torch.manual_seed(3)
    full = encoder(images, masks=masks.view(5, 4, 4), drop_path_rate=0.4)
    torch.manual_seed(3)
    pruned = encoder(images, masks=masks.view(5, 4, 4), drop_path_rate=0.4, patch_rows=masks)
    assert "patch" not in pruned
    torch.testing.assert_close(pruned["cls"], full["cls"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pruned["patch_rows"], full["patch"][masks], rtol=1e-5, atol=1e-6)


def test_encoder_patch_rows_of_the_wrong_shape_are_a_config_error() -> None:
    encoder = ViTEncoder(ViTConfig(width=32, depth=2, heads=2, patch_size=4, image_size=16))
    with pytest.raises(ConfigError, match="patch_rows"):
        encoder(torch.randn(2, 3, 16, 16), patch_rows=torch.zeros(2, 15, dtype=torch.bool))
