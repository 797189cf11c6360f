"""Captions for class-labelled images: prompt templates over the class name.

Fashion-MNIST and image folders have labels but no captions, so their "captions" are *templated*:
one of :data:`CAPTION_TEMPLATES` filled with the class name. Training draws a random template per
sample (so the text tower sees some variety); evaluation uses a fixed template per index so captions
are reproducible. The zero-shot classifier can reuse the same templates.
"""

from __future__ import annotations

import random

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a black and white picture of a {}.",
    "a low resolution photo of a {}.",
    "a grayscale photo of a {}.",
    "a close-up photo of a {}.",
    "a product photo of a {}.",
    "a small picture of a {}.",
    "an image of a {}.",
)


def templated_caption(class_name: str, index: int, randomize: bool) -> str:
    """Fill a template with ``class_name``: a random one when ``randomize``, else ``index``'s fixed one.

    Randomness comes from Python's ``random``, which PyTorch seeds differently in every DataLoader
    worker, so workers do not repeat each other's choices.
    """
    if randomize:
        template = random.choice(CAPTION_TEMPLATES)
    else:
        template = CAPTION_TEMPLATES[index % len(CAPTION_TEMPLATES)]
    return template.format(class_name)


def folder_class_name(folder: str) -> str:
    """Turn a folder name such as ``ankle_boot`` into the class name used in captions."""
    return folder.replace("_", " ").strip()
