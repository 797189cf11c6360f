"""Caption tokenisation with OpenAI CLIP's BPE (open_clip's ``SimpleTokenizer``, works offline)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vtp_lightning.errors import ConfigError


class CaptionTokenizer:
    """Turn captions into ``(B, context_length)`` long token ids, truncating long captions.

    The BPE vocabulary is loaded on first use, because importing open_clip takes seconds.

    Args:
        context_length: tokens per caption including start / end tokens (77 in CLIP, 32 for CPU runs).
    """

    def __init__(self, context_length: int = 32) -> None:
        if context_length < 2:
            raise ConfigError(
                f"context_length must be at least 2 (start and end token), got {context_length}"
            )
        self.context_length = context_length
        self._bpe: Any = None

    def load(self) -> CaptionTokenizer:
        """Load the vocabulary now (e.g. before DataLoader workers fork, so each need not)."""
        if self._bpe is None:
            from open_clip.tokenizer import SimpleTokenizer

            self._bpe = SimpleTokenizer(context_length=self.context_length)
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.load()._bpe.encoder)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.load()._bpe(list(texts), context_length=self.context_length).long()
