"""WebDataset tar shards: ``<key>.jpg|.png`` + ``<key>.txt`` (+ optional ``<key>.cls``) per sample.

Shards are read with webdataset's tar iterators, so local paths, ``file:`` / ``pipe:`` URLs and
brace patterns (``shards/train-{000..099}.tar``) all work. Splitting over DDP ranks and DataLoader
workers is done here, see :mod:`vtp_lightning.data.sharding`; under DDP set ``samples_per_epoch`` so
every rank yields the same number of batches.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from vtp_lightning.data.image_io import decode_image_bytes
from vtp_lightning.data.sharding import StreamPartition, fresh_seed
from vtp_lightning.data.sources.base import Sample, StreamingSource
from vtp_lightning.data.text_bytes import utf8_text
from vtp_lightning.errors import ConfigError, DataError

IMAGE_SUFFIXES: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
_CAPTION_FIX = "re-encode the caption as UTF-8, or set data.skip_corrupt: true to skip unreadable samples"


def expand_shard_urls(urls: str | list[str]) -> list[str]:
    """Expand brace patterns (and ``::``-joined lists) into shard URLs, in order."""
    from webdataset.shardlists import expand_urls

    patterns = [urls] if isinstance(urls, str) else list(urls)
    return [url for pattern in patterns for url in expand_urls(str(pattern))]


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def _shuffled(items: Iterable[Any], buffer_size: int, rng: random.Random) -> Iterator[Any]:
    """Approximate shuffle of a stream through a buffer of ``buffer_size`` items."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        i = rng.randrange(buffer_size)
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class WebDatasetShards(StreamingSource):
    """Image-caption pairs from WebDataset tar shards (``.jpg|.png`` + ``.txt`` + optional ``.cls``).

    Args:
        urls: one shard, a brace pattern such as ``data/train-{000..015}.tar``, or a list of them.
        class_names: names indexed by the ``.cls`` labels (enables zero-shot on this source).
        samples_per_epoch: samples per training epoch summed over all ranks. When set, every rank and
            worker cycles through its shards until it has its equal share, so DDP ranks always see the
            same number of batches; required when training on more than one rank.
        shuffle_buffer: samples held in the shuffle buffer while training (shards are shuffled too).
    """

    def __init__(
        self,
        urls: str | list[str],
        class_names: list[str] | None = None,
        samples_per_epoch: int | None = None,
        shuffle_buffer: int = 1000,
    ) -> None:
        self.urls = expand_shard_urls(urls)
        if not self.urls:
            raise DataError(
                f"WebDatasetShards: no shards in {urls!r}; pass urls: <tar path, pattern or list>"
            )
        missing = [
            url for url in self.urls if _is_local(url) and not Path(url.removeprefix("file:")).is_file()
        ]
        if missing:
            raise DataError(f"WebDataset shard not found: {missing[0]} ({len(missing)} missing); check urls")
        if samples_per_epoch is not None and samples_per_epoch <= 0:
            raise ConfigError(
                f"WebDatasetShards: samples_per_epoch must be positive, got {samples_per_epoch}"
            )
        if shuffle_buffer < 1:
            raise ConfigError(f"WebDatasetShards: shuffle_buffer must be at least 1, got {shuffle_buffer}")
        self.class_names = list(class_names) if class_names is not None else None
        self.samples_per_epoch = samples_per_epoch
        self.shuffle_buffer = shuffle_buffer

    def describe(self) -> str:
        return f"WebDatasetShards({self.urls[0]}{' ...' if len(self.urls) > 1 else ''})"

    def iter_samples(
        self,
        partition: StreamPartition | None,
        shuffle: bool,
        limit: int | None = None,
        endless: bool = False,
        seed: int | None = None,
        skip: int = 0,
    ) -> Iterator[Sample | DataError]:
        shards, stride, offset = (self.urls, 1, 0) if partition is None else partition.select(self.urls)
        if not shards or limit == 0:
            return
        rng = random.Random(fresh_seed() if seed is None else seed) if shuffle else None
        # workers that stride over the same shards must read them in the same order: no shard shuffle
        shard_rng = rng if stride == 1 else None
        produced = 0
        stream = islice(self._passes(shards, stride, offset, shard_rng, rng, endless), skip, None)
        for item in islice(stream, limit):  # ``skip`` records are passed over undecoded
            produced += 1
            yield item if isinstance(item, DataError) else self._decode(item)
        if produced == 0 and stride == 1 and skip == 0:
            raise DataError(f"shards {shards[:3]} hold no samples; check the tar files")

    def _passes(
        self,
        shards: list[str],
        stride: int,
        offset: int,
        shard_rng: random.Random | None,
        rng: random.Random | None,
        endless: bool,
    ) -> Iterator[Any]:
        """Raw records (dicts of bytes) or DataErrors, pass after pass; ``endless`` loops forever.

        Each pass is shuffled on its own (shard order, then the buffer, which is emptied at the end of
        the pass), so a pass holds each of the consumer's records exactly once: an ``endless`` stream
        cut at one pass's length never repeats a record before every other has come.
        """
        while True:
            order = list(shards)
            if shard_rng is not None:
                shard_rng.shuffle(order)
            records: Iterator[Any] = (r for shard in order for r in self._shard_records(shard))
            records = islice(records, offset, None, stride)
            if rng is not None:
                records = _shuffled(records, self.shuffle_buffer, rng)
            produced = 0
            for record in records:
                produced += 1
                yield record
            if not endless or produced == 0:
                return

    def _shard_records(self, shard: str) -> Iterator[dict[str, Any] | DataError]:
        from webdataset.tariterators import tarfile_samples

        records = tarfile_samples([{"url": shard}])
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as exc:  # tarfile, gzip and I/O errors all mean "this shard is broken"
                reason = exc.args[0] if exc.args else exc
                yield DataError(
                    f"cannot read WebDataset shard {shard}: {reason}; re-create or remove the shard"
                )
                return
            yield record

    def _decode(self, record: dict[str, Any]) -> Sample | DataError:
        where = f"{record.get('__url__')} sample {record.get('__key__')!r}"
        suffix = next((s for s in IMAGE_SUFFIXES if s in record), None)
        if suffix is None:
            return DataError(f"{where} has no image (.{'/.'.join(IMAGE_SUFFIXES)}); fix the shard")
        try:
            caption = utf8_text(record.get("txt", b""), f"{where} (.txt)", _CAPTION_FIX).strip()
        except DataError as exc:
            return exc
        if not caption:
            return DataError(f"{where} has no caption (.txt); fix the shard")
        label = -1
        if "cls" in record:
            try:
                label = int(record["cls"].decode("utf-8").strip())
            except ValueError:
                return DataError(f"{where}: .cls must hold an integer label, got {record['cls'][:20]!r}")
        try:
            image = decode_image_bytes(record[suffix], f"{where} (.{suffix})")
        except DataError as exc:
            return exc
        return Sample(image=image, caption=caption, label=label)
