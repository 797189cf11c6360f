"""Build 256 px image-caption WebDataset shards from Debian's ``tuxpaint-stamps-default``.

Tux Paint's stamps are about 800 RGBA drawings (animals, food, vehicles, ...), each PNG next to a
``.txt`` whose first line is an English caption (the other lines are ``<locale>.utf8=`` translations).
Each stamp is composited over a plain background, scaled so its longer side is ``--size`` pixels and
padded to a square, and written as one WebDataset sample ``<key>.png`` + ``<key>.txt`` + ``<key>.cls``:
what :class:`vtp_lightning.data.WebDatasetShards` reads. The label is the stamp's top-level folder
(its category); ``classes.txt`` lists the categories by label for zero-shot.

Stamps without a caption (the ``*_mirror.png`` variants) and the SVG-only stamps (no rasteriser is
installed here) are left out and counted in ``manifest.json``. The split is deterministic and
stratified: within each category, stamps ordered by a hash of their path, the first
``--val-fraction`` (at least one when a category has two or more) go to validation. Samples are dealt
to shards in hash order, so every shard mixes categories and shard sizes differ by at most one.

Run with ``make tuxpaint-shards``. Without ``--stamps`` the package is fetched with
``apt-get download`` and unpacked with ``dpkg-deb -x`` into a cache folder (nothing is installed).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PACKAGE = "tuxpaint-stamps-default"
STAMPS_IN_PACKAGE = Path("usr/share/tuxpaint/stamps")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "outputs" / "tuxpaint"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vtp-lightning" / PACKAGE
#: folder names that are two words run together
DISPLAY_NAMES = {"naturalforces": "natural forces"}
TRANSLATION_LINE = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z]{2})?(@\w+)?\.utf8=")


@dataclass(frozen=True)
class Stamp:
    """One captioned stamp: its PNG, English caption and category folder."""

    path: Path
    relative: str
    caption: str
    category: str

    @property
    def order(self) -> str:
        """A fixed pseudo-random position (mixes categories across shards, independent of the file system)."""
        return hashlib.sha256(self.relative.encode()).hexdigest()

    @property
    def key(self) -> str:
        """The WebDataset key: the relative path without suffix, with no dots or slashes."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.relative.removesuffix(".png").replace("/", "__"))


def english_caption(text: str) -> str:
    """The first line of a stamp's ``.txt`` that is not a ``<locale>.utf8=`` translation ('' if none)."""
    for line in text.splitlines():
        line = line.strip()
        if line and not TRANSLATION_LINE.match(line):
            return line
    return ""


def find_stamps(root: Path) -> tuple[list[Stamp], Counter[str]]:
    """Captioned PNG stamps under ``root`` (category = first folder) and what was left out, by reason."""
    stamps: list[Stamp] = []
    left_out: Counter[str] = Counter()
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() == ".svg" and not path.with_suffix(".png").exists():
            left_out["svg only (no rasteriser)"] += 1
        if path.suffix.lower() != ".png":
            continue
        relative = path.relative_to(root).as_posix()
        if "/" not in relative:
            left_out["not in a category folder"] += 1
            continue
        text_file = path.with_suffix(".txt")
        caption = (
            english_caption(text_file.read_text(encoding="utf-8", errors="replace"))
            if text_file.exists()
            else ""
        )
        if not caption:
            left_out["no English caption"] += 1
            continue
        stamps.append(Stamp(path, relative, caption, relative.split("/", 1)[0]))
    return stamps, left_out


def split(stamps: list[Stamp], val_fraction: float) -> tuple[list[Stamp], list[Stamp]]:
    """Stratified, deterministic (train, val), each in hash order."""
    train: list[Stamp] = []
    val: list[Stamp] = []
    for category in sorted({s.category for s in stamps}):
        members = sorted((s for s in stamps if s.category == category), key=lambda s: s.order)
        n_val = round(len(members) * val_fraction)
        if val_fraction > 0 and len(members) >= 2:
            n_val = max(1, n_val)
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train, key=lambda s: s.order), sorted(val, key=lambda s: s.order)


def square_image(path: Path, size: int, background: tuple[int, int, int]) -> Image.Image:
    """The stamp over ``background``, its longer side scaled to ``size``, padded to ``size`` x ``size``."""
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, (*background, 255))
    flat.alpha_composite(rgba)
    width, height = flat.size
    scale = size / max(width, height)
    scaled = flat.convert("RGB").resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(scaled, ((size - scaled.width) // 2, (size - scaled.height) // 2))
    return canvas


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # no clock in the bytes: reruns are identical
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    stamps: list[Stamp],
    out: Path,
    prefix: str,
    num_shards: int,
    labels: dict[str, int],
    size: int,
    background: tuple[int, int, int],
) -> list[int]:
    """Deal ``stamps`` round-robin into ``prefix-000000.tar`` ...; return the samples per shard."""
    counts = []
    for index in range(num_shards):
        members = stamps[index::num_shards]
        with tarfile.open(out / f"{prefix}-{index:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for stamp in members:
                buffer = io.BytesIO()
                square_image(stamp.path, size, background).save(buffer, format="PNG")
                _add(tar, f"{stamp.key}.png", buffer.getvalue())
                _add(tar, f"{stamp.key}.txt", stamp.caption.encode())
                _add(tar, f"{stamp.key}.cls", str(labels[stamp.category]).encode())
        counts.append(len(members))
    return counts


def fetch_package(cache: Path) -> Path:
    """The package's stamps folder, downloaded and unpacked into ``cache`` unless already there."""
    stamps = cache / "root" / STAMPS_IN_PACKAGE
    if stamps.is_dir():
        return stamps
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, check=True)
        debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(cache / "root")], check=True)
    return stamps


def build(
    stamps_root: Path,
    out: Path,
    size: int = 256,
    val_fraction: float = 0.1,
    train_shards: int = 8,
    val_shards: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
) -> dict:
    """Write the shards, ``classes.txt`` and ``manifest.json`` into ``out``; return the manifest."""
    stamps, left_out = find_stamps(stamps_root)
    categories = sorted({s.category for s in stamps})
    labels = {category: label for label, category in enumerate(categories)}
    train, val = split(stamps, val_fraction)
    if len(train) < train_shards or len(val) < val_shards:
        raise ValueError(
            f"{len(train)} train / {len(val)} val stamps cannot fill {train_shards} / {val_shards} shards; "
            "lower --train-shards / --val-shards"
        )
    out.mkdir(parents=True, exist_ok=True)
    class_names = [DISPLAY_NAMES.get(c, c) for c in categories]
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in class_names))
    manifest = {
        "source": str(stamps_root),
        "image_size": size,
        "background": list(background),
        "class_names": class_names,
        "left_out": dict(left_out),
        "splits": {},
    }
    for prefix, members, shards in (("train", train, train_shards), ("val", val, val_shards)):
        counts = write_shards(members, out, prefix, shards, labels, size, background)
        manifest["splits"][prefix] = {
            "urls": f"{prefix}-{{{0:06d}..{shards - 1:06d}}}.tar",
            "samples": len(members),
            "samples_per_shard": counts,
            "per_class": {
                name: sum(s.category == c for s in members) for c, name in zip(categories, class_names)
            },
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def fail(message: str) -> int:
    """One ``error:`` line on stderr and exit status 2, as the CLI does for bad input."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stamps", type=Path, help="a Tux Paint stamps folder (default: fetch the package)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the package is unpacked")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder for shards")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--train-shards", type=int, default=8)
    parser.add_argument("--val-shards", type=int, default=2)
    args = parser.parse_args(argv)
    if args.size < 1 or not 0.0 <= args.val_fraction < 1.0 or min(args.train_shards, args.val_shards) < 1:
        return fail("--size and the shard counts must be positive and --val-fraction in [0, 1)")
    try:
        root = args.stamps if args.stamps is not None else fetch_package(args.cache)
    except (OSError, subprocess.CalledProcessError) as exc:
        return fail(
            f"cannot fetch {PACKAGE} ({exc}); install it and pass --stamps /usr/share/tuxpaint/stamps"
        )
    if not root.is_dir():
        return fail(f"stamps folder not found: {root}; pass --stamps <folder of category folders>")
    try:
        manifest = build(root, args.out, args.size, args.val_fraction, args.train_shards, args.val_shards)
    except ValueError as exc:
        return fail(str(exc))
    train, val = manifest["splits"]["train"], manifest["splits"]["val"]
    print(
        f"{train['samples']} train + {val['samples']} val stamps in {len(manifest['class_names'])} categories "
        f"-> {args.out} ({train['urls']}, {val['urls']}); left out: {manifest['left_out']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
