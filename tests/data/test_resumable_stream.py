"""Streaming training data: each sample once per epoch over ranks x workers, and mid-epoch resume."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from vtp_lightning.data import WebDatasetShards
from vtp_lightning.data.datasets import StreamingTrainItems
from vtp_lightning.data.resumable_stream import ResumableStreamLoader
from vtp_lightning.data.sharding import StreamPartition, batches_per_worker, next_turn

SAMPLES = 24  # 4 shards x 6; caption i for sample i


@pytest.fixture
def shard_urls(make_shard, files: SimpleNamespace) -> list[str]:
    return [
        str(make_shard(f"train-{s}.tar", [files.shard_sample(i) for i in range(6 * s, 6 * s + 6)]))
        for s in range(4)
    ]


def caption_list(items: list) -> list[str]:
    return [item.caption for item in items]


def test_batches_per_worker_follows_the_dataloaders_turns() -> None:
    # batches 0, 2, 4 come from worker 0 and 1, 3 from worker 1
    assert batches_per_worker(5, 2) == [3, 2]
    # worker 0 holds one batch only: after its turn it is asked no more
    assert batches_per_worker(4, 2, worker_batches=[1, 3]) == [1, 3]
    assert batches_per_worker(3, 0) == [3]  # no workers: the main process is the one consumer
    assert batches_per_worker(0, 3) == [0, 0, 0]
    # who builds the next batch: the resumed loader's first worker plays that consumer
    assert next_turn(1, 2) == 1 and next_turn(4, 2) == 0
    assert next_turn(2, 2, worker_batches=[1, 3]) == 1


def test_an_endless_stream_cut_at_one_pass_repeats_nothing_even_with_a_large_shuffle_buffer(
    shard_urls: list[str],
) -> None:
    source = WebDatasetShards(shard_urls, samples_per_epoch=SAMPLES, shuffle_buffer=1000)
    seen: Counter[str] = Counter()
    for rank in range(2):
        for worker in range(2):
            part = StreamPartition(rank=rank, world_size=2, worker=worker, num_workers=2)
            seen.update(caption_list(source.iter_samples(part, shuffle=True, limit=6, endless=True)))
    assert seen == Counter(f"caption {i}" for i in range(SAMPLES))


def collate_captions(items: list) -> list[str]:
    return [item.caption for item in items]


def loader(source: WebDatasetShards, rank: int, seed: int = 7) -> ResumableStreamLoader:
    """Rank ``rank`` of 2, 2 workers, batches of 3: 2 batches per worker, 4 per rank and epoch."""
    items = StreamingTrainItems(source, skip_corrupt=False, rank=rank, world_size=2)
    return ResumableStreamLoader(
        items, batch_size=3, drop_last=True, num_workers=2, collate_fn=collate_captions, seed=seed
    )


def test_every_sample_once_per_epoch_over_ranks_and_workers_in_a_new_order_each_epoch(
    shard_urls: list[str],
) -> None:
    source = WebDatasetShards(shard_urls, samples_per_epoch=SAMPLES, shuffle_buffer=4)
    epochs: list[list[str]] = [[], []]
    for rank in range(2):
        rank_loader = loader(source, rank)
        for epoch in range(2):
            batches = list(rank_loader)
            assert len(batches) == 4
            epochs[epoch] += [caption for batch in batches for caption in batch]
    everything = Counter(f"caption {i}" for i in range(SAMPLES))
    assert Counter(epochs[0]) == everything and Counter(epochs[1]) == everything
    assert epochs[0] != epochs[1]


@pytest.mark.parametrize("consumed", [1, 3])
def test_a_resumed_epoch_hands_out_exactly_the_batches_the_uninterrupted_one_had_left(
    shard_urls: list[str], consumed: int
) -> None:
    source = WebDatasetShards(shard_urls, samples_per_epoch=SAMPLES, shuffle_buffer=4)
    uninterrupted = list(loader(source, rank=1))
    interrupted = loader(source, rank=1)
    before = []
    for batch in interrupted:
        before.append(batch)
        if len(before) == consumed:
            break
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "position": consumed}
    resumed = loader(source, rank=1)
    resumed.load_state_dict(state)
    assert before + list(resumed) == uninterrupted
    assert len(list(resumed)) == 4  # the next epoch is whole again


def test_the_order_is_a_function_of_the_seed(shard_urls: list[str]) -> None:
    source = WebDatasetShards(shard_urls, samples_per_epoch=SAMPLES, shuffle_buffer=4)
    assert list(loader(source, 0, seed=1)) == list(loader(source, 0, seed=1))
    assert list(loader(source, 0, seed=1)) != list(loader(source, 0, seed=2))
