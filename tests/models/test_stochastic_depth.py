"""Stochastic depth on kept rows: kept rows match the full computation, the expectation is the no-drop block."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vtp_lightning.models.blocks import Block
from vtp_lightning.models.stochastic_depth import add_residual_on_kept_rows, kept_row_count


def _plain_block(block: Block, x: torch.Tensor) -> torch.Tensor:
    """The block with no stochastic depth, written out from its parts."""
    x = x + block.attn(block.norm1(x), None, 0)
    return x + block.mlp(block.norm2(x))


def test_kept_rows_equal_the_no_drop_branch_scaled_and_dropped_rows_pass_through() -> None:
    torch.manual_seed(0)
    block = Block(16, 2).train()
    x = torch.randn(10, 7, 16)
    full_branch = block.attention_branch(x, None, 0)
    for _ in range(20):
        out = add_residual_on_kept_rows(x, lambda r: block.attention_branch(r, None, 0), 0.35, training=True)
        dropped = torch.isclose(out, x, atol=0, rtol=0).flatten(1).all(dim=1)
        kept = (~dropped).sum().item()
        # 0.65 * 10 = 6.5 rows on average: 6 or 7 of them run the branch.
        assert kept in (6, 7)
        expected = x[~dropped] + full_branch[~dropped] * (10 / kept)
        torch.testing.assert_close(out[~dropped], expected, rtol=1e-5, atol=1e-5)


def test_kept_row_count_rounds_at_random_to_the_expected_fraction() -> None:
    torch.manual_seed(1)
    draws = torch.tensor([kept_row_count(8, 0.1) for _ in range(4000)], dtype=torch.float64)
    assert set(draws.unique().tolist()) == {7.0, 8.0}
    # Bernoulli(0.2) on top of 7: mean 7.2, standard error sqrt(0.16 / 4000).
    assert abs(draws.mean().item() - 7.2) < 5 * math.sqrt(0.16 / 4000)
    assert kept_row_count(4, 0.99) == 1  # never an empty batch
    assert kept_row_count(4, 0.0) == 4


def _draw_stats(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])


@pytest.mark.parametrize("drop_rate", [0.3, 0.7])
def test_output_and_gradient_expectations_equal_the_no_drop_computation(drop_rate: float) -> None:
    """Means over many draws lie within 5 standard errors (derived from the draws' variance) of no-drop."""
    torch.manual_seed(2)
    branch = nn.Sequential(nn.Linear(6, 6), nn.Tanh())
    x = torch.randn(5, 3, 6)
    probe = torch.randn(5, 3, 6)  # a fixed random linear read-out, so every element gets a gradient

    def run(rate: float, training: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xi = x.clone().requires_grad_(True)
        out = add_residual_on_kept_rows(xi, branch, rate, training)
        branch.zero_grad()
        (out * probe).sum().backward()
        return out.detach(), xi.grad.clone(), branch[0].weight.grad.clone()

    exact = run(0.0, True)
    draws = [run(drop_rate, True) for _ in range(3000)]
    for i, name in enumerate(("output", "input gradient", "weight gradient")):
        mean, stderr = _draw_stats(torch.stack([d[i] for d in draws]))
        bound = 5 * stderr + 1e-6
        assert ((mean - exact[i]).abs() <= bound).all(), f"{name} expectation differs from the no-drop one"
        # The draws really vary (the test could not pass by never dropping).
        assert stderr.max() > 1e-4


def test_drop_rate_zero_is_exactly_the_plain_block() -> None:
    torch.manual_seed(3)
    block = Block(16, 2).train()
    x = torch.randn(4, 9, 16)
    assert torch.equal(block(x, drop_rate=0.0), _plain_block(block, x))


def test_eval_mode_never_drops() -> None:
    torch.manual_seed(4)
    block = Block(16, 2).eval()
    x = torch.randn(6, 9, 16)
    expected = _plain_block(block, x)
    for _ in range(5):
        assert torch.equal(block(x, drop_rate=0.9), expected)


def test_training_block_with_drop_runs_fewer_rows_through_its_branches() -> None:
    torch.manual_seed(5)
    block = Block(16, 2).train()
    seen: list[int] = []
    block.mlp.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].shape[0]))
    block(torch.randn(20, 5, 16), drop_rate=0.5)
    assert seen and seen[0] == 10
