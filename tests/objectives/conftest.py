"""Tiny tokenizers and hand-built training batches (CONTRACTS layout) for the objective tests.

Helpers reach the tests through fixtures, so the tests do not depend on how pytest puts test
folders on ``sys.path``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from tiny_sizes import tiny_options

from vtp_lightning.objectives import ContrastiveMixin, TokenizerModule

IMAGE_SIZE = 16
PATCH_SIZE = 4
CONTEXT = 8
EOT_TOKEN = 49407  # the highest id: the text tower pools at the argmax token


def tiny_kwargs(cls: type[TokenizerModule]) -> dict[str, Any]:
    """Constructor arguments that make any composition small enough for a CPU unit test: the tests'
    tiny sizes, on 16 px images with 8-token captions, and two encoder blocks (the linear
    stochastic-depth schedule gives a single block the rate 0, and the drop-path tests need a draw)."""
    kwargs = tiny_options(cls) | {"encoder_depth": 2, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}
    if issubclass(cls, ContrastiveMixin):
        kwargs["clip_text_context_length"] = CONTEXT
    return kwargs


def build_batch(
    batch_size: int = 4, ssl_rows: int = 2, num_local: int = 2, local_size: int = 8, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A training batch as ``VTPDataModule`` yields it, with every optional key present."""
    g = torch.Generator().manual_seed(seed)
    grid = IMAGE_SIZE // PATCH_SIZE
    text = torch.randint(1, 1000, (batch_size, CONTEXT), generator=g)
    text[:, -1] = EOT_TOKEN
    masks = torch.rand(2, ssl_rows, grid, grid, generator=g) < 0.4
    masks[0, 0, 0, 0] = True  # at least one masked patch
    return {
        "image": torch.rand(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 2 - 1,
        "text": text,
        "label": torch.arange(batch_size),
        "global_crops": torch.rand(2, ssl_rows, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 2 - 1,
        "local_crops": torch.rand(num_local, ssl_rows, 3, local_size, local_size, generator=g) * 2 - 1,
        "masks": masks,
    }


@pytest.fixture
def make_tokenizer() -> Callable[..., TokenizerModule]:
    """``make_tokenizer(cls, **overrides)``: a tiny, seeded instance of a composition."""

    def make(cls: type[TokenizerModule], **overrides: Any) -> TokenizerModule:
        torch.manual_seed(0)
        return cls(**{**tiny_kwargs(cls), **overrides})

    return make


@pytest.fixture
def make_batch() -> Callable[..., dict[str, torch.Tensor]]:
    return build_batch
