"""The text tower on live tokens only: open_clip's embedding, its gradients, and less work on padding."""

from __future__ import annotations

import pytest
import torch
from open_clip.transformer import TextTransformer
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.text import TextConfig, build_text_tower
from vtp_lightning.models.text_live_tokens import check_live_token_support, live_token_text_forward

EOT = 999  # the highest id in these captions: open_clip pools at the argmax token


def small_tower() -> TextTransformer:
    torch.manual_seed(0)
    return build_text_tower(
        TextConfig(context_length=16, vocab_size=1000, width=64, layers=3, heads=4, embed_dim=32)
    )


def captions(eot_positions: list[int], context: int = 16, seed: int = 0) -> torch.Tensor:
    """Random word ids, the EOT at each given position, zero padding after it (open_clip's layout)."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, EOT, (len(eot_positions), context), generator=g)
    for row, eot in enumerate(eot_positions):
        text[row, eot] = EOT
        text[row, eot + 1 :] = 0
    return text


def test_embedding_and_gradients_equal_open_clips_forward_for_short_full_and_one_token_captions():
    tower = small_tower().train()
    text = captions([3, 15, 0, 7])  # mid-length, the full context, EOT alone, another length
    expected = tower(text)
    expected_grads = torch.autograd.grad(expected.square().sum(), list(tower.parameters()))
    got = live_token_text_forward(tower, text)
    got_grads = torch.autograd.grad(got.square().sum(), list(tower.parameters()))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for name_param, g_expected, g_got in zip(
        tower.named_parameters(), expected_grads, got_grads, strict=True
    ):
        # float32 rounding is relative to the tensor's scale (gradients reach ~300 here), so an entry
        # near zero is compared to that scale, not to itself
        scale = float(g_expected.abs().max())
        torch.testing.assert_close(g_got, g_expected, rtol=1e-4, atol=1e-6 * scale, msg=name_param[0])


def test_tokens_after_the_eot_are_not_computed():
    tower = small_tower().eval()
    quarter_full = captions([3, 2, 3, 1])  # at most 4 of 16 positions live

    def flops(forward) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward()
        return counter.get_total_flops()

    full = flops(lambda: tower(quarter_full))
    live = flops(lambda: live_token_text_forward(tower, quarter_full))
    assert live < 0.3 * full  # 13 live tokens of 64 (~0.2), plus attention over the 4 kept positions


def test_padding_content_cannot_change_the_embedding():
    tower = small_tower().eval()
    text = captions([5, 9])
    noisy = text.clone()
    noisy[0, 6:] = torch.arange(1, 11)  # garbage after the EOT of caption 0 (ids below the EOT id)
    with torch.no_grad():
        torch.testing.assert_close(
            live_token_text_forward(tower, noisy), live_token_text_forward(tower, text)
        )


@pytest.mark.parametrize("change", ["pool_first", "no_causal_mask"])
def test_a_tower_whose_output_depends_on_padding_is_refused_with_the_option_named(change: str):
    tower = small_tower()
    if change == "pool_first":
        tower.pool_type = "first"
    else:
        tower.attn_mask = None
    with pytest.raises(ConfigError, match="clip_text_live_tokens_only"):
        check_live_token_support(tower)


def test_tokenizer_option_gives_the_same_text_embedding_as_the_full_tower():
    from vtp_lightning.tokenizer import VTPTokenizer

    options = dict(
        encoder="tiny",
        image_size=32,
        patch_size=4,
        latent_dim=8,
        clip_text_width=64,
        clip_text_layers=2,
        clip_text_heads=4,
        clip_embed_dim=32,
        clip_text_context_length=16,
        dino_weight=0.0,
        mim_weight=0.0,
        koleo_weight=0.0,
        rec_weight=0.0,
    )
    torch.manual_seed(0)
    full = VTPTokenizer(**options)
    torch.manual_seed(0)
    live = VTPTokenizer(**options, clip_text_live_tokens_only=True)
    text = captions([4, 11, 15], context=16)
    with torch.no_grad():
        torch.testing.assert_close(live.encode_text(text), full.encode_text(text), rtol=1e-5, atol=1e-6)


def test_an_fsdp1_unit_inside_the_text_tower_is_refused_with_the_option_named():
    """FSDP1 flattens a unit's parameters and gathers them only in its forward, which the live-token
    path bypasses (FSDP2 units are supported: tests/fsdp)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    tower = small_tower()
    unit = FullyShardedDataParallel.__new__(FullyShardedDataParallel)  # an FSDP1 wrapper's type, unwired
    nn.Module.__init__(unit)
    tower.transformer.resblocks[0].add_module("fsdp1_unit", unit)
    with pytest.raises(ConfigError, match="clip_text_live_tokens_only"):
        live_token_text_forward(tower, captions([3, 5]))


def test_grad_checkpointing_on_the_tower_is_refused_rather_than_silently_skipped():
    tower = small_tower()
    tower.set_grad_checkpointing(True)
    with pytest.raises(ConfigError, match="grad checkpointing"):
        live_token_text_forward(tower, captions([3, 5]))
