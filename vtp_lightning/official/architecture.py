"""The architecture of an official VTP checkpoint, inferred from its tensors (and released config).

Widths from the CLS token and projections, depths from the block indices, head widths from the RoPE
periods, the FFN kind and SwiGLU alignment from the hidden widths, the text tower and DINO head from
their tensors. The result is this suite's module configs (:class:`OfficialArchitecture`), which are
then checked against the renamed tensors name by name and shape by shape (:func:`check_complete`).

RoPE ``periods`` are recomputed (θ = 100, θ^(k/(d/4))) and compared at the stored precision, then
kept as stored (the released files hold them in bf16, and the models ran with those values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from vtp_lightning.models.autoencoder import architecture_dict
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.dino_head import DINOHead
from vtp_lightning.models.rope import rope_periods
from vtp_lightning.models.text import TextConfig, build_text_tower
from vtp_lightning.models.vit import Bottleneck, ViTConfig, ViTEncoder
from vtp_lightning.official.refusals import ENCODER_NORM_EPS, FFN_ALIGNMENTS, refuse
from vtp_lightning.official.source import OfficialCheckpoint

ROPE_THETA = 100.0
# Tensors every VTP tokenizer has: the architecture is read from them.
_REQUIRED = (
    "trunk.cls_token",
    "trunk.patch_embed.proj.weight",
    "trunk.rope_embed.periods",
    "trunk.feature_bottleneck.weight",
)


@dataclass(frozen=True)
class SSLHeadShape:
    """The DINO/iBOT head's sizes (field names as the self-distillation options end)."""

    num_prototypes: int
    head_hidden_dim: int
    head_bottleneck_dim: int


@dataclass(frozen=True)
class OfficialArchitecture:
    """This suite's module configs that hold exactly an official checkpoint's tensors."""

    encoder: ViTConfig
    latent_dim: int
    decoder: ViTConfig | None
    text: TextConfig | None
    ssl_head: SSLHeadShape | None
    teacher: bool
    logit_bias: bool

    def autoencoder(self) -> dict[str, Any]:
        """The encode/decode architecture ``VTPAutoencoder.from_architecture`` rebuilds."""
        return architecture_dict(self.encoder, self.latent_dim, self.decoder)


def count_blocks(tensors: dict[str, torch.Tensor], prefix: str) -> int:
    """How many ``<prefix><i>.`` blocks the tensors hold (the highest index + 1)."""
    indices = {int(m.group(1)) for k in tensors if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def check_periods(checkpoint: OfficialCheckpoint, name: str, head_dim: int) -> torch.Tensor:
    """The stored RoPE periods as fp32, after checking they are θ^(k/(d/4)) at their stored precision."""
    stored = checkpoint.tensors[name]
    expected = rope_periods(head_dim, ROPE_THETA)
    if stored.shape != expected.shape:
        raise refuse(checkpoint, f"{name} has shape {tuple(stored.shape)}, expected {tuple(expected.shape)}")
    rtol = 2 * torch.finfo(stored.dtype).eps if stored.dtype.is_floating_point else 0.0
    if not torch.allclose(stored.float(), expected.to(stored.dtype).float(), rtol=rtol, atol=0.0):
        raise refuse(
            checkpoint,
            f"{name} = {stored.float().tolist()} are not the base-{ROPE_THETA:g} RoPE periods "
            f"{expected.tolist()}; this suite builds RoPE with θ = {ROPE_THETA:g} only",
        )
    return stored.float().clone()


def _ffn(checkpoint: OfficialCheckpoint, prefix: str, width: int, config_key: str) -> tuple[str, int]:
    """(ffn kind, SwiGLU alignment) of a trunk, from the config when there is one, else from the shapes."""
    tensors = checkpoint.tensors
    if f"{prefix}blocks.0.mlp.fc1.weight" in tensors:
        hidden = tensors[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0]
        if hidden != int(width * 4.0):
            raise refuse(checkpoint, f"{prefix} MLP hidden width {hidden} is not 4 x {width}")
        return "gelu", 0
    hidden = tensors[f"{prefix}blocks.0.mlp.w1.weight"].shape[0]
    base = int(width * 4.0 * 2 / 3)
    named = (checkpoint.config or {}).get(config_key)
    candidates = [FFN_ALIGNMENTS[named]] if named in FFN_ALIGNMENTS else list(FFN_ALIGNMENTS.values())
    for align in candidates:
        if base + (-base % align) == hidden:
            return "swiglu", align
    raise refuse(
        checkpoint,
        f"{prefix} SwiGLU hidden width {hidden} is not int(4 x {width} x 2/3) rounded up to 8/32/64/128",
    )


def _same_width(width: int, align_a: int, align_b: int) -> bool:
    base = int(width * 4.0 * 2 / 3)
    return base + (-base % align_a) == base + (-base % align_b)


def _trunk_config(
    checkpoint: OfficialCheckpoint,
    prefix: str,
    patch: int,
    image_size: int,
    ffn: tuple[str, int],
    norm: str,
    eps: float,
) -> ViTConfig:
    tensors = checkpoint.tensors
    if prefix == "pixel_decoder.":
        width = tensors["pixel_decoder.proj_in.weight"].shape[0]
    else:
        width = tensors[f"{prefix}cls_token"].shape[-1]
    head_dim = 4 * tensors[f"{prefix}rope_embed.periods"].numel()
    if width % head_dim:
        raise refuse(
            checkpoint, f"{prefix} width {width} is not a multiple of its RoPE head width {head_dim}"
        )
    return ViTConfig(
        width=width,
        depth=count_blocks(tensors, f"{prefix}blocks."),
        heads=width // head_dim,
        patch_size=patch,
        image_size=image_size,
        norm=norm,  # type: ignore[arg-type]
        ffn=ffn[0],  # type: ignore[arg-type]
        ffn_align=ffn[1],
        rope_coords="normalized",
        norm_eps=eps,
    )


def infer_trunks(checkpoint: OfficialCheckpoint, notes: list[str]) -> tuple[ViTConfig, int, ViTConfig | None]:
    """(encoder config, latent width, pixel decoder config or None), from the tensors and config."""
    tensors, config = checkpoint.tensors, checkpoint.config or {}
    absent = [k for k in _REQUIRED if k not in tensors]
    if absent:
        raise refuse(checkpoint, f"it lacks {', '.join(absent)} (every VTP tokenizer has them)")
    patch = tensors["trunk.patch_embed.proj.weight"].shape[-1]
    image_size = int(config.get("image_size", 256))
    norm = "layer" if "trunk.norm.bias" in tensors else "rms"
    eps = ENCODER_NORM_EPS[config.get("vision_norm_layer", "rmsnorm" if norm == "rms" else "layernorm")]
    ffn = _ffn(checkpoint, "trunk.", tensors["trunk.cls_token"].shape[-1], "vision_ffn_layer")
    encoder = _trunk_config(checkpoint, "trunk.", patch, image_size, ffn, norm, eps)
    latent = tensors["trunk.feature_bottleneck.weight"].shape[0]
    if "pixel_decoder.proj_in.weight" not in tensors:
        notes.append("no pixel decoder in the checkpoint (train_reconstruction off): none converted")
        return encoder, latent, None
    decoder = _trunk_config(checkpoint, "pixel_decoder.", patch, image_size, ffn, "layer", 1e-6)
    decoder_ffn = _ffn(checkpoint, "pixel_decoder.", decoder.width, "decoder_ffn_layer")
    if decoder_ffn != ffn and not (
        decoder_ffn[0] == ffn[0] == "swiglu" and _same_width(decoder.width, ffn[1], decoder_ffn[1])
    ):
        raise refuse(
            checkpoint,
            f"encoder FFN {ffn} and decoder FFN {decoder_ffn} differ; this suite uses one ffn_align for both",
        )
    out_channels = tensors["pixel_decoder.proj_out.weight"].shape[0]
    if out_channels != 3 * patch * patch:
        raise refuse(
            checkpoint,
            f"the decoder emits {out_channels} channels per token, not 3 x {patch}^2 (its upscale factor differs from the patch size)",
        )
    if decoder.width == encoder.width and decoder.depth == encoder.depth:
        notes.append("pixel decoder symmetric with the encoder")
    return encoder, latent, decoder


def infer_text(checkpoint: OfficialCheckpoint, text_heads: int | None, notes: list[str]) -> TextConfig | None:
    """The text tower's config (None without one); heads from the config, ``text_heads`` or width/64."""
    tensors, config = checkpoint.tensors, checkpoint.config or {}
    if "token_embedding.weight" not in tensors:
        return None
    text_prefix = "text_transformer." if checkpoint.layout == "hf" else "transformer."
    vocab, width = tensors["token_embedding.weight"].shape
    heads = config.get("text_num_heads") or text_heads
    if heads is None:
        heads = max(1, width // 64)
        notes.append(
            f"text tower heads not recorded in a training state dict: assumed width/64 = {heads} (set with --text-heads)"
        )
    return TextConfig(
        context_length=tensors["positional_embedding"].shape[0],
        vocab_size=vocab,
        width=width,
        layers=count_blocks(tensors, f"{text_prefix}resblocks."),
        heads=int(heads),
        embed_dim=tensors["text_projection"].shape[1],
    )


def infer_ssl_head(checkpoint: OfficialCheckpoint, state: dict[str, torch.Tensor]) -> SSLHeadShape | None:
    """The DINO head's sizes from the converted prototypes (None when the heads were left out)."""
    prototypes = state.get("ssl_head.prototypes")
    if prototypes is None:
        return None
    if count_blocks(checkpoint.tensors, "dino_head.mlp.") != 5:
        raise refuse(
            checkpoint, "its DINO head MLP is not 3 layers (Linear-GELU-Linear-GELU-Linear) as this suite's"
        )
    hidden = checkpoint.tensors["dino_head.mlp.0.weight"].shape[0]
    return SSLHeadShape(prototypes.shape[0], hidden, prototypes.shape[1])


def expected_shapes(arch: OfficialArchitecture) -> dict[str, torch.Size]:
    """Every tensor name and shape the matching modules of this suite hold (built on the meta device)."""
    parts: dict[str, torch.nn.Module] = {}
    with torch.device("meta"):
        parts["encoder"] = ViTEncoder(arch.encoder)
        parts["bottleneck"] = Bottleneck(arch.encoder.width, arch.latent_dim)
        if arch.decoder is not None:
            parts["decoder"] = PixelDecoder(arch.latent_dim, arch.decoder)
        if arch.text is not None:
            parts["text_tower"] = build_text_tower(arch.text)
            parts["clip_image_proj"] = torch.nn.Linear(arch.encoder.width, arch.text.embed_dim, bias=False)
        if arch.ssl_head is not None:
            head = arch.ssl_head
            parts["ssl_head"] = DINOHead(
                arch.encoder.width, head.num_prototypes, head.head_hidden_dim, head.head_bottleneck_dim
            )
        if arch.teacher:
            parts["teacher.encoder"] = parts["encoder"]
            if arch.ssl_head is not None:
                parts["teacher.ssl_head"] = parts["ssl_head"]
    shapes = {
        f"{name}.{k}": v.shape for name, module in parts.items() for k, v in module.state_dict().items()
    }
    if arch.text is not None:
        shapes["logit_scale"] = torch.Size([])
        if arch.logit_bias:
            shapes["logit_bias"] = torch.Size([])
    return shapes


def check_complete(
    checkpoint: OfficialCheckpoint, state: dict[str, torch.Tensor], expected: dict[str, torch.Size]
) -> None:
    """Refuse renamed tensors that are not exactly the modules' tensors: missing, extra or misshapen."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k])
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} missing ({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''})"
        )
    if extra:
        problems.append(f"{len(extra)} unexpected ({', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''})")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(expected[k])})"
        )
    if problems:
        raise refuse(checkpoint, "its tensors do not make a complete model: " + "; ".join(problems))
