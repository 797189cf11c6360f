"""Latent statistics and the shard plan, without a Trainer: exact float64 moments, exact-once ownership."""

from __future__ import annotations

import pytest
import torch

from vtp_lightning.errors import ConfigError
from vtp_lightning.latents.plan import ShardPlan, ShardSampler
from vtp_lightning.latents.statistics import ChannelMoments


def test_merged_shard_moments_equal_one_float64_pass_over_everything() -> None:
    torch.manual_seed(0)
    # channels far from zero and of very different scales: a naive sum of squares would lose digits
    shards = [
        torch.randn(n, 3, 4, 4) * torch.tensor([1e-3, 1.0, 50.0]).view(1, 3, 1, 1) + 1e3 for n in (5, 1, 7)
    ]
    merged = (
        ChannelMoments.of(shards[0])
        .combine(ChannelMoments.of(shards[1]))
        .combine(ChannelMoments.of(shards[2]))
    )
    mean, std = merged.mean_std()

    everything = torch.cat(shards).double()
    torch.testing.assert_close(mean, everything.mean(dim=(0, 2, 3), keepdim=True), rtol=0, atol=1e-12)
    # float64 rounding only (the 1e-3 channel sits on an offset of 1e3: float32 maths would lose it all)
    torch.testing.assert_close(std, everything.std(dim=(0, 2, 3), keepdim=True), rtol=1e-9, atol=0)
    assert mean.shape == std.shape == (1, 3, 1, 1) and merged.count == 13 * 16


def test_moments_survive_their_text_form_bit_for_bit() -> None:
    moments = ChannelMoments.of(torch.randn(4, 2, 3, 3, dtype=torch.float64) / 3)
    again = ChannelMoments.from_text(moments.to_text())
    assert again.count == moments.count
    assert torch.equal(again.mean, moments.mean) and torch.equal(again.m2, moments.m2)


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("finished", [frozenset(), frozenset({0, 3})])
def test_ranks_cover_every_unfinished_index_exactly_once(world_size: int, finished: frozenset[int]) -> None:
    plan = ShardPlan(num_samples=23, shard_size=4, finished=finished)  # 6 shards, the last holds 3
    seen: list[int] = []
    for rank in range(world_size):
        sampler = ShardSampler(plan, rank, world_size)
        indices = list(sampler)
        assert len(indices) == len(sampler)
        seen += indices
    skipped = {i for shard in finished for i in range(4 * shard, 4 * shard + 4)}
    assert sorted(seen) == [i for i in range(23) if i not in skipped]  # no index twice, none missing


def test_a_rank_owns_whole_shards_in_order() -> None:
    sampler = ShardSampler(ShardPlan(num_samples=10, shard_size=2), rank=1, world_size=2)
    assert list(sampler) == [2, 3, 6, 7]


def test_an_empty_source_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        ShardPlan(num_samples=0, shard_size=4)
