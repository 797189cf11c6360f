"""Captions become open_clip BPE tokens of a configurable context length."""

from __future__ import annotations

import pytest
import torch

from vtp_lightning.data import CaptionTokenizer
from vtp_lightning.errors import ConfigError

START, END = 49406, 49407


def test_tokens_have_context_length_and_start_end_markers() -> None:
    tokens = CaptionTokenizer(context_length=16)(["a photo of a dress.", "an image of a bag."])
    assert tokens.shape == (2, 16) and tokens.dtype == torch.long
    assert tokens[:, 0].eq(START).all()
    assert (tokens == END).sum(1).tolist() == [1, 1]


def test_long_captions_are_truncated_but_keep_the_end_token() -> None:
    tokens = CaptionTokenizer(context_length=8)(["word " * 50])
    assert tokens.shape == (1, 8) and tokens[0, -1] == END


def test_context_length_must_fit_start_and_end() -> None:
    with pytest.raises(ConfigError, match="context_length must be at least 2"):
        CaptionTokenizer(context_length=1)
