"""JSONL and CSV caption files: image + caption + optional label (id or class name)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from vtp_lightning.data import CaptionFile
from vtp_lightning.errors import ConfigError, DataError


@pytest.fixture
def images(tmp_path: Path, files: SimpleNamespace) -> Path:
    root = tmp_path / "images"
    for i in range(3):
        files.write_png(root / f"{i}.png", 100 + i)
    return root


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_jsonl_rows_with_named_labels(tmp_path: Path, images: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"image": "0.png", "caption": "a red kite over a beach", "label": "kite"},
            {"image": "1.png", "caption": "two dogs playing", "label": "dog"},
            {"image": "2.png", "caption": "a dog asleep"},
        ],
    )
    source = CaptionFile(path, image_root=images)
    assert len(source) == 3
    assert source.class_names == ["dog", "kite"]
    assert list(source.labels()) == [1, 0, -1]
    sample = source[1]
    assert sample.caption == "two dogs playing"
    assert sample.image.getpixel((0, 0)) == (101, 101, 101)


def test_csv_rows_with_int_labels_relative_to_the_file(tmp_path: Path, images: Path) -> None:
    path = images / "pairs.csv"
    path.write_text('image,caption,label\n0.png,"a cat, sitting",3\n2.png,a bird,\n')
    source = CaptionFile(path)
    assert source.class_names is None
    assert [source[i].caption for i in range(2)] == ["a cat, sitting", "a bird"]
    assert list(source.labels()) == [3, -1]
    assert source[1].image.getpixel((0, 0)) == (102, 102, 102)


def test_given_class_names_map_named_labels(tmp_path: Path, images: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"image": "0.png", "caption": "x", "label": "bag"}])
    source = CaptionFile(path, image_root=images, class_names=["shirt", "bag"])
    assert source.labels() == [1] and source.class_names == ["shirt", "bag"]


def test_row_without_caption_names_file_and_line(tmp_path: Path, images: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"image": "0.png", "caption": "fine"},
            {"image": "1.png", "caption": "also fine"},
            {"image": "2.png"},
        ],
    )
    with pytest.raises(DataError, match=r"pairs\.jsonl, line 3: row has no caption"):
        CaptionFile(path, image_root=images)


def test_csv_row_with_empty_caption_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("image,caption\na.png,ok\nb.png,\n")
    with pytest.raises(DataError, match=r"pairs\.csv, line 3: row has no caption"):
        CaptionFile(path)


def test_csv_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("file,text\na.png,ok\n")
    with pytest.raises(
        DataError, match=r"pairs\.csv: the CSV header must name the columns image and caption"
    ):
        CaptionFile(path)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"image": "a.png", "caption": "ok"}\n{"image": oops}\n')
    with pytest.raises(DataError, match=r"pairs\.jsonl, line 2: invalid JSON"):
        CaptionFile(path)


def test_unknown_class_name_names_the_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"image": "0.png", "caption": "x", "label": "hat"}])
    with pytest.raises(DataError, match=r"p\.jsonl, line 1: unknown class name 'hat'"):
        CaptionFile(path, class_names=["shirt", "bag"])


def test_missing_file_empty_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"caption file not found: .*nope\.jsonl"):
        CaptionFile(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl contains no rows"):
        CaptionFile(tmp_path / "empty.jsonl")
    (tmp_path / "pairs.txt").write_text("a.png\tcaption\n")
    with pytest.raises(ConfigError, match=r"pairs\.txt: unknown format 'auto'.*format: jsonl \| csv"):
        CaptionFile(tmp_path / "pairs.txt")


def test_missing_image_is_reported_when_read(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"image": "gone.png", "caption": "x"}])
    source = CaptionFile(path)
    with pytest.raises(DataError, match=r"image file not found: .*gone\.png"):
        source[0]
