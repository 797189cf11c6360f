"""Who reads which shard: splitting streaming data over DDP ranks and DataLoader workers.

Every (rank, worker) pair is one *consumer*. Shards are dealt to ranks round-robin, then to the
rank's workers; when a rank has fewer shards than workers, its workers read all of the rank's shards
and keep every ``num_workers``-th sample instead. Either way every sample is read by exactly one
consumer per pass, and consumers never overlap.

Equal batch counts on every rank (which DDP needs, or the ranks deadlock at the end of an epoch)
cannot be guaranteed by splitting alone, because shards can hold different numbers of samples: the
streaming source therefore takes ``samples_per_epoch`` and then cycles through its shards until each
consumer has produced exactly its quota (:meth:`StreamPartition.quota`).

Resuming mid-epoch needs two more things, both here: each consumer's order as a function of the run's
seed, the epoch and its place (:func:`consumer_seed`), and which worker built which of an epoch's
batches (:func:`worker_turns`), so that the resumed workers can pass over exactly the samples the
consumed batches held (:mod:`vtp_lightning.data.resumable_stream`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

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


def consumer_seed(seed: int, epoch: int, partition: StreamPartition) -> int:
    """The shuffle seed of one consumer in one epoch: a function of the run's seed and the consumer's
    place only, so a resumed run reads each consumer's stream in the order the uninterrupted run did."""
    text = f"vtp-stream/{seed}/{epoch}/{partition.rank}/{partition.world_size}"
    text += f"/{partition.worker}/{partition.num_workers}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def worker_turns(num_workers: int, worker_batches: Sequence[int] | None = None) -> Iterator[int]:
    """The worker that builds each batch of an epoch, in the order a DataLoader hands them out.

    A DataLoader over an iterable dataset asks its workers for batches in turn and hands them out in
    that order; a worker whose stream has ended is asked no more. ``worker_batches``: how many batches
    each worker's stream holds this epoch (``None``: without end).
    """
    workers = max(1, num_workers)
    left = list(worker_batches) if worker_batches is not None else None
    while left is None or any(left):
        for worker in range(workers):
            if left is None or left[worker] > 0:
                if left is not None:
                    left[worker] -= 1
                yield worker


def batches_per_worker(
    consumed: int, num_workers: int, worker_batches: Sequence[int] | None = None
) -> list[int]:
    """How many of the first ``consumed`` batches of an epoch each worker built (see :func:`worker_turns`)."""
    taken = [0] * max(1, num_workers)
    for worker in islice(worker_turns(num_workers, worker_batches), consumed):
        taken[worker] += 1
    return taken


def next_turn(consumed: int, num_workers: int, worker_batches: Sequence[int] | None = None) -> int:
    """The worker that builds batch ``consumed`` (0 when the epoch has no such batch)."""
    return next(islice(worker_turns(num_workers, worker_batches), consumed, None), 0)
