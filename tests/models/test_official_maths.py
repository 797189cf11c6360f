"""The encoder/decoder options that reproduce the official VTP maths: RoPE on each crop's own
[-1, 1] grid, RMSNorm eps in fp32, SwiGLU hidden width rounded up to a multiple of 8."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vtp_lightning.models.blocks import make_ffn, make_norm
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.rope import Rope2D
from vtp_lightning.models.vit import ViTConfig, ViTEncoder


def _normalized_angles(h: int, w: int, head_dim: int, theta: float) -> np.ndarray:
    """angle = 2π (2(i + 0.5)/n - 1) / θ^(k/(d/4)) per axis: rows first, then columns (float64)."""
    quarter = head_dim // 4
    periods = theta ** (np.arange(quarter) / quarter)
    rows = 2 * (np.arange(h) + 0.5) / h - 1
    cols = 2 * (np.arange(w) + 0.5) / w - 1
    r, c = np.meshgrid(rows, cols, indexing="ij")
    return np.concatenate(
        [2 * np.pi * r.reshape(-1, 1) / periods, 2 * np.pi * c.reshape(-1, 1) / periods], axis=1
    )


@pytest.mark.parametrize(("h", "w"), [(4, 4), (3, 5), (16, 16)])
def test_normalized_rope_places_each_axis_of_the_grid_on_minus_one_one_times_two_pi(h: int, w: int) -> None:
    cos, sin = Rope2D(16, theta=100.0, coords="normalized").tables(h, w, torch.float32)
    expected = _normalized_angles(h, w, 16, 100.0)
    np.testing.assert_allclose(cos.numpy(), np.cos(expected), atol=2e-6)
    np.testing.assert_allclose(sin.numpy(), np.sin(expected), atol=2e-6)


def test_normalized_rope_gives_a_small_crop_the_same_angle_span_as_a_large_one() -> None:
    rope = Rope2D(8, coords="normalized")
    small, large = rope._angles(6, 6), rope._angles(16, 16)
    # the first and last patch centres of any grid sit at ±(1 - 1/n): spans differ only by that margin
    span = lambda a, n: (a[-1, 0] - a[0, 0]).item() / (2 * math.pi * 2 * (1 - 1 / n))  # noqa: E731
    assert span(small, 6) == pytest.approx(1.0) and span(large, 16) == pytest.approx(1.0)


def test_index_rope_keeps_integer_patch_positions() -> None:
    cos, _ = Rope2D(8, theta=100.0, coords="index").tables(2, 3, torch.float32)
    inv_freq = 1 / 100.0 ** (np.arange(2) / 2)
    rows, cols = np.meshgrid(np.arange(2), np.arange(3), indexing="ij")
    expected = np.concatenate([rows.reshape(-1, 1) * inv_freq, cols.reshape(-1, 1) * inv_freq], axis=1)
    np.testing.assert_allclose(cos.numpy(), np.cos(expected), atol=1e-6)


def test_normalized_rope_periods_are_a_checkpoint_buffer_and_loading_them_refreshes_the_tables() -> None:
    rope = Rope2D(8, coords="normalized")
    assert "periods" in rope.state_dict()
    before = rope.tables(4, 4, torch.float32)[0].clone()
    rope.load_state_dict({"periods": rope.periods * 2})
    after = rope.tables(4, 4, torch.float32)[0]
    expected = np.cos(_normalized_angles(4, 4, 8, 100.0) / 2)
    np.testing.assert_allclose(after.numpy(), expected, atol=2e-6)
    assert not torch.equal(before, after)
    assert "periods" not in Rope2D(8, coords="index").state_dict()


@pytest.mark.parametrize(("width", "hidden"), [(384, 1024), (768, 2048), (1024, 2736)])
def test_swiglu_hidden_width_rounds_up_to_a_multiple_of_eight_like_the_released_s_b_l(
    width: int, hidden: int
) -> None:
    with torch.device("meta"):
        ffn = make_ffn("swiglu", width, 4.0, align=8)
    assert ffn.fc1_g.weight.shape == (hidden, width)
    assert ffn.fc2.weight.shape == (width, hidden)


def test_swiglu_without_alignment_keeps_two_thirds_of_four_times_the_width() -> None:
    with torch.device("meta"):
        assert make_ffn("swiglu", 1024, 4.0).fc1_x.weight.shape == (2730, 1024)


def test_rms_norm_uses_its_eps_and_computes_in_fp32_for_bf16_inputs() -> None:
    norm = make_norm("rms", 4, eps=1e-5)
    x = torch.tensor([[1e-3, -2e-3, 3e-3, 0.0]])
    expected = x.double() / torch.sqrt((x.double() ** 2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(norm(x).double(), expected, rtol=1e-6, atol=1e-7)
    out = norm(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), expected, rtol=1e-2, atol=1e-3)


def test_encoder_and_decoder_pass_the_official_options_to_every_block() -> None:
    config = ViTConfig(
        width=40,
        depth=2,
        heads=2,
        patch_size=4,
        image_size=16,
        rope_coords="normalized",
        norm_eps=1e-5,
        ffn_align=8,
    )
    encoder = ViTEncoder(config)
    assert encoder.rope.coords == "normalized"
    assert {b.norm1.eps for b in encoder.blocks} == {1e-5} and encoder.norm.eps == 1e-5
    assert encoder.blocks[0].mlp.fc1_g.out_features == 112  # int(160 * 2/3) = 106 -> 112
    decoder = PixelDecoder(8, config)
    assert decoder.rope.coords == "normalized" and decoder.blocks[0].mlp.fc1_g.out_features == 112
    assert decoder.norm.eps == 1e-6  # the decoder's LayerNorm keeps 1e-6, as officially
