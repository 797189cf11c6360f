"""A streaming (WebDataset) training loader that a resumed run continues where its checkpoint left off.

What a streaming epoch guarantees (tests: ``tests/data/test_resumable_stream.py`` and the two-node run
in ``tests/test_multinode.py``):

* **Each sample once per epoch** when ``samples_per_epoch`` is the number of samples, the shards split
  evenly over ranks x workers (:mod:`vtp_lightning.data.sharding`) and each consumer's share is a
  whole number of batches (a worker drops its last partial batch). Otherwise each consumer reads its
  share of ``samples_per_epoch``, cycling through its shards, and a pass never repeats a sample before
  every other sample of the consumer has come (:class:`~vtp_lightning.data.WebDatasetShards`).
* **Resume**: the order of consumer (rank, worker) in epoch ``e`` is seeded by ``(seed, e, rank,
  worker)`` (:func:`~vtp_lightning.data.sharding.consumer_seed`); the checkpoint records the epoch
  and how many batches training consumed (the trainer's progress, as for indexed sources), and the
  resumed epoch's workers pass over the samples those batches held (undecoded), so the resumed run
  sees the remaining samples of the epoch, none twice and none left out. This holds for the same
  number of nodes, devices and workers as the checkpointed run; with other numbers the consumers'
  shares differ and the resumed epoch restarts its stream instead.
* Not restored: the augmentations (crops, flips, masks) of a streamed sample are drawn from each
  worker's own seed, so a resumed run sees the same samples, not the same crops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from vtp_lightning.data.datasets import StreamingTrainItems


class ResumableStreamLoader(DataLoader):
    """A DataLoader over :class:`StreamingTrainItems` whose state is the epoch and the consumed batches.

    Args:
        dataset: the streaming training items.
        seed: the run's seed (``seed_everything``): with the epoch it fixes every consumer's order.
        epoch: returns the epoch about to be iterated (the trainer's ``current_epoch``; ``None`` without
            a trainer: then the loader counts its own passes).
        consumed: returns how many batches of the current epoch training has consumed (the trainer's
            progress), or ``None`` without a trainer: then the batches the loader handed out count.
        (the rest: DataLoader's arguments; workers are not persistent, so each epoch's workers get
        the epoch and the batches to skip)
    """

    def __init__(
        self,
        dataset: StreamingTrainItems,
        *args: Any,
        seed: int = 0,
        epoch: Callable[[], int | None] | None = None,
        consumed: Callable[[], int | None] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["persistent_workers"] = False
        super().__init__(dataset, *args, **kwargs)
        self.seed, self.epoch_of, self.consumed = seed, epoch, consumed
        self._passes = 0  # epochs iterated without a trainer
        self._epoch = 0  # the epoch being iterated
        self._restore: dict[str, int] | None = None  # state from a checkpoint, used by the next epoch
        self._handed_out = 0

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch_of() if self.epoch_of is not None else None
        self._epoch = self._passes if epoch is None else epoch
        restore, self._restore = self._restore, None
        skip = restore["position"] if restore is not None and restore["epoch"] == self._epoch else 0
        items = self.dataset
        items.seed, items.epoch, items.skip_batches, items.batch_size = (
            self.seed,
            self._epoch,
            skip,
            self.batch_size,
        )
        self._handed_out = skip
        for batch in super().__iter__():
            self._handed_out += 1
            yield batch
        self._passes += 1

    def state_dict(self) -> dict[str, int]:
        consumed = self.consumed() if self.consumed is not None else None
        position = self._handed_out if consumed is None else consumed
        return {"epoch": int(self._epoch), "position": int(position)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._restore = {"epoch": int(state_dict["epoch"]), "position": int(state_dict["position"])}
        self._passes = self._restore["epoch"]
