"""VTPDataModule: the CONTRACTS training batch, validation batches and the evaluation API."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vtp_lightning.data import FASHION_MNIST_CLASSES, ImageFolder, VTPDataModule, WebDatasetShards
from vtp_lightning.errors import ConfigError, DataError


def first_batch(datamodule: VTPDataModule) -> dict[str, torch.Tensor]:
    return next(iter(datamodule.train_dataloader()))


def test_train_batch_matches_contracts_exactly() -> None:
    dm = VTPDataModule(batch_size=16, ssl_batch_size=6, num_local_crops=3, num_workers=0, context_length=20)
    batch = first_batch(dm)
    expected = {
        "image": ((16, 3, 32, 32), torch.float32),
        "text": ((16, 20), torch.long),
        "label": ((16,), torch.long),
        "global_crops": ((2, 6, 3, 32, 32), torch.float32),
        "local_crops": ((3, 6, 3, 12, 12), torch.float32),
        "masks": ((2, 6, 8, 8), torch.bool),
    }
    assert {key: (tuple(value.shape), value.dtype) for key, value in batch.items()} == expected
    for key in ("image", "global_crops", "local_crops"):
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
    assert batch["label"].min() >= 0 and batch["label"].max() < 10
    assert batch["masks"].flatten(2).any(2).float().mean() == 0.5


def test_defaults_follow_the_issue() -> None:
    dm = VTPDataModule()
    assert (dm.image_size, dm.patch_size, dm.batch_size, dm.num_local_crops) == (32, 4, 64, 4)
    assert (dm.local_crop_size, dm.context_length, dm.num_workers) == (12, 32, 2)
    assert dm.mask_generator.ratio_range == (0.1, 0.5) and dm.mask_generator.probability == 0.5
    assert dm.global_crop_scale == (0.32, 1.0) and dm.local_crop_scale == (0.05, 0.32)
    assert len(dm.train_source) == 10_000 and len(dm.val_source) == 2_000


def test_switches_remove_the_ssl_parts() -> None:
    assert set(first_batch(VTPDataModule(batch_size=8, ssl_batch_size=0, num_workers=0))) == {
        "image",
        "text",
        "label",
    }
    no_local = first_batch(
        VTPDataModule(batch_size=8, num_local_crops=0, mask_probability=0.0, num_workers=0)
    )
    assert set(no_local) == {"image", "text", "label", "global_crops"}
    sized = first_batch(
        VTPDataModule(batch_size=8, image_size=48, patch_size=8, local_crop_size=24, num_workers=0)
    )
    assert sized["local_crops"].shape[-1] == 24 and sized["masks"].shape[-1] == 6


def test_validation_batches_are_images_labels_and_fixed_captions() -> None:
    dm = VTPDataModule(batch_size=32, num_workers=0, val_limit=40)
    batches = list(dm.val_dataloader())
    assert [b["image"].shape[0] for b in batches] == [32, 8]
    assert set(batches[0]) == {"image", "label", "text"}
    assert batches[0]["text"].shape == (32, 32)
    again = next(iter(dm.val_dataloader()))
    assert torch.equal(again["image"], batches[0]["image"]) and torch.equal(again["text"], batches[0]["text"])


def test_eval_dataset_is_deterministic_balanced_and_shaped_as_in_contracts() -> None:
    dm = VTPDataModule(num_workers=0, seed=3)
    dataset = dm.eval_dataset("val", limit=100)
    assert len(dataset) == 100
    item = dataset[0]
    assert set(item) == {"image", "label"}
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.long and item["label"].ndim == 0
    assert Counter(int(dataset[i]["label"]) for i in range(100)) == dict.fromkeys(range(10), 10)
    other = VTPDataModule(num_workers=0, seed=3).eval_dataset("val", limit=100)
    assert all(torch.equal(dataset[i]["image"], other[i]["image"]) for i in (0, 17, 99))
    assert torch.equal(dataset[5]["image"], dataset[5]["image"])
    assert len(dm.eval_dataset("train", limit=None)) == 10_000


def test_class_names_tokenize_and_unknown_split() -> None:
    dm = VTPDataModule(num_workers=0, context_length=24)
    assert dm.class_names("train") == dm.class_names("val") == list(FASHION_MNIST_CLASSES)
    assert dm.tokenize(["a photo of a bag."]).shape == (1, 24)
    with pytest.raises(ConfigError, match=r"unknown split 'dev'; use one of \['train', 'val', 'test'\]"):
        dm.eval_dataset("dev", limit=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 30, "patch_size": 4}, r"image_size \(30\) must be a multiple of patch_size \(4\)"),
        ({"batch_size": 8, "ssl_batch_size": 9}, r"ssl_batch_size \(9\) must be at most batch_size \(8\)"),
        ({"local_crop_size": 10}, r"local_crop_size \(10\) must be a multiple of patch_size \(4\)"),
        (
            {"global_crop_scale": (0.5, 0.2)},
            r"global_crop_scale must be two values \[low, high\] with low <= high",
        ),
        ({"mask_ratio": (0.1, 1.5)}, r"each value of mask_ratio must be a number in \[0, 1\]"),
        ({"context_length": 0}, "context_length must be an integer >= 2, got 0"),
        ({"patch_size": 0}, "patch_size must be an integer >= 1, got 0"),
    ],
)
def test_bad_settings_raise_one_config_error_naming_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VTPDataModule(**kwargs)


def test_a_source_must_be_an_image_text_source() -> None:
    with pytest.raises(ConfigError, match="train must be an ImageTextSource"):
        VTPDataModule(train="/data/images")


def test_dataset_smaller_than_a_batch(image_folder: Path) -> None:
    dm = VTPDataModule(train=ImageFolder(image_folder), batch_size=8, num_workers=0)
    with pytest.raises(DataError, match=r"has 5 samples, fewer than batch_size 8"):
        dm.train_dataloader()


def test_corrupt_png_fails_by_default_and_is_skipped_and_counted_with_skip_corrupt(
    image_folder: Path,
) -> None:
    (image_folder / "ankle_boot" / "1.png").write_bytes(b"broken")
    strict = VTPDataModule(train=ImageFolder(image_folder), batch_size=5, num_workers=0)
    with pytest.raises(DataError, match=r"cannot read image .*ankle_boot/1\.png"):
        first_batch(strict)
    lenient = VTPDataModule(
        train=ImageFolder(image_folder),
        val=ImageFolder(image_folder),
        batch_size=5,
        num_workers=2,
        skip_corrupt=True,
    )
    batch = first_batch(lenient)
    assert batch["skipped"].item() == 1 and batch["image"].shape[0] == 4
    assert batch["global_crops"].shape[1] == 4
    evaluation = lenient.eval_dataset("val")
    assert len(evaluation) == 5 and all(evaluation[i]["image"].shape == (3, 32, 32) for i in range(5))


def test_streaming_sources_train_validate_and_evaluate(make_shard, files: SimpleNamespace) -> None:
    shards = [
        str(make_shard(f"s{k}.tar", [files.shard_sample(i, label=i % 2) for i in range(10 * k, 10 * k + 10)]))
        for k in range(2)
    ]
    dm = VTPDataModule(
        train=WebDatasetShards(shards),
        val=WebDatasetShards(shards, class_names=["even", "odd"]),
        batch_size=4,
        num_workers=0,
    )
    train_batches = list(dm.train_dataloader())
    assert len(train_batches) == 5 and train_batches[0]["global_crops"].shape == (2, 4, 3, 32, 32)
    assert sum(len(b["image"]) for b in dm.val_dataloader()) == 20
    evaluation = dm.eval_dataset("val", limit=6)
    assert [int(evaluation[i]["label"]) for i in range(6)] == [0, 1, 0, 1, 0, 1]
    assert dm.class_names("val") == ["even", "odd"] and dm.class_names("train") is None


def test_test_split_is_data_test_else_val_and_never_a_guess(tmp_path: Path) -> None:
    from PIL import Image

    from vtp_lightning.data import EmbeddedFashionMNIST

    (tmp_path / "cls").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cls" / "a.png")
    own = ImageFolder(root=str(tmp_path))
    assert VTPDataModule(num_workers=0).source("test").describe() == "EmbeddedFashionMNIST(test)"
    assert VTPDataModule(val=own, num_workers=0).source("test") is own
    assert VTPDataModule(test=own, num_workers=0).source("test") is own
    # only a training source of one's own: testing on the embedded clothes would be a silently wrong result
    only_train = VTPDataModule(train=own, num_workers=0)
    with pytest.raises(ConfigError, match="set data.test"):
        only_train.source("test")
    assert VTPDataModule(train=own, test=EmbeddedFashionMNIST(split="test"), num_workers=0).source("test")
