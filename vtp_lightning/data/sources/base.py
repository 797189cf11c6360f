"""The one interface every image-text source implements.

A source yields :class:`Sample` s: an image (PIL or uint8 array), a caption and a label (``-1`` when
unknown). Sources that label their images expose ``class_names`` (index = label) for zero-shot
evaluation. There are two kinds:

* :class:`IndexedSource` — random access (``len`` and ``[i]``); shuffling and DDP sharding are done by
  the DataLoader's sampler, which Lightning replaces with a ``DistributedSampler`` under DDP.
* :class:`StreamingSource` — sequential shards (WebDataset tars); the source itself splits shards
  over DDP ranks and DataLoader workers, see :mod:`vtp_lightning.data.sharding`.

Sources do no augmentation and no tokenisation: the views and the collate do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vtp_lightning.data.sharding import StreamPartition
from vtp_lightning.errors import DataError


@dataclass(frozen=True)
class Sample:
    """One image-caption pair. ``label`` is the class id, ``-1`` when the source has none."""

    image: Image.Image | np.ndarray
    caption: str
    label: int = -1


class ImageTextSource(ABC):
    """Base of every data source (use :class:`IndexedSource` or :class:`StreamingSource`)."""

    #: class names indexed by label (for zero-shot); ``None`` when the source has no classes
    class_names: list[str] | None = None

    @property
    @abstractmethod
    def streaming(self) -> bool:
        """True when samples can only be read in sequence (no ``len`` / ``[i]``)."""

    def describe(self) -> str:
        """A short human-readable name for messages."""
        return type(self).__name__


class IndexedSource(ImageTextSource):
    """A source with random access; ``__getitem__`` raises :class:`DataError` for unreadable samples."""

    @property
    def streaming(self) -> bool:
        return False

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    def labels(self) -> Sequence[int] | None:
        """All labels without decoding images (for a class-balanced eval order); ``None`` if unknown."""
        return None


class StreamingSource(ImageTextSource):
    """A source read shard by shard; the DataLoader cannot index it."""

    @property
    def streaming(self) -> bool:
        return True

    #: samples per training epoch over all ranks; ``None`` means one pass over the data
    samples_per_epoch: int | None = None

    @abstractmethod
    def iter_samples(
        self,
        partition: StreamPartition | None,
        shuffle: bool,
        limit: int | None = None,
        endless: bool = False,
        seed: int | None = None,
        skip: int = 0,
    ) -> Iterator[Sample | DataError]:
        """Yield this partition's samples (every sample when ``partition`` is None).

        An unreadable sample is yielded as its :class:`DataError` instead of raised, so the caller can
        skip it and go on (``skip_corrupt``) or raise it. ``endless`` cycles through the shards again
        and again, each pass holding every sample of the partition once; ``limit`` stops after that
        many items. ``seed`` fixes the shuffled order (``None``: a fresh one); ``skip`` passes over the
        first items of that order without decoding them (resuming mid-epoch).
        """
