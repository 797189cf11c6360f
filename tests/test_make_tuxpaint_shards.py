"""``scripts/make_tuxpaint_shards.py`` on a tiny fake Tux Paint stamps tree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image
from script_module import load_script

from vtp_lightning.data import WebDatasetShards

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_tuxpaint_shards.py"
WHITE, RED = (255, 255, 255), (255, 0, 0)


def stamp(root: Path, relative: str, caption_file: str | None, image: Image.Image | None = None) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    (image or Image.new("RGBA", (8, 8), (0, 0, 255, 255))).save(path)
    if caption_file is not None:
        path.with_suffix(".txt").write_text(caption_file, encoding="utf-8")


@pytest.fixture
def stamps(tmp_path: Path) -> Path:
    """4 categories x 2 captioned stamps, plus a mirror variant without caption and an SVG-only stamp."""
    root = tmp_path / "stamps"
    robin = Image.new("RGBA", (20, 10), (0, 0, 0, 0))  # left half opaque red, right half transparent
    robin.paste(Image.new("RGBA", (10, 10), (*RED, 255)), (0, 0))
    stamp(root, "animals/birds/robin.png", "A robin.\nfr.utf8=Un rouge-gorge.\n", robin)
    stamp(root, "animals/cat.png", "A cat.\nde.utf8=Eine Katze.\n", Image.new("LA", (6, 6), (90, 255)))
    stamp(root, "animals/cat_mirror.png", None)
    stamp(root, "food/apple.png", "\nAn apple.  1+1=2\npt_BR.utf8=Uma maçã.\n")
    stamp(root, "food/pear.png", "A pear.")
    (root / "food" / "pear.svg").write_text("<svg/>")
    (root / "food" / "plum.svg").write_text("<svg/>")
    stamp(root, "naturalforces/storm.png", "A storm.")
    stamp(root, "naturalforces/wind.png", "Wind.")
    stamp(root, "vehicles/bus.png", "A bus.")
    stamp(root, "vehicles/car.png", "A car.")
    return root


CAPTION_CATEGORY = {
    "A robin.": 0,
    "A cat.": 0,
    "An apple.  1+1=2": 1,
    "A pear.": 1,
    "A storm.": 2,
    "Wind.": 2,
    "A bus.": 3,
    "A car.": 3,
}


def build(stamps: Path, out: Path) -> dict:
    return load_script(SCRIPT).build(stamps, out, size=32, val_fraction=0.5, train_shards=2, val_shards=2)


def read(out: Path, split: str) -> list:
    names = (out / "classes.txt").read_text().splitlines()
    source = WebDatasetShards(str(out / f"{split}-{{000000..000001}}.tar"), class_names=names)
    return list(source.iter_samples(None, shuffle=False))


def test_shards_hold_every_captioned_stamp_once_with_its_category_label(stamps: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    manifest = build(stamps, out)
    train, val = read(out, "train"), read(out, "val")
    assert sorted(s.caption for s in train + val) == sorted(CAPTION_CATEGORY)
    assert all(s.label == CAPTION_CATEGORY[s.caption] for s in train + val)
    assert (out / "classes.txt").read_text() == "animals\nfood\nnatural forces\nvehicles\n"
    # stratified: each category has 2 stamps, half of them validate
    assert sorted(s.label for s in val) == [0, 1, 2, 3]
    assert manifest["left_out"] == {"no English caption": 1, "svg only (no rasteriser)": 1}
    assert manifest["splits"]["train"]["samples_per_shard"] == [2, 2]
    assert all(s.image.size == (32, 32) for s in train + val)


def test_stamps_are_composited_over_white_scaled_and_padded_to_a_square(stamps: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    build(stamps, out)
    robin = next(s for s in read(out, "train") + read(out, "val") if s.caption == "A robin.")
    image = robin.image.convert("RGB")
    # 20 x 10 scaled to 32 x 16, centred: rows 8..23 hold the stamp, the rest is padding
    assert image.getpixel((16, 2)) == WHITE and image.getpixel((16, 29)) == WHITE
    assert all(abs(a - b) <= 2 for a, b in zip(image.getpixel((4, 16)), RED, strict=True))
    assert all(abs(a - b) <= 2 for a, b in zip(image.getpixel((27, 16)), WHITE, strict=True))


def test_rebuilding_gives_the_same_bytes_and_split(stamps: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    build(stamps, first)
    build(stamps, second)
    for tar in sorted(first.glob("*.tar")):
        digest = hashlib.sha256(tar.read_bytes()).hexdigest()
        assert digest == hashlib.sha256((second / tar.name).read_bytes()).hexdigest(), tar.name


def test_a_missing_stamps_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = load_script(SCRIPT).main(["--stamps", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("error:") == 1 and "nowhere" in err and "Traceback" not in err


def test_too_few_stamps_for_the_shards_is_one_error_line(
    stamps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = load_script(SCRIPT).main(
        ["--stamps", str(stamps), "--out", str(tmp_path / "o"), "--train-shards", "50"]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ")
