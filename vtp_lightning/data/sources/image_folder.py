"""Images sorted into one sub-folder per class (``root/<class>/<any depth>/<image>``).

The class names are the sub-folder names (sorted, underscores read as spaces) and the labels their
positions. **Captions are templated** over the class name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vtp_lightning.data.image_io import IMAGE_EXTENSIONS, open_image
from vtp_lightning.data.sources.base import IndexedSource, Sample
from vtp_lightning.data.templates import folder_class_name, templated_caption
from vtp_lightning.errors import DataError


class ImageFolder(IndexedSource):
    """A folder of class sub-folders of images; captions are templates over the folder name.

    Args:
        root: the folder whose sub-folders are the classes.
        random_templates: draw a random caption template per access (set ``false`` for a validation
            folder so its captions are fixed).
    """

    def __init__(self, root: str | Path, random_templates: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"image folder not found: {self.root}; pass root: <folder with one sub-folder per class>"
            )
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self._files: list[Path] = []
        self._labels: list[int] = []
        for label, folder in enumerate(folders):
            files = sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            self._files += files
            self._labels += [label] * len(files)
        if not self._files:
            raise DataError(
                f"image folder {self.root} contains no images in class sub-folders; expected "
                f"{self.root}/<class name>/<image> with extensions {', '.join(IMAGE_EXTENSIONS)}"
            )
        self.class_names = [folder_class_name(f.name) for f in folders]
        self.random_templates = random_templates

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> Sample:
        label = self._labels[index]
        caption = templated_caption(self.class_names[label], index, self.random_templates)
        return Sample(image=open_image(self._files[index]), caption=caption, label=label)

    def labels(self) -> Sequence[int]:
        return self._labels

    def describe(self) -> str:
        return f"ImageFolder({self.root})"
