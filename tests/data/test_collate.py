"""The training collate: views for every row, multi-crop for an SSL subset, masks, skipped count."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image

from vtp_lightning.data import BlockMaskGenerator, CaptionTokenizer, Sample, TrainCollate
from vtp_lightning.data.views import MultiCropView, ReconstructionView
from vtp_lightning.errors import DataError

TOKENIZER = CaptionTokenizer(context_length=12)


def samples(count: int) -> list[Sample]:
    """Row i is a flat grey image of value 10 * i, so crops can be traced back to their row."""
    return [Sample(Image.new("RGB", (28, 28), (10 * i,) * 3), f"caption {i}", i % 3) for i in range(count)]


def collate(
    ssl_batch_size: int | None = None, num_local: int = 3, masks: bool = True, **kwargs
) -> TrainCollate:
    return TrainCollate(
        view=ReconstructionView(16, hflip=True),
        tokenizer=TOKENIZER,
        multicrop=MultiCropView(16, 8, num_local, (0.32, 1.0), (0.05, 0.32)),
        masks=BlockMaskGenerator(grid_size=4, probability=0.5) if masks else None,
        ssl_batch_size=ssl_batch_size,
        **kwargs,
    )


def crop_rows(crops: torch.Tensor) -> list[int]:
    """Which sample each crop came from: sample ``i`` is filled with the grey level ``10 * i``."""
    levels = (crops.mean(dim=(2, 3, 4)) + 1) / 2 * 255 / 10
    rows = levels.round().long()
    assert torch.allclose(levels, rows.float(), atol=1e-3)  # every crop is one sample's constant image
    assert (rows == rows[0]).all()  # the views of one row come from the same sample
    return rows[0].tolist()


def test_multicrop_only_for_a_random_subset_of_ssl_batch_size_rows() -> None:
    random.seed(0)
    batch = collate(ssl_batch_size=3)(samples(8))
    assert batch["global_crops"].shape == (2, 3, 3, 16, 16)
    assert batch["local_crops"].shape == (3, 3, 3, 8, 8)
    assert batch["masks"].shape == (2, 3, 4, 4) and batch["masks"].dtype == torch.bool
    rows = crop_rows(batch["global_crops"])
    assert len(set(rows)) == 3 and min(rows) >= 0 and max(rows) < 8
    assert crop_rows(batch["local_crops"]) == rows
    draws = {tuple(crop_rows(collate(ssl_batch_size=3)(samples(8))["global_crops"])) for _ in range(10)}
    assert len(draws) > 1


def test_rows_labels_and_tokens() -> None:
    batch = collate()(samples(5))
    assert batch["image"].shape == (5, 3, 16, 16)
    assert batch["label"].tolist() == [0, 1, 2, 0, 1]
    assert torch.equal(batch["text"], TOKENIZER([f"caption {i}" for i in range(5)]))
    assert crop_rows(batch["global_crops"]) == [0, 1, 2, 3, 4]


def test_optional_parts_are_absent_when_off() -> None:
    no_local = collate(num_local=0)(samples(4))
    assert "local_crops" not in no_local and "global_crops" in no_local
    assert "masks" not in collate(masks=False)(samples(4))
    plain = TrainCollate(ReconstructionView(16, hflip=False), TOKENIZER)(samples(4))
    assert set(plain) == {"image", "text", "label"}


def test_unreadable_samples_are_dropped_and_counted() -> None:
    items = samples(4)
    batch = collate(ssl_batch_size=None, report_skipped=True)([items[0], None, items[2], None])
    assert batch["image"].shape[0] == 2 and batch["label"].tolist() == [0, 2]
    assert batch["skipped"].item() == 2 and batch["skipped"].dtype == torch.long
    assert "skipped" not in collate()(items)
    with pytest.raises(DataError, match="all 2 samples of a batch were unreadable"):
        collate(report_skipped=True)([None, None])
