"""A training DataLoader that a resumed run continues exactly where its checkpoint left off.

Two things make a batch: which samples (the shuffled order) and how they are augmented (Python's
``random`` in the views, masks, crops and caption templates). Both are made functions of the batch's
place in training, so a checkpoint only has to record that place:

* the order of epoch ``e`` is a permutation seeded by ``(seed, e)`` (:class:`EpochShuffle`; under DDP
  Lightning swaps in a ``DistributedSampler``, whose order is seeded the same way);
* batch ``k`` of epoch ``e`` on rank ``r`` is fetched and collated with Python's ``random`` seeded by
  ``(seed, e, r, k)`` (:class:`SeededBatches`), in whichever process, worker or not, builds it — and
  the process's own ``random`` state is put back afterwards.

:class:`ResumableDataLoader` is stateful in Lightning's sense (``state_dict`` / ``load_state_dict``):
the checkpoint stores the epoch and how many of its batches training has consumed, and after a
restore the first epoch skips those batches (indices only, no image is read). Which batches were
consumed comes from the trainer's progress, not from the loader, because the loader runs ahead of
training (Lightning prefetches a batch, workers prefetch more).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler

#: one entry of a seeded batch: (sample index, seed of the batch's randomness)
SeededKey = tuple[int, str]


@contextmanager
def seeded_random(seed: str) -> Iterator[None]:
    """Python's ``random`` seeded with ``seed`` inside the block, and its previous state restored after."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


class EpochShuffle(Sampler[int]):
    """A random order of ``range(n)`` per epoch, seeded by ``(seed, epoch)``; Lightning sets the epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.randperm(self.n, generator=generator).tolist()


class SeededBatches(BatchSampler):
    """Batches of ``(index, batch_seed)`` keys over ``sampler``, able to skip the first batches of an epoch.

    Its signature is BatchSampler's (plus ``seed``), so Lightning can rebuild it around a
    ``DistributedSampler`` under DDP.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool, seed: int = 0) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.seed = seed
        self.skip = 0  # batches of the next epoch already consumed before a restore

    def batch_seed(self, position: int) -> str:
        epoch = getattr(self.sampler, "epoch", 0)
        rank = getattr(self.sampler, "rank", 0)
        return f"vtp-batch/{self.seed}/{epoch}/{rank}/{position}"

    def __iter__(self) -> Iterator[list[SeededKey]]:
        skip, self.skip = self.skip, 0
        for position, indices in enumerate(super().__iter__()):
            if position < skip:
                continue
            seed = self.batch_seed(position)
            yield [(index, seed) for index in indices]


class ResumableDataLoader(DataLoader):
    """A DataLoader over :class:`SeededBatches` whose state is the epoch and the consumed batches.

    Args:
        consumed: returns how many batches of the current epoch training has consumed (the trainer's
            progress), or ``None`` without a trainer: then the batches the loader handed out count.
        (the rest: DataLoader's arguments; ``batch_sampler`` must be a :class:`SeededBatches`)
    """

    def __init__(self, *args: Any, consumed: Callable[[], int | None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumed = consumed
        self._handed_out = 0  # position in the epoch of the next batch this loader hands out

    def __iter__(self) -> Iterator[Any]:
        self._handed_out = self._seeded_batches().skip
        for batch in super().__iter__():
            self._handed_out += 1
            yield batch

    def _seeded_batches(self) -> SeededBatches:
        if not isinstance(self.batch_sampler, SeededBatches):
            raise TypeError(f"{type(self).__name__} needs a SeededBatches batch sampler")
        return self.batch_sampler

    def state_dict(self) -> dict[str, int]:
        batches = self._seeded_batches()
        consumed = self.consumed() if self.consumed is not None else None
        position = self._handed_out if consumed is None else consumed
        return {"epoch": int(getattr(batches.sampler, "epoch", 0)), "position": int(position)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        batches = self._seeded_batches()
        set_epoch = getattr(batches.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(state_dict["epoch"])
        # a checkpoint at the end of an epoch resumes with the next, which Lightning starts from 0
        batches.skip = state_dict["position"] if state_dict["position"] < len(batches) else 0
        self._handed_out = batches.skip


def seeded_fetch(fetch: Callable[[int], Any], keys: Sequence[SeededKey | int]) -> list[Any]:
    """``[fetch(i) ...]`` for a batch of keys, under the batch's seed when the keys carry one."""
    if keys and isinstance(keys[0], tuple):
        seed = keys[0][1]
        with seeded_random(f"{seed}/items"):
            return SeededItems((fetch(index) for index, _ in keys), seed)
    return [fetch(index) for index in keys]


class SeededItems(list):
    """A fetched batch that remembers its seed, so the collate can draw its own seeded randomness."""

    def __init__(self, items: Any, seed: str) -> None:
        super().__init__(items)
        self.seed = seed


def global_seed(default: int = 0) -> int:
    """The run's seed: ``seed_everything``'s (Lightning exports it as ``PL_GLOBAL_SEED``), else ``default``."""
    return int(os.environ.get("PL_GLOBAL_SEED", default))


def seed_training_step(step: int) -> None:
    """Seed torch's global RNG from (run seed, step), so randomness inside a training step (e.g.
    stochastic depth) is a function of the step: a resumed run draws what the uninterrupted one drew,
    whatever evaluations or data loaders consumed from the stream in between."""
    torch.manual_seed((global_seed() * 1_000_003 + step) % (2**63))
