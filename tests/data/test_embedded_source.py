"""The embedded Fashion-MNIST slice: shipped in the package, balanced, with templated captions."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from vtp_lightning.data import CAPTION_TEMPLATES, FASHION_MNIST_CLASSES, EmbeddedFashionMNIST
from vtp_lightning.errors import ConfigError


@pytest.mark.parametrize(("split", "size"), [("train", 10_000), ("test", 2_000)])
def test_split_sizes_and_balanced_classes(split: str, size: int) -> None:
    source = EmbeddedFashionMNIST(split=split)
    assert len(source) == size
    assert Counter(int(label) for label in source.labels()) == dict.fromkeys(range(10), size // 10)
    assert source.class_names == list(FASHION_MNIST_CLASSES)


def test_sample_is_grey_uint8_image_with_label_and_caption_naming_the_class() -> None:
    sample = EmbeddedFashionMNIST(split="test")[7]
    assert isinstance(sample.image, np.ndarray)
    assert sample.image.shape == (28, 28) and sample.image.dtype == np.uint8
    assert 0 <= sample.label < 10
    assert FASHION_MNIST_CLASSES[sample.label] in sample.caption


def test_train_captions_draw_random_templates_eval_captions_are_fixed() -> None:
    random.seed(0)
    train = EmbeddedFashionMNIST(split="train")
    assert len({train[0].caption for _ in range(40)}) > 3
    test = EmbeddedFashionMNIST(split="test")
    assert len({test[0].caption for _ in range(10)}) == 1
    name = FASHION_MNIST_CLASSES[test[0].label]
    assert test[0].caption in {t.format(name) for t in CAPTION_TEMPLATES}


def test_about_eight_templates_over_the_class_name() -> None:
    assert 6 <= len(CAPTION_TEMPLATES) <= 12
    assert all(t.count("{}") == 1 for t in CAPTION_TEMPLATES)


def test_unknown_split_is_a_config_error_listing_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown split 'validation'.*\['train', 'test'\]"):
        EmbeddedFashionMNIST(split="validation")
