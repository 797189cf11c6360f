"""Every image mode reaches the model as the picture a viewer would show, in 8-bit RGB.

Each test writes its own file with a mode that ``convert("RGB")`` gets wrong (junk colours under
transparent pixels, 16-bit and float greys, EXIF-rotated photos, oversized images) and compares the
decoded pixels with the answer computed here in numpy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vtp_lightning.data import VTPDataModule
from vtp_lightning.data.datasets import TrainItems, Unreadable
from vtp_lightning.data.image_io import configure_image_reading, decode_image_bytes, open_image
from vtp_lightning.data.sources.image_folder import ImageFolder
from vtp_lightning.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def default_reading() -> Iterator[None]:
    configure_image_reading()
    yield
    configure_image_reading()


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(np.int64)


def _composite(colour: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """``a * colour + (1 - a) * background`` per channel, with a in [0, 1]."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.rint(a * colour + (1 - a) * np.array(background, dtype=np.float64)).astype(np.int64)


def _junk_under_transparency(rng: np.random.Generator, channels: int) -> tuple[np.ndarray, np.ndarray]:
    colour = rng.integers(0, 256, (12, 10, channels), dtype=np.uint8)
    alpha = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    alpha[:4] = 0  # fully transparent rows over random (junk) colours
    alpha[4:6] = 255
    return colour, alpha


@pytest.mark.parametrize("background", [(255, 255, 255), (10, 200, 30)], ids=["white", "custom"])
def test_rgba_is_composited_over_the_background(background: tuple[int, int, int], tmp_path: Path) -> None:
    configure_image_reading(background=background)
    colour, alpha = _junk_under_transparency(np.random.default_rng(0), 3)
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([colour, alpha]), mode="RGBA").save(path)
    pixels = _pixels(open_image(path))
    assert (pixels[:4] == np.array(background)).all()  # nothing of the junk shows through
    assert np.abs(pixels - _composite(colour, alpha, background)).max() <= 1


def test_grey_with_alpha_is_composited_over_white(tmp_path: Path) -> None:
    grey, alpha = _junk_under_transparency(np.random.default_rng(1), 1)
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([grey, alpha]), mode="LA").save(path)
    pixels = _pixels(open_image(path))
    expected = _composite(np.repeat(grey, 3, axis=2), alpha, (255, 255, 255))
    assert (pixels[:4] == 255).all()
    assert np.abs(pixels - expected).max() <= 1


def test_a_palette_image_with_a_transparent_index_shows_the_background_there(tmp_path: Path) -> None:
    indices = np.zeros((8, 8), dtype=np.uint8)
    indices[2:6, 2:6] = 1
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # index 0 is red junk, 1 is blue
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    pixels = _pixels(open_image(path))
    assert (pixels[indices == 0] == 255).all()  # white, not red
    assert (pixels[indices == 1] == [0, 0, 255]).all()


def test_a_16_bit_grey_ramp_keeps_its_full_range_and_order(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 512).round().astype(np.uint16)[None, :].repeat(4, axis=0)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    pixels = _pixels(open_image(path))
    row = pixels[0, :, 0]
    assert row.min() == 0 and row.max() == 255
    assert (np.diff(row) >= 0).all()
    assert len(np.unique(row)) == 256  # every 8-bit level, not just {0, 255}
    assert np.abs(row - np.rint(ramp[0] * 255.0 / 65535.0)).max() == 0
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_a_float_grey_image_in_0_1_is_scaled_to_8_bit(tmp_path: Path) -> None:
    values = np.linspace(0.0, 1.0, 64, dtype=np.float32)[None, :].repeat(3, axis=0)
    path = tmp_path / "float.tif"
    Image.fromarray(values, mode="F").save(path)
    row = _pixels(open_image(path))[0, :, 0]
    assert np.abs(row - np.rint(values[0] * 255.0)).max() == 0


def test_the_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(stored, mode="RGB").save(path, exif=exif)
    shown = _pixels(open_image(path))
    assert shown.shape == (3, 2, 3)
    assert (shown == np.rot90(stored, k=-1)).all()


@pytest.mark.parametrize("side", [40, 64], ids=["between-the-limit-and-twice-it", "over-twice-the-limit"])
def test_an_image_over_the_pixel_limit_is_a_data_error(side: int, tmp_path: Path) -> None:
    configure_image_reading(max_pixels=1000)
    path = tmp_path / "bomb.png"
    Image.new("RGB", (side, side)).save(path)
    with pytest.raises(DataError, match=r"bomb\.png.*1000-pixel limit.*max_image_pixels"):
        open_image(path)
    with pytest.raises(DataError, match="shard.tar"):
        decode_image_bytes(path.read_bytes(), "shard.tar: bomb")
    configure_image_reading(max_pixels=side * side)  # raising the limit lets it through
    assert open_image(path).size == (side, side)


def test_an_oversized_image_is_skipped_with_skip_corrupt_and_the_limit_is_a_data_option(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "folder" / "cls"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    Image.new("RGB", (64, 64)).save(folder / "b.png")
    source = ImageFolder(tmp_path / "folder")
    VTPDataModule(train=source, max_image_pixels=1000)
    assert TrainItems(source, skip_corrupt=True)[1] == Unreadable(str(folder / "b.png"))
    with pytest.raises(DataError, match="b.png"):
        TrainItems(source, skip_corrupt=False)[1]
    assert TrainItems(source, skip_corrupt=False)[0] is not None


def test_a_bad_background_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="background"):
        VTPDataModule(background=(0, 0, 300))
