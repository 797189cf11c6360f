"""Who reads which shard: splitting streaming data over DDP ranks and DataLoader workers.

Every (rank, worker) pair is one *consumer*. Shards are dealt to ranks round-robin, then to the
rank's workers; when a rank has fewer shards than workers, its workers read all of the rank's shards
and keep every ``num_workers``-th sample instead. Either way every sample is read by exactly one
consumer per pass, and consumers never overlap.

Equal batch counts on every rank (which DDP needs, or the ranks deadlock at the end of an epoch)
cannot be guaranteed by splitting alone, because shards can hold different numbers of samples: the
streaming source therefore takes ``samples_per_epoch`` and then cycles through its shards until each
consumer has produced exactly its quota (:meth:`StreamPartition.quota`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import get_worker_info

from vtp_lightning.errors import DataError


@dataclass(frozen=True)
class StreamPartition:
    """The position of one consumer: its DDP rank and its DataLoader worker."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def select(self, shards: Sequence[str]) -> tuple[list[str], int, int]:
        """Return ``(shards to read, sample stride, sample offset)`` for this consumer."""
        if len(shards) < self.world_size:
            raise DataError(
                f"{len(shards)} shard(s) cannot be split over {self.world_size} DDP ranks; "
                "provide at least one shard per rank (split the data into more tar files)"
            )
        rank_shards = list(shards[self.rank :: self.world_size])
        if len(rank_shards) >= self.num_workers:
            return rank_shards[self.worker :: self.num_workers], 1, 0
        return rank_shards, self.num_workers, self.worker

    def quota(self, samples_per_epoch: int) -> int:
        """This consumer's share of ``samples_per_epoch``; equal over ranks, so batch counts match."""
        per_rank = samples_per_epoch // self.world_size
        return per_rank // self.num_workers + int(self.worker < per_rank % self.num_workers)


def current_partition(rank: int | None = None, world_size: int | None = None) -> StreamPartition:
    """The calling consumer's partition; call it inside ``__iter__`` (i.e. inside the worker).

    ``rank`` and ``world_size`` default to the initialised process group, then to the ``RANK`` /
    ``WORLD_SIZE`` environment variables that torchrun and Lightning set, then to a single process.
    """
    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = get_worker_info()
    worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return StreamPartition(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)


def fresh_seed() -> int:
    """A seed drawn from torch's RNG: different per worker and per epoch, reproducible under a seed."""
    return int(torch.randint(0, 2**62, ()).item())
