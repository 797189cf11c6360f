"""The text tower's pooled embedding computed from the tokens that can reach it, and no others.

open_clip's text transformer is causal and pools at each caption's EOT token (the highest BPE id),
so the padding after the EOT never influences the embedding, yet its forward runs every layer on
every one of the ``context_length`` positions. Web alt-text captions are mostly one short
sentence, well inside a 77-token context, so much of the tower's work is on padding.

This forward runs open_clip's own modules (embeddings, ``ln_1``/``ln_2``, the attention's packed
in-projection and out-projection, the MLP, ``ln_final``, the projection) on the live tokens only,
packed as one ``(T, width)`` matrix. Attention, the only step that mixes tokens, scatters the
packed q/k/v into a zero-padded ``(B, heads, L, head_dim)`` layout cut at the longest caption and
runs causal SDPA there; a live query only attends to earlier positions, which are live. The last
layer's out-projection and MLP run on the EOT rows alone, the only rows pooled.

Same function as ``tower(text)``; float rounding differs (matrix products over fewer rows sum
their weight gradients in another order), which is why the module option that selects it is off
unless asked for. Why not open_clip's own: it has no variable-length path, and nested tensors do
not reach its ``nn.MultiheadAttention`` in training.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import TextTransformer
from torch import nn

from vtp_lightning.errors import ConfigError

try:
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel, register_fsdp_forward_method

    _FSDP1_UNITS: tuple[type, ...] = (FullyShardedDataParallel,)
except ImportError:  # a torch built without distributed
    FSDPModule, register_fsdp_forward_method = (), None  # type: ignore[assignment]
    _FSDP1_UNITS = ()


def check_live_token_support(tower: TextTransformer) -> None:
    """Raise ``ConfigError`` unless ``tower`` is the causal, argmax-pooled, self-attention tower this supports."""
    problems = []
    if tower.cls_emb is not None or getattr(tower, "use_pad_mask", False):
        problems.append("a class token or padding mask")
    if tower.pool_type != "argmax":
        problems.append(f"pool_type {tower.pool_type!r} (needs 'argmax')")
    if tower.attn_mask is None:
        problems.append("no causal mask")
    if not tower.transformer.batch_first:
        problems.append("sequence-first layout")
    for block in tower.transformer.resblocks:
        attn = getattr(block, "attn", None)
        if (
            not isinstance(attn, nn.MultiheadAttention)
            or attn.in_proj_weight is None
            or hasattr(block, "ln_1_kv")
        ):
            problems.append("a block without packed self-attention")
            break
    if problems:
        raise ConfigError(
            "clip_text_live_tokens_only needs open_clip's causal text tower with EOT (argmax) pooling; this "
            f"tower has {', '.join(problems)}. Set model.init_args.clip_text_live_tokens_only to false."
        )


def live_token_text_forward(tower: TextTransformer, text: torch.Tensor) -> torch.Tensor:
    """``tower(text)`` (the projected EOT embedding, ``(B, embed_dim)``) computed on live tokens only."""
    if any(isinstance(m, _FSDP1_UNITS) for m in tower.modules()):
        # FSDP1 flattens a unit's parameters and gathers them in its forward only; the calls below
        # bypass that forward. FSDP2 units (vtp_lightning.fsdp) are entered through registered methods.
        raise ConfigError(
            "clip_text_live_tokens_only calls the text blocks' layers directly, which FSDP1 units inside the "
            "text tower do not support; use the FSDP2 strategy (vtp_lightning.fsdp.FSDP2Strategy), wrap only "
            "the whole model (no auto_wrap_policy), or set model.init_args.clip_text_live_tokens_only to false."
        )
    if tower.transformer.grad_checkpointing:
        raise ConfigError(
            "clip_text_live_tokens_only does not recompute activations (open_clip's grad checkpointing is "
            "on for the text tower); switch one of them off."
        )
    return _as_fsdp_forward(tower, "live_token_forward", _tower_forward)(text)


def _as_fsdp_forward(module: nn.Module, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` bound to ``module``; for an FSDP2 unit, run as one of its forward methods (its
    parameters gathered before, freed and their gradients reduce-scattered after, as ``forward``).

    Registered once per unit under ``name`` (torch's ``register_fsdp_forward_method``).
    """
    if not isinstance(module, FSDPModule):
        return functools.partial(function, module)
    if name not in vars(module):
        setattr(module, name, functools.partial(function, module))
        register_fsdp_forward_method(module, name)
    return getattr(module, name)


def _tower_forward(tower: TextTransformer, text: torch.Tensor) -> torch.Tensor:
    batch, _ = text.shape
    eot = text.argmax(dim=-1)  # the pooled position (first highest id, as open_clip's argmax pool)
    length = int(eot.max()) + 1  # no caption has a live token past this
    positions = torch.arange(length, device=text.device)
    # (caption, position) of every token the pooled output depends on, found once (on a GPU each
    # boolean-mask lookup would wait for the device)
    live = (positions[None, :] <= eot[:, None]).nonzero(as_tuple=True)
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(text[live]).to(cast_dtype)
    x = x + tower.positional_embedding[live[1]].to(cast_dtype)
    # Row of each caption's EOT in the packed matrix: live tokens are packed caption by caption.
    eot_rows = torch.cumsum(eot + 1, dim=0) - 1
    blocks = list(tower.transformer.resblocks)
    for index, block in enumerate(blocks):
        kept = eot_rows if index == len(blocks) - 1 else None
        x = _as_fsdp_forward(block, "live_token_forward", _block_forward)(x, live, (batch, length), kept)
    pooled = tower.ln_final(x)
    projection = tower.text_projection
    if isinstance(projection, nn.Linear):
        return projection(pooled)
    return pooled @ projection if projection is not None else pooled


def _block_forward(
    block: nn.Module,
    x: torch.Tensor,
    live: tuple[torch.Tensor, torch.Tensor],
    shape: tuple[int, int],
    kept: torch.Tensor | None,
) -> torch.Tensor:
    """One residual block on packed rows ``x`` ``(T, W)``; with ``kept`` (the last block: the EOT
    rows), the out-projection and MLP run on those rows only and only they are returned."""
    attended = _causal_attention(block, block.ln_1(x), live, shape)
    if kept is not None:
        x, attended = x[kept], attended[kept]
    x = x + block.ls_1(block.attn.out_proj(attended))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _causal_attention(
    block: nn.Module, h: torch.Tensor, live: tuple[torch.Tensor, torch.Tensor], shape: tuple[int, int]
) -> torch.Tensor:
    """Multi-head causal self-attention of packed rows ``h`` ``(T, W)`` at ``live`` (caption, position)
    of a ``shape`` = ``(B, L)`` padded layout; returns the heads' output ``(T, W)`` before the
    out-projection (which the caller applies to the rows it keeps)."""
    attn: nn.MultiheadAttention = block.attn
    batch, length = shape
    width, heads = attn.embed_dim, attn.num_heads
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # (T, 3W)
    padded = qkv.new_zeros(batch, length, 3 * width).index_put(live, qkv)
    q, k, v = padded.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(
        q, k, v, dropout_p=attn.dropout if attn.training else 0.0, is_causal=True
    )
    return out.transpose(1, 2)[live].reshape(-1, width)
