"""One sub-folder per class; labels from folder order, captions templated over the folder name."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from vtp_lightning.data import CAPTION_TEMPLATES, ImageFolder
from vtp_lightning.errors import DataError


def test_classes_labels_images_and_captions(image_folder: Path) -> None:
    source = ImageFolder(image_folder)
    assert source.class_names == ["ankle boot", "bag"]
    assert len(source) == 5
    assert list(source.labels()) == [0, 0, 0, 1, 1]
    sample = source[4]
    assert isinstance(sample.image, Image.Image) and sample.image.mode == "RGB"
    assert sample.image.getpixel((0, 0)) == (21, 21, 21)
    assert sample.label == 1
    assert sample.caption in {t.format("bag") for t in CAPTION_TEMPLATES}


def test_fixed_captions_for_validation_folders(image_folder: Path) -> None:
    random.seed(0)
    source = ImageFolder(image_folder, random_templates=False)
    assert len({source[0].caption for _ in range(10)}) == 1


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"image folder not found: .*missing"):
        ImageFolder(tmp_path / "missing")


def test_folder_without_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"empty contains no images"):
        ImageFolder(tmp_path / "empty")


def test_corrupt_png_names_the_file_and_the_fix(image_folder: Path) -> None:
    (image_folder / "bag" / "nested" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    source = ImageFolder(image_folder)
    with pytest.raises(DataError, match=r"cannot read image .*bag/nested/1\.png.*skip_corrupt"):
        source[4]
