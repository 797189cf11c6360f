"""Optional ``torch.compile`` of the transformer blocks' residual branches (model option, off by default).

Only the attention and FFN branches are compiled; the stochastic-depth row selection around them
(a random subset of the batch, :mod:`vtp_lightning.models.stochastic_depth`) stays eager, so it
causes no graph break. Every block shares the same two compiled functions (blocks are passed as an
argument, their parameters become graph inputs), so depth does not multiply compilations.

Recompiles: the batch and token dimensions (and the RoPE tables' token dimension) are marked
dynamic before each call, so crop sizes (global, local, decoder grid) and the varying number of
kept rows reuse one graph. What still gets its own graph is each distinct grad mode (the EMA
teacher runs under ``no_grad``), prefix-token count (encoder with CLS, decoder without) and a
one-row batch (dynamo specialises sizes 0 and 1; stochastic depth can keep a single row), and the
FFN on gathered ``(M, D)`` rows (``ssl_scored_tokens_only``'s last block): at most about five graphs
per branch in a full VTP step, under dynamo's default cache limit of 8.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from vtp_lightning.models.blocks import Block


def _attention_branch(
    block: Block, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, num_prefix: int
) -> torch.Tensor:
    return block.attn(block.norm1(x), rope, num_prefix)


def _ffn_branch(block: Block, x: torch.Tensor) -> torch.Tensor:
    return block.mlp(block.norm2(x))


def _dynamic(*tensors: torch.Tensor, dims: tuple[int, ...]) -> None:
    for t in tensors:
        for d in dims:
            if t.dim() > d:
                torch._dynamo.maybe_mark_dynamic(t, d)


def compile_block_branches(root: nn.Module, **compile_kwargs: Any) -> int:
    """Route the branches of every :class:`Block` under ``root`` through ``torch.compile``.

    ``compile_kwargs`` go to ``torch.compile`` (e.g. ``backend="eager"`` in tests). Returns the
    number of blocks changed. Safe to deep-copy afterwards (an EMA teacher copy calls its own block).
    """
    attention = torch.compile(_attention_branch, **compile_kwargs)
    ffn = torch.compile(_ffn_branch, **compile_kwargs)

    def attention_call(
        block: Block, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, num_prefix: int
    ) -> torch.Tensor:
        _dynamic(x, dims=(0, 1))
        if rope is not None:
            _dynamic(*rope, dims=(0,))
        return attention(block, x, rope, num_prefix)

    def ffn_call(block: Block, x: torch.Tensor) -> torch.Tensor:
        _dynamic(x, dims=(0, 1))
        return ffn(block, x)

    count = 0
    for module in root.modules():
        if isinstance(module, Block):
            # Instance attributes shadow the eager methods; partials deep-copy onto the copied block.
            module.attention_branch = functools.partial(attention_call, module)
            module.ffn_branch = functools.partial(ffn_call, module)
            count += 1
    return count
