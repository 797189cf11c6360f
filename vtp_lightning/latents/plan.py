"""Which samples each rank encodes: whole shards, round-robin over ranks, finished shards skipped.

Shard ``k`` holds the contiguous source indices ``[k·S, min((k+1)·S, N))``. The shards still to do
are dealt out round-robin, so ranks never share a shard (each writes its own files) and every index
belongs to exactly one rank. The shard size is a multiple of the batch size, so a batch never spans two
shards: a resumed run forms the same batches for a shard as an uninterrupted one, and writes the same bytes.

:class:`ShardSampler` subclasses ``DistributedSampler`` so that Lightning keeps it under DDP instead of
wrapping it in its own sampler (which deals single indices round-robin).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch.utils.data import DistributedSampler

from vtp_lightning.errors import ConfigError


@dataclass(frozen=True)
class ShardPlan:
    """``num_samples`` split into shards of ``shard_size``; ``finished`` shards are already on disk."""

    num_samples: int
    shard_size: int
    finished: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ConfigError("the data source to encode is empty")
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be positive, got {self.shard_size}")

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def shard_of(self, index: int) -> int:
        return index // self.shard_size

    def indices(self, shard: int) -> range:
        start = shard * self.shard_size
        return range(start, min(start + self.shard_size, self.num_samples))

    def todo(self) -> list[int]:
        """Shards not yet on disk, in order."""
        return [k for k in range(self.num_shards) if k not in self.finished]

    def shards_of_rank(self, rank: int, world_size: int) -> list[int]:
        """The unfinished shards ``rank`` encodes (every ``world_size``-th one, starting at ``rank``)."""
        return self.todo()[rank::world_size]


class ShardSampler(DistributedSampler):
    """This rank's indices: its shards of :class:`ShardPlan`, in order, nothing repeated or padded."""

    def __init__(self, plan: ShardPlan, rank: int, world_size: int) -> None:
        super().__init__(range(plan.num_samples), num_replicas=world_size, rank=rank, shuffle=False)
        self.plan = plan
        self.own_shards = plan.shards_of_rank(rank, world_size)

    def __iter__(self) -> Iterator[int]:
        for shard in self.own_shards:
            yield from self.plan.indices(shard)

    def __len__(self) -> int:
        return sum(len(self.plan.indices(k)) for k in self.own_shards)
