"""Image-caption pairs listed in a JSONL or CSV file.

Each row has ``image`` (a path, relative to ``image_root`` or else to the caption file's folder),
``caption`` (real text, used as is) and optionally ``label`` (an int id or a class name). The whole
file is parsed and checked when the source is built, so a bad row fails at start-up with its line
number, not hours into training; images are only opened when read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vtp_lightning.data.image_io import open_image
from vtp_lightning.data.sources.base import IndexedSource, Sample
from vtp_lightning.data.text_bytes import utf8_text
from vtp_lightning.errors import ConfigError, DataError

FORMATS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; bytes that are not UTF-8 are one error naming the line."""
    return utf8_text(path.read_bytes(), str(path), "save the caption file as UTF-8")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with io.StringIO(_read_text(path)) as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {line_number}: invalid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {line_number}: expected a JSON object with image and caption")
            yield line_number, row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with io.StringIO(_read_text(path), newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "image" not in columns or "caption" not in columns:
            raise DataError(
                f"{path}: the CSV header must name the columns image and caption (optional label), "
                f"found {columns}"
            )
        for row in reader:
            yield reader.line_num, row


def _label_value(raw: Any, where: str) -> int | str:
    """An int id, a class name, or -1 for a missing label."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return -1
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise DataError(f"{where}: label must be an int or a class name, got {raw!r}")
    if isinstance(raw, str):
        text = raw.strip()
        if not text.lstrip("-").isdigit():
            return text
        raw = int(text)
    if raw < -1:
        raise DataError(f"{where}: label {raw} is negative; use -1 (or leave it out) for unknown")
    return raw


class CaptionFile(IndexedSource):
    """Image-caption pairs from a JSONL or CSV file with ``image``, ``caption`` and optional ``label``.

    Args:
        path: the ``.jsonl`` / ``.csv`` file.
        image_root: folder that relative image paths start from; ``None`` means the file's own folder.
        class_names: names indexed by label; named labels are looked up here. ``None`` infers them
            (sorted) from named labels, or leaves the source without classes when labels are ints.
        format: ``"auto"`` (by extension), ``"jsonl"`` or ``"csv"``.
    """

    def __init__(
        self,
        path: str | Path,
        image_root: str | Path | None = None,
        class_names: list[str] | None = None,
        format: str = "auto",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"caption file not found: {self.path}; pass path: <a .jsonl or .csv file>")
        kind = FORMATS.get(self.path.suffix.lower()) if format == "auto" else format
        if kind not in ("jsonl", "csv"):
            raise ConfigError(
                f"CaptionFile {self.path}: unknown format {format!r} (extension {self.path.suffix!r}); "
                f"use a file ending in {', '.join(FORMATS)} or set format: jsonl | csv"
            )
        self.image_root = Path(image_root) if image_root is not None else self.path.parent
        rows = _jsonl_rows(self.path) if kind == "jsonl" else _csv_rows(self.path)
        self._images: list[Path] = []
        self._captions: list[str] = []
        raw_labels: list[tuple[str, int | str]] = []
        for line_number, row in rows:
            where = f"{self.path}, line {line_number}"
            image, caption = row.get("image"), row.get("caption")
            if not isinstance(image, str) or not image.strip():
                raise DataError(f"{where}: row has no image path; every row needs a non-empty 'image'")
            if not isinstance(caption, str) or not caption.strip():
                raise DataError(f"{where}: row has no caption; every row needs a non-empty 'caption'")
            self._images.append(self.image_root / image.strip())
            self._captions.append(caption.strip())
            raw_labels.append((where, _label_value(row.get("label"), where)))
        if not self._images:
            raise DataError(f"caption file {self.path} contains no rows; add image/caption rows")
        self.class_names, self._labels = _resolve_labels(raw_labels, class_names)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> Sample:
        return Sample(
            image=open_image(self._images[index]), caption=self._captions[index], label=self._labels[index]
        )

    def labels(self) -> Sequence[int]:
        return self._labels

    def describe(self) -> str:
        return f"CaptionFile({self.path})"


def _resolve_labels(
    raw: list[tuple[str, int | str]], class_names: list[str] | None
) -> tuple[list[str] | None, list[int]]:
    """Map named labels to ids; infer the class list from the names when none is given."""
    named = [value for _, value in raw if isinstance(value, str)]
    if class_names is None and named:
        if any(isinstance(value, int) and value >= 0 for _, value in raw):
            where = next(w for w, v in raw if isinstance(v, int) and v >= 0)
            raise DataError(f"{where}: labels mix ids and class names; use one kind or pass class_names")
        class_names = sorted(set(named))
    index = {name: i for i, name in enumerate(class_names or [])}
    labels: list[int] = []
    for where, value in raw:
        if isinstance(value, str):
            if value not in index:
                raise DataError(f"{where}: unknown class name {value!r}; known: {class_names}")
            labels.append(index[value])
        else:
            if class_names is not None and value >= len(class_names):
                raise DataError(f"{where}: label {value} is out of range for {len(class_names)} class_names")
            labels.append(value)
    return (list(class_names) if class_names is not None else None), labels
