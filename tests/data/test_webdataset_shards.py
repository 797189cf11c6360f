"""WebDataset tar shards: decoding, and splitting over DDP ranks and DataLoader workers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch.utils.data import DataLoader

from vtp_lightning.data import WebDatasetShards
from vtp_lightning.data.datasets import StreamingTrainItems, Unreadable
from vtp_lightning.data.sharding import StreamPartition
from vtp_lightning.errors import ConfigError, DataError


@pytest.fixture
def shards(make_shard, files: SimpleNamespace) -> list[Path]:
    """4 shards of 6 samples each (sample i: pixel value i, caption "caption i", label i % 3)."""
    return [
        make_shard(
            f"train-{s:03d}.tar", [files.shard_sample(i, label=i % 3) for i in range(6 * s, 6 * s + 6)]
        )
        for s in range(4)
    ]


def captions(items) -> list[str]:
    return [item.caption for item in items]


def test_reads_images_captions_and_labels(make_shard, files: SimpleNamespace) -> None:
    path = make_shard("one.tar", [files.shard_sample(5, label=2), files.shard_sample(6)])
    source = WebDatasetShards(str(path), class_names=["a", "b", "c"])
    first, second = list(source.iter_samples(None, shuffle=False))
    assert (first.caption, first.label) == ("caption 5", 2)
    assert first.image.getpixel((0, 0)) == (5, 5, 5)
    assert (second.caption, second.label) == ("caption 6", -1)
    assert source.class_names == ["a", "b", "c"]


def test_brace_patterns_and_lists_expand_to_shards(shards: list[Path]) -> None:
    pattern = str(shards[0].parent / "train-{000..003}.tar")
    assert WebDatasetShards(pattern).urls == [str(p) for p in shards]
    assert len(WebDatasetShards([str(p) for p in shards[:2]]).urls) == 2


@pytest.mark.parametrize(("world_size", "num_workers"), [(2, 2), (2, 3), (1, 8)])
def test_ranks_and_workers_read_disjoint_parts_that_cover_everything(
    shards: list[Path], world_size: int, num_workers: int
) -> None:
    source = WebDatasetShards([str(p) for p in shards])
    seen: Counter[str] = Counter()
    for rank in range(world_size):
        for worker in range(num_workers):
            part = StreamPartition(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)
            seen.update(captions(source.iter_samples(part, shuffle=True)))
    assert seen == Counter(f"caption {i}" for i in range(24))


def test_dataloader_workers_split_the_stream(shards: list[Path]) -> None:
    dataset = StreamingTrainItems(
        WebDatasetShards([str(p) for p in shards]), skip_corrupt=False, rank=0, world_size=1
    )
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=captions)
    seen = [caption for batch in loader for caption in batch]
    assert sorted(seen) == sorted(f"caption {i}" for i in range(24))


def test_samples_per_epoch_gives_every_rank_the_same_count(make_shard, files: SimpleNamespace) -> None:
    uneven = [
        make_shard("a.tar", [files.shard_sample(i) for i in range(10)]),
        make_shard("b.tar", [files.shard_sample(i) for i in range(10, 13)]),
    ]
    source = WebDatasetShards([str(p) for p in uneven], samples_per_epoch=12)
    counts = [
        len(list(StreamingTrainItems(source, skip_corrupt=False, rank=rank, world_size=2)))
        for rank in range(2)
    ]
    assert counts == [6, 6]


def test_several_ranks_without_samples_per_epoch_is_a_config_error(shards: list[Path]) -> None:
    dataset = StreamingTrainItems(WebDatasetShards([str(p) for p in shards]), False, rank=0, world_size=2)
    with pytest.raises(ConfigError, match=r"2 ranks needs samples_per_epoch"):
        next(iter(dataset))


def test_fewer_shards_than_ranks(shards: list[Path]) -> None:
    source = WebDatasetShards(str(shards[0]), samples_per_epoch=8)
    with pytest.raises(DataError, match=r"1 shard\(s\) cannot be split over 2 DDP ranks"):
        next(iter(StreamingTrainItems(source, False, rank=1, world_size=2)))


def test_missing_shard_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"WebDataset shard not found: .*absent-000\.tar"):
        WebDatasetShards(str(tmp_path / "absent-{000..001}.tar"))


def test_sample_without_caption_or_with_corrupt_image(make_shard, files: SimpleNamespace) -> None:
    key, no_text = files.shard_sample(1)
    del no_text["txt"]
    bad_key, bad_image = files.shard_sample(2)
    bad_image["png"] = b"not a png"
    path = make_shard("bad.tar", [(key, no_text), (bad_key, bad_image), files.shard_sample(3)])
    items = list(WebDatasetShards(str(path)).iter_samples(None, shuffle=False))
    assert isinstance(items[0], DataError) and "bad.tar sample 'sample00001' has no caption" in str(items[0])
    assert isinstance(items[1], DataError) and "cannot read image" in str(items[1])
    assert "bad.tar sample 'sample00002'" in str(items[1])
    assert items[2].caption == "caption 3"
    training = StreamingTrainItems(WebDatasetShards(str(path)), skip_corrupt=True)
    assert sum(isinstance(s, Unreadable) for s in training) == 2
    with pytest.raises(DataError, match="has no caption|cannot read image"):  # training shuffles
        list(StreamingTrainItems(WebDatasetShards(str(path)), skip_corrupt=False))


def test_truncated_shard_is_reported_with_its_name(make_shard, files: SimpleNamespace) -> None:
    path = make_shard("cut.tar", [files.shard_sample(i) for i in range(4)])
    path.write_bytes(path.read_bytes()[: 2048 + 512 + 40])  # inside the second sample's image data
    items = list(WebDatasetShards(str(path)).iter_samples(None, shuffle=False))
    assert isinstance(items[-1], DataError)
    assert "cannot read WebDataset shard" in str(items[-1]) and "cut.tar: unexpected end of data" in str(
        items[-1]
    )


def test_empty_shards_are_an_error_not_an_empty_epoch(make_shard) -> None:
    path = make_shard("empty.tar", [])
    with pytest.raises(DataError, match=r"empty\.tar'\] hold no samples"):
        list(StreamingTrainItems(WebDatasetShards(str(path)), skip_corrupt=True))
    with pytest.raises(DataError, match="hold no samples"):
        list(StreamingTrainItems(WebDatasetShards(str(path), samples_per_epoch=4), skip_corrupt=True))
