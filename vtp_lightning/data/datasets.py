"""torch Datasets that read a source for training or evaluation.

Training items are :class:`Sample` s with the image already an RGB PIL image; the collate builds the
views. An unreadable training sample raises its :class:`DataError` — or, with ``skip_corrupt``, the
item is an :class:`Unreadable` naming it, which the collate drops and counts (see
:mod:`vtp_lightning.data.collate`). Training batches may be fetched under a per-batch seed
(:mod:`vtp_lightning.data.resumable`).

Evaluation items are ``{"image": float (3, S, S), "label": long}`` (plus ``"caption"`` for the
validation loader). Evaluation must be deterministic and every index must give a dict, so with
``skip_corrupt`` an unreadable evaluation sample is replaced by a fixed substitute from later in the
evaluation order (never one already inside the subset while there are others).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset

from vtp_lightning.data.image_io import to_rgb
from vtp_lightning.data.resumable import SeededKey, seeded_fetch
from vtp_lightning.data.sharding import (
    StreamPartition,
    batches_per_worker,
    consumer_seed,
    current_partition,
    next_turn,
)
from vtp_lightning.data.sources.base import IndexedSource, Sample, StreamingSource
from vtp_lightning.data.views import ReconstructionView, to_normalized_batch
from vtp_lightning.errors import ConfigError, DataError


def readable(sample: Sample) -> Sample:
    """The sample with its image converted to an RGB PIL image."""
    return Sample(image=to_rgb(sample.image), caption=sample.caption, label=sample.label)


@dataclass(frozen=True)
class Unreadable:
    """A training sample skipped with ``skip_corrupt``: what it was (file name or source position)."""

    where: str


def _skipped(exc: DataError, fallback: str) -> Unreadable:
    return Unreadable(exc.where or fallback)


class TrainItems(Dataset):
    """Map-style training items from an indexed source; :class:`Unreadable` for skipped samples."""

    def __init__(self, source: IndexedSource, skip_corrupt: bool) -> None:
        self.source = source
        self.skip_corrupt = skip_corrupt

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Sample | Unreadable:
        try:
            return readable(self.source[index])
        except DataError as exc:
            if self.skip_corrupt:
                return _skipped(exc, f"{self.source.describe()}[{index}]")
            raise

    def __getitems__(self, keys: Sequence[SeededKey | int]) -> list[Sample | Unreadable]:
        """A batch of items; keys from :class:`~vtp_lightning.data.resumable.SeededBatches` carry its seed."""
        return seeded_fetch(self.__getitem__, keys)


class StreamingTrainItems(IterableDataset):
    """Training items from a streaming source, split over DDP ranks and DataLoader workers.

    Args:
        source: the streaming source.
        skip_corrupt: yield an :class:`Unreadable` for unreadable samples instead of raising.
        rank: this process's DDP rank (``None``: ask torch.distributed / the environment).
        world_size: number of DDP processes (``None``: as for ``rank``).
    """

    def __init__(
        self,
        source: StreamingSource,
        skip_corrupt: bool,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.source = source
        self.skip_corrupt = skip_corrupt
        self.rank, self.world_size = rank, world_size
        # set by ResumableStreamLoader before each epoch (None: a fresh shuffle, nothing skipped)
        self.seed: int | None = None
        self.epoch = 0
        self.skip_batches, self.batch_size = 0, 1

    def __iter__(self) -> Iterator[Sample | Unreadable]:
        partition = current_partition(self.rank, self.world_size)
        epoch = self.source.samples_per_epoch
        worker_batches = self._worker_batches(partition, epoch)
        if self.skip_batches and partition.num_workers > 1:
            # the resumed loader asks its worker 0 first: let it play the consumer whose turn is next,
            # so batches come in the uninterrupted run's order
            first = next_turn(self.skip_batches, partition.num_workers, worker_batches)
            partition = replace(partition, worker=(partition.worker + first) % partition.num_workers)
        if epoch is None and partition.world_size > 1:
            raise ConfigError(
                f"{self.source.describe()}: training on {partition.world_size} ranks needs samples_per_epoch "
                "on the streaming source, so that every rank yields the same number of batches"
            )
        limit = partition.quota(epoch) if epoch is not None else None
        seed = None if self.seed is None else consumer_seed(self.seed, self.epoch, partition)
        taken = batches_per_worker(self.skip_batches, partition.num_workers, worker_batches)
        skip = taken[partition.worker] * self.batch_size
        if limit is not None:
            limit = max(0, limit - skip)
        items = self.source.iter_samples(
            partition, shuffle=True, limit=limit, endless=epoch is not None, seed=seed, skip=skip
        )
        for item in items:
            yield _checked(item, self.skip_corrupt)

    def _worker_batches(self, partition: StreamPartition, samples_per_epoch: int | None) -> list[int] | None:
        """Batches each worker of this rank builds per epoch (it drops its last partial batch)."""
        if samples_per_epoch is None:
            return None
        return [
            replace(partition, worker=w).quota(samples_per_epoch) // self.batch_size
            for w in range(partition.num_workers)
        ]


def _checked(item: Sample | DataError, skip_corrupt: bool) -> Sample | Unreadable:
    if isinstance(item, DataError):
        if skip_corrupt:
            return _skipped(item, "a stream record")
        raise item
    try:
        return readable(item)
    except DataError as exc:
        if skip_corrupt:
            return _skipped(exc, "a stream record")
        raise


class InMemorySource(IndexedSource):
    """Samples already read (e.g. the first ``limit`` samples of a stream), as an indexed source."""

    def __init__(self, samples: Sequence[Sample], class_names: list[str] | None) -> None:
        self.samples = list(samples)
        self.class_names = class_names

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def labels(self) -> Sequence[int]:
        return [s.label for s in self.samples]


def read_stream(source: StreamingSource, limit: int | None, skip_corrupt: bool) -> InMemorySource:
    """Read the first ``limit`` readable samples of every shard in order (all when ``limit`` is None)."""
    samples: list[Sample] = []
    for item in source.iter_samples(None, shuffle=False):
        sample = _checked(item, skip_corrupt)
        if isinstance(sample, Sample):
            samples.append(sample)
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise DataError(f"{source.describe()} yielded no readable samples for evaluation")
    return InMemorySource(samples, source.class_names)


class EvalItems(Dataset):
    """Deterministic evaluation items ``{"image", "label"[, "caption"]}`` at fixed source indices.

    Args:
        source: an indexed source.
        order: the full evaluation order of source indices.
        limit: use the first ``limit`` entries of ``order`` (``None``: all).
        view: the deterministic view (no flip).
        skip_corrupt: replace unreadable samples by a fixed substitute instead of raising.
        with_caption: add the caption (the validation loader tokenises it).
    """

    def __init__(
        self,
        source: IndexedSource,
        order: Sequence[int],
        limit: int | None,
        view: ReconstructionView,
        skip_corrupt: bool,
        with_caption: bool = False,
    ) -> None:
        self.source, self.order, self.view = source, list(order), view
        self.size = len(self.order) if limit is None else min(limit, len(self.order))
        self.skip_corrupt, self.with_caption = skip_corrupt, with_caption

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, position: int) -> dict[str, Any]:
        if not 0 <= position < self.size:
            raise IndexError(position)
        sample = self._read(position)
        item: dict[str, Any] = {
            "image": to_normalized_batch([self.view(sample.image)])[0],
            "label": torch.tensor(sample.label, dtype=torch.long),
        }
        if self.with_caption:
            item["caption"] = sample.caption
        return item

    def _read(self, position: int) -> Sample:
        try:
            return readable(self.source[self.order[position]])
        except DataError:
            if not self.skip_corrupt:
                raise
        for candidate in self._substitutes(position):
            try:
                return readable(self.source[self.order[candidate]])
            except DataError:
                continue
        raise DataError(f"{self.source.describe()}: no readable sample left to evaluate on")

    def _substitutes(self, position: int) -> Iterator[int]:
        """Later positions outside the subset first (distinct for every position), then neighbours."""
        total = len(self.order)
        yield from range(position + self.size, total, self.size)
        for step in range(1, total):
            yield (position + step) % total


class StreamingEvalItems(IterableDataset):
    """Evaluation items from a streaming source, one pass, split over ranks and workers."""

    def __init__(self, source: StreamingSource, view: ReconstructionView, skip_corrupt: bool) -> None:
        self.source, self.view, self.skip_corrupt = source, view, skip_corrupt

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.source.iter_samples(current_partition(), shuffle=False):
            sample = _checked(item, self.skip_corrupt)
            if isinstance(sample, Sample):
                yield {
                    "image": to_normalized_batch([self.view(sample.image)])[0],
                    "label": torch.tensor(sample.label, dtype=torch.long),
                    "caption": sample.caption,
                }
