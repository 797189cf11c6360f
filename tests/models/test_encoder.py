"""The encode path: ViT encoder, bottleneck and pixel decoder shapes, mask tokens, 2-D RoPE and
per-call stochastic depth."""

from __future__ import annotations

import pytest
import torch
from tiny_sizes import TINY_CLIP, TINY_ENCODER, TINY_REC

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.models.blocks import Attention, Block
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.rope import Rope2D, apply_rope
from vtp_lightning.models.vit import Bottleneck, ViTConfig, ViTEncoder
from vtp_lightning.objectives import TokenizerModule
from vtp_lightning.tokenizer import AETokenizer, CLIPAETokenizer

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")

CONFIG = ViTConfig(width=32, depth=2, heads=2, patch_size=4, image_size=16)


def _encoder(config: ViTConfig = CONFIG) -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(config).eval()


def _images(batch: int = 2, height: int = 16, width: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(("height", "width"), [(16, 16), (16, 24), (8, 8)])
def test_encoder_returns_normed_cls_and_one_token_per_patch(height: int, width: int) -> None:
    out = _encoder()(_images(3, height, width))
    assert out["cls"].shape == (3, 32)
    assert out["patch"].shape == (3, (height // 4) * (width // 4), 32)
    assert out["grid"].tolist() == [height // 4, width // 4]


def test_tokenizer_encode_gives_d_by_s_over_p_latents_and_decode_inverts_the_shape() -> None:
    torch.manual_seed(0)
    model = AETokenizer(**TINY_ENCODER, **TINY_REC, image_size=32, patch_size=8, latent_dim=12)
    images = _images(2, 32, 32)
    latents = model.encode(images)
    assert latents.shape == (2, 12, 32 // 8, 32 // 8)
    assert model.decode(latents).shape == images.shape


@pytest.mark.parametrize(("height", "width"), [(16, 16), (16, 24)])
def test_autoencoder_round_trip_keeps_the_image_shape_for_rectangular_grids(height: int, width: int) -> None:
    torch.manual_seed(0)
    ae = VTPAutoencoder(CONFIG, latent_dim=6, decoder=ViTConfig(width=32, depth=1, heads=2, patch_size=4))
    latents = ae.encode(_images(2, height, width))
    assert latents.shape == (2, 6, height // 4, width // 4)
    assert ae.decode(latents).shape == (2, 3, height, width)


def test_bottleneck_is_a_bias_free_token_wise_linear_map_laid_out_as_a_grid() -> None:
    torch.manual_seed(0)
    bottleneck = Bottleneck(8, 3)
    assert bottleneck.proj.bias is None
    tokens = torch.randn(2, 2 * 3, 8)  # a 2 x 3 grid, row-major
    latent = bottleneck(tokens, (2, 3))
    assert latent.shape == (2, 3, 2, 3)
    row, col = 1, 2
    torch.testing.assert_close(latent[:, :, row, col], tokens[:, row * 3 + col] @ bottleneck.proj.weight.T)


def test_pixel_decoder_output_is_pixel_shuffled_patches_with_no_tanh() -> None:
    torch.manual_seed(0)
    decoder = PixelDecoder(4, ViTConfig(width=16, depth=1, heads=1, patch_size=2))
    with torch.no_grad():
        decoder.proj_out.bias.fill_(5.0)  # no squashing: values outside [-1, 1] pass through
    out = decoder(torch.randn(1, 4, 3, 5))
    assert out.shape == (1, 3, 6, 10)
    assert out.max() > 1.0


def test_a_model_without_a_decoder_refuses_to_decode() -> None:
    torch.manual_seed(0)
    model = CLIPAETokenizer(
        **TINY_ENCODER, **TINY_CLIP, **TINY_REC, image_size=16, latent_dim=4, rec_weight=0.0
    )
    assert model.decode(model.encode(_images())).shape == (2, 3, 16, 16)  # the rec mixin still has one
    bare = TokenizerModule(**TINY_ENCODER, image_size=16, latent_dim=4)
    with pytest.raises(ConfigError, match="no pixel decoder"):
        bare.decode(torch.zeros(1, 4, 4, 4))


# ----------------------------------------------------------------------------------------- masks
def test_masked_patches_become_the_mask_token_before_the_blocks() -> None:
    encoder = _encoder(
        ViTConfig(width=32, depth=0, heads=2, patch_size=4, image_size=16)
    )  # embed + norm only
    images = _images(2)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, 1, 2] = masks[1, 3, 0] = True
    plain = encoder(images)["patch"]
    masked = encoder(images, masks=masks)["patch"]
    flat = masks.flatten(1)
    token = encoder.norm(encoder.mask_token)[0, 0]
    torch.testing.assert_close(masked[flat], token.expand(int(flat.sum()), -1))
    torch.testing.assert_close(masked[~flat], plain[~flat])


def test_pixels_under_a_mask_cannot_influence_any_output() -> None:
    encoder = _encoder()
    images = _images(1)
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 0, 1] = True
    changed = images.clone()
    changed[:, :, 0:4, 4:8] = torch.rand(1, 3, 4, 4)  # only the masked patch's pixels
    a, b = encoder(images, masks=masks), encoder(changed, masks=masks)
    torch.testing.assert_close(a["patch"], b["patch"])
    torch.testing.assert_close(a["cls"], b["cls"])
    assert not torch.allclose(encoder(images)["cls"], encoder(changed)["cls"])


# ------------------------------------------------------------------------------------------ RoPE
def _rotated(vector: torch.Tensor, rope: Rope2D, h: int, w: int) -> torch.Tensor:
    """``vector`` placed at every position of an h x w grid and rotated there: (h*w, head_dim)."""
    x = vector.expand(1, 1, h * w, -1)
    return apply_rope(x, *rope.tables(h, w, torch.float64), num_prefix=0)[0, 0]


def test_rope_scores_depend_only_on_the_relative_2d_offset() -> None:
    torch.manual_seed(0)
    rope = Rope2D(head_dim=16, theta=100.0).double()
    h = w = 8
    q = _rotated(torch.randn(16, dtype=torch.float64), rope, h, w)
    k = _rotated(torch.randn(16, dtype=torch.float64), rope, h, w)

    def score(qy: int, qx: int, ky: int, kx: int) -> float:
        return float(q[qy * w + qx] @ k[ky * w + kx])

    for (qy, qx, ky, kx), (dy, dx) in [
        ((0, 0, 2, 3), (4, 1)),
        ((5, 1, 1, 6), (-1, 1)),
        ((3, 3, 3, 3), (2, -3)),
    ]:
        assert score(qy, qx, ky, kx) == pytest.approx(score(qy + dy, qx + dx, ky + dy, kx + dx), abs=1e-9)
    # ...and the score really changes with the offset, in both axes.
    assert score(0, 0, 0, 1) != pytest.approx(score(0, 0, 0, 2), abs=1e-6)
    assert score(0, 0, 1, 0) != pytest.approx(score(0, 0, 2, 0), abs=1e-6)
    assert score(0, 0, 1, 0) != pytest.approx(score(0, 0, 0, 1), abs=1e-6)


def test_rope_preserves_norms_and_leaves_the_cls_token_unrotated() -> None:
    torch.manual_seed(0)
    rope = Rope2D(head_dim=8)
    x = torch.randn(2, 3, 1 + 12, 8)
    out = apply_rope(x, *rope.tables(3, 4, torch.float32), num_prefix=1)
    torch.testing.assert_close(out[:, :, 0], x[:, :, 0])
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(out[:, :, 1], x[:, :, 1])  # position (0, 0) has angle 0
    assert not torch.allclose(out[:, :, 2:], x[:, :, 2:])


def test_rope_equals_rotating_each_channel_pair_bit_for_bit_in_values_and_gradients() -> None:
    """Channel ``i`` pairs with ``i + head_dim/2`` and turns by its angle: ``(a cos − b sin, a sin + b cos)``;
    the CLS row is untouched. The fast form must give these exact bits, forward and backward."""
    torch.manual_seed(3)
    cos, sin = Rope2D(head_dim=8, coords="normalized").tables(3, 4, torch.float32)
    x = torch.randn(2, 5, 3, 1 + 12, 8, requires_grad=True)  # stacked (q, k) layout: any leading dims
    upstream = torch.randn(2, 5, 3, 1 + 12, 8)

    a, b = x[..., 1:, :4], x[..., 1:, 4:]
    expected = torch.cat([x[..., :1, :], torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)], dim=-2)
    (expected_grad,) = torch.autograd.grad(expected, x, upstream)

    out = apply_rope(x, cos, sin, num_prefix=1)
    (grad,) = torch.autograd.grad(out, x, upstream)
    assert torch.equal(out, expected)
    assert torch.equal(grad, expected_grad)


def test_attention_with_rope_is_equivariant_to_shifting_the_whole_grid() -> None:
    """Shifting every token's position by the same offset leaves every attention score unchanged."""
    torch.manual_seed(0)
    attention = Attention(dim=16, heads=2).double()
    rope = Rope2D(head_dim=8).double()
    tokens = torch.randn(1, 2 * 2, 16, dtype=torch.float64)
    cos, sin = rope.tables(6, 6, torch.float64)
    window = [r * 6 + c for r in (0, 1) for c in (0, 1)]
    shifted = [r * 6 + c for r in (3, 4) for c in (2, 3)]
    out_a = attention(tokens, (cos[window], sin[window]), num_prefix=0)
    out_b = attention(tokens, (cos[shifted], sin[shifted]), num_prefix=0)
    torch.testing.assert_close(out_a, out_b)


def test_rope_rejects_a_head_dimension_not_divisible_by_4() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        Rope2D(head_dim=10)


# ------------------------------------------------------------------------------ stochastic depth
def test_drop_path_changes_outputs_in_train_mode_only() -> None:
    encoder = _encoder(ViTConfig(width=32, depth=3, heads=2, patch_size=4, image_size=16))
    images = _images(8)
    reference = encoder(images)["cls"]

    encoder.eval()
    torch.testing.assert_close(encoder(images, drop_path_rate=0.9)["cls"], reference)

    encoder.train()
    torch.testing.assert_close(encoder(images, drop_path_rate=0.0)["cls"], reference)
    torch.manual_seed(1)
    dropped = encoder(images, drop_path_rate=0.9)["cls"]
    assert not torch.allclose(dropped, reference)


def test_drop_path_drops_a_whole_residual_branch_per_sample_not_single_tokens() -> None:
    torch.manual_seed(0)
    block = Block(16, heads=2).train()
    x = torch.randn(32, 5, 16)
    torch.manual_seed(3)
    out = block(x, drop_rate=0.5)
    untouched = (out == x).all(dim=-1)  # (B, T): token passed through both residuals unchanged
    # Each sample is either skipped by both branches (every token untouched) or by neither/one of
    # them (every token changed): never a mix within one sample.
    assert ((untouched.all(dim=1)) | (~untouched).all(dim=1)).all()
    assert untouched.all(dim=1).any() and (~untouched).all(dim=1).any()
    torch.testing.assert_close(block.eval()(x, drop_rate=0.5), block(x, drop_rate=0.0))


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("linear", [0.0, 0.1, 0.2, 0.3]), ("uniform", [0.3, 0.3, 0.3, 0.3])],
)
def test_drop_path_schedule_sets_each_blocks_rate(schedule: str, expected: list[float]) -> None:
    """linear: 0 at the first block up to the rate at the last; uniform: the rate at every block."""
    encoder = _encoder(ViTConfig(width=32, depth=4, heads=2, patch_size=4, image_size=16)).train()
    seen: list[float] = []
    for block in encoder.blocks:
        block.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw["drop_rate"]), with_kwargs=True)
    encoder(_images(4), drop_path_rate=0.3, drop_path_schedule=schedule)
    assert seen == pytest.approx(expected)


def test_an_unknown_drop_path_schedule_is_a_config_error() -> None:
    encoder = _encoder(ViTConfig(width=32, depth=2, heads=2, patch_size=4, image_size=16)).train()
    with pytest.raises(ConfigError, match="drop_path_schedule"):
        encoder(_images(2), drop_path_rate=0.3, drop_path_schedule="cosine")
