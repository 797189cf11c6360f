"""Convert an official VTP checkpoint into this suite's tensor names, accounting for every tensor.

The two designs are one renaming apart (``trunk`` -> ``encoder``, SwiGLU ``w1/w2/w3`` -> timm's
``fc1_g/fc1_x/fc2``, ``mask_token`` (1, D) -> (1, 1, D), ...) once this suite's encoder uses the
official maths (``rope_coords: normalized``, ``norm_eps: 1e-5``, ``ffn_align: 8``). What needs more
than a renaming is handled exactly or refused with a message:

- RoPE ``periods`` are recomputed (θ = 100, θ^(k/(d/4))) and compared at the stored precision, then
  kept as stored (the released files hold them in bf16, and the models ran with those values).
- Pixels: the official models take and return ImageNet mean/std-normalised pixels; this suite uses
  [-1, 1]. The change of variables is folded exactly into ``patch_embed`` (input) and ``proj_out``
  (output), so a converted model takes and returns [-1, 1] pixels like every model here.
- DINO prototypes are weight-normed with a gain ``weight_g``; this suite's head has unit-norm
  prototypes, so a gain of 1 converts exactly and any other gain is refused (``drop_ssl_heads``
  leaves the heads out instead, to be trained afresh).
- LayerScale, QK-norm, register tokens, untied CLS norms, QuickGELU, a text CLS token: no
  counterpart here, refused by name.
- ``teacher_proj`` (an EMA copy of the CLIP projection that no official loss reads) and the teacher's
  ``feature_bottleneck`` (unused by the teacher) are left out, and the report says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from vtp_lightning.errors import CheckpointError
from vtp_lightning.models.autoencoder import architecture_dict
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.dino_head import DINOHead
from vtp_lightning.models.rope import rope_periods
from vtp_lightning.models.text import TextConfig, build_text_tower
from vtp_lightning.models.vit import ENCODER_PRESETS, Bottleneck, ViTConfig, ViTEncoder
from vtp_lightning.official.source import OfficialCheckpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ROPE_THETA = 100.0
FFN_ALIGNMENTS = {"swiglu": 8, "swiglu32": 32, "swiglu64": 64, "swiglu128": 128}
ENCODER_NORM_EPS = {"rmsnorm": 1e-5, "layernorm": 1e-6, "layernormbf16": 1e-5}

# Tensor-name patterns with no counterpart here: (regex, what it is, the config switch behind it).
_REFUSED = [
    (r"\.ls[12]\.(gamma|weight)$", "LayerScale", "vision_init_values / decoder_init_values"),
    (r"\.(q_norm|k_norm)\.", "QK-norm", "vision_use_qk_norm / decoder_use_qk_norm"),
    (r"\.qkv\.bias_mask$", "a masked key bias", "mask_k_bias"),
    (r"^(teacher_)?trunk\.storage_tokens$", "register (storage) tokens", "n_storage_tokens"),
    (r"^(teacher_)?trunk\.(cls_norm|local_cls_norm)\.", "untied CLS norms", "untie_cls_and_patch_norms"),
    (r"(^|\.)cls_emb$", "a text CLS token", "text_embed_cls"),
    (r"^text_projection\.(weight|bias)$", "a text projection with bias", "text_proj_bias"),
    (r"\.(running_mean|running_var)$", "BatchNorm in the DINO head", "dino_head.use_bn"),
]
# Released-config switches with no counterpart here: (key, the value this suite reproduces).
_CONFIG_EXPECTED = {
    "vision_init_values": None,
    "decoder_init_values": None,
    "vision_use_qk_norm": False,
    "decoder_use_qk_norm": False,
    "vision_bottleneck_ae_only": True,
    "vision_clip_feat": "cls",
    "vision_mlp_ratio": 4.0,
    "decoder_norm_layer": "layernorm",
    "text_quick_gelu": False,
    "text_embed_cls": False,
    "text_no_causal_mask": False,
    "text_pool_type": "argmax",
    "text_proj_type": "linear",
    "text_proj_bias": False,
    "text_mlp_ratio": 4.0,
    "text_ls_init_value": None,
}


@dataclass
class Converted:
    """This suite's tensors, the options that build matching modules, and what was done to get them."""

    state: dict[str, torch.Tensor]
    options: dict[str, Any]
    architecture: dict[str, Any]
    tokenizer_class: str
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # official name -> why it has no tensor here


def _refuse(checkpoint: OfficialCheckpoint, what: str) -> CheckpointError:
    return CheckpointError(f"cannot convert {checkpoint.path}: {what}")


def _check_config(checkpoint: OfficialCheckpoint) -> None:
    config = checkpoint.config or {}
    for key, expected in _CONFIG_EXPECTED.items():
        if key in config and config[key] != expected:
            raise _refuse(
                checkpoint,
                f"its config sets {key} = {config[key]!r}, which this suite has no counterpart for "
                f"(it reproduces {key} = {expected!r})",
            )
    for key in ("vision_norm_layer",):
        if key in config and config[key] not in ENCODER_NORM_EPS:
            raise _refuse(
                checkpoint, f"its config sets {key} = {config[key]!r}; known: {sorted(ENCODER_NORM_EPS)}"
            )
    for key in ("vision_ffn_layer", "decoder_ffn_layer"):
        if key in config and config[key] not in (*FFN_ALIGNMENTS, "mlp"):
            raise _refuse(
                checkpoint, f"its config sets {key} = {config[key]!r}; known: swiglu[32|64|128], mlp"
            )


def _check_names(checkpoint: OfficialCheckpoint) -> None:
    for pattern, what, switch in _REFUSED:
        hits = sorted(k for k in checkpoint.tensors if re.search(pattern, k))
        if hits:
            raise _refuse(
                checkpoint,
                f"it has {what} ({hits[0]}{f' and {len(hits) - 1} more' if len(hits) > 1 else ''}), which "
                f"this suite's modules do not have (official switch: {switch})",
            )


def _count(tensors: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(m.group(1)) for k in tensors if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def _check_periods(checkpoint: OfficialCheckpoint, name: str, head_dim: int) -> torch.Tensor:
    """The stored RoPE periods as fp32, after checking they are θ^(k/(d/4)) at their stored precision."""
    stored = checkpoint.tensors[name]
    expected = rope_periods(head_dim, ROPE_THETA)
    if stored.shape != expected.shape:
        raise _refuse(checkpoint, f"{name} has shape {tuple(stored.shape)}, expected {tuple(expected.shape)}")
    rtol = 2 * torch.finfo(stored.dtype).eps if stored.dtype.is_floating_point else 0.0
    if not torch.allclose(stored.float(), expected.to(stored.dtype).float(), rtol=rtol, atol=0.0):
        raise _refuse(
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
            raise _refuse(checkpoint, f"{prefix} MLP hidden width {hidden} is not 4 x {width}")
        return "gelu", 0
    hidden = tensors[f"{prefix}blocks.0.mlp.w1.weight"].shape[0]
    base = int(width * 4.0 * 2 / 3)
    named = (checkpoint.config or {}).get(config_key)
    candidates = [FFN_ALIGNMENTS[named]] if named in FFN_ALIGNMENTS else list(FFN_ALIGNMENTS.values())
    for align in candidates:
        if base + (-base % align) == hidden:
            return "swiglu", align
    raise _refuse(
        checkpoint,
        f"{prefix} SwiGLU hidden width {hidden} is not int(4 x {width} x 2/3) rounded up to 8/32/64/128",
    )


class _Renamer:
    """Maps every official tensor to this suite's name (or to a documented omission), once."""

    def __init__(self, checkpoint: OfficialCheckpoint, patch: int, drop_ssl_heads: bool) -> None:
        self.checkpoint, self.patch, self.drop_ssl_heads = checkpoint, patch, drop_ssl_heads
        self.state: dict[str, torch.Tensor] = {}
        self.left_out: dict[str, str] = {}
        self.periods: dict[str, torch.Tensor] = {}

    def run(self) -> None:
        unknown = []
        for name, tensor in self.checkpoint.tensors.items():
            target = self._target(name)
            if target is None:
                unknown.append(name)
            elif target:
                self.state[target] = self._transform(name, target, tensor)
        if unknown:
            raise _refuse(
                self.checkpoint,
                f"{len(unknown)} tensors have no counterpart in this suite: {', '.join(sorted(unknown)[:6])}"
                f"{' ...' if len(unknown) > 6 else ''}",
            )

    def _target(self, name: str) -> str | None:
        """This suite's name; "" for a tensor deliberately left out (recorded); None when unknown."""
        text = "text_transformer." if self.checkpoint.layout == "hf" else "transformer."
        for source, target in (("teacher_trunk.", "teacher.encoder."), ("trunk.", "encoder.")):
            if name.startswith(source):
                rest = name[len(source) :]
                if rest == "feature_bottleneck.weight":
                    if source == "trunk.":
                        return "bottleneck.proj.weight"
                    self.left_out[name] = "the teacher never applies the bottleneck (bottleneck_ae_only)"
                    return ""
                return self._trunk_name(rest, target)
        if name.startswith("pixel_decoder."):
            rest = name[len("pixel_decoder.") :]
            if re.fullmatch(r"(proj_in|proj_out)\.(weight|bias)", rest):
                return "decoder." + rest
            return self._trunk_name(rest, "decoder.")
        if name.startswith(text):
            return "text_tower.transformer." + name[len(text) :]
        if name in ("token_embedding.weight", "positional_embedding", "text_projection") or name.startswith(
            "ln_final."
        ):
            return "text_tower." + name
        if name in ("visual_proj.weight", "proj.weight"):
            return "clip_image_proj.weight"
        if name == "teacher_proj.weight":
            self.left_out[name] = "an EMA copy of the CLIP projection that no official loss reads"
            return ""
        if name in ("logit_scale", "logit_bias"):
            return name
        for source, target in (("teacher_dino_head.", "teacher.ssl_head."), ("dino_head.", "ssl_head.")):
            if name.startswith(source):
                if self.drop_ssl_heads:
                    self.left_out[name] = "DINO/iBOT heads left out on request (--drop-ssl-heads)"
                    return ""
                rest = name[len(source) :]
                if re.fullmatch(r"mlp\.\d+\.(weight|bias)", rest):
                    return target + rest
                if rest in ("last_layer.weight_v", "last_layer.parametrizations.weight.original1"):
                    return target + "prototypes"
                if rest in ("last_layer.weight_g", "last_layer.parametrizations.weight.original0"):
                    self._check_gain(name)
                    self.left_out[name] = (
                        "weight-norm gain equal to 1: folded exactly into unit-norm prototypes"
                    )
                    return ""
        return None

    def _trunk_name(self, rest: str, target: str) -> str | None:
        if rest in ("cls_token", "mask_token", "patch_embed.proj.weight", "patch_embed.proj.bias"):
            return target + rest.replace("patch_embed.proj.", "patch_embed.")
        if rest == "rope_embed.periods":
            return target + "rope.periods"
        if re.fullmatch(r"norm\.(weight|bias)", rest):
            return target + rest
        block = re.fullmatch(r"blocks\.(\d+)\.(.+)", rest)
        if block is None:
            return None
        index, part = block.groups()
        swiglu = {"mlp.w1.": "mlp.fc1_g.", "mlp.w2.": "mlp.fc1_x.", "mlp.w3.": "mlp.fc2."}
        for old, new in swiglu.items():
            if part.startswith(old):
                part = new + part[len(old) :]
        if re.fullmatch(
            r"(norm1|norm2)\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|mlp\.(fc1_g|fc1_x|fc1|fc2)\.(weight|bias)",
            part,
        ):
            return f"{target}blocks.{index}.{part}"
        return None

    def _check_gain(self, name: str) -> None:
        gain = self.checkpoint.tensors[name].float()
        if not torch.allclose(gain, torch.ones_like(gain), rtol=0.0, atol=1e-6):
            raise _refuse(
                self.checkpoint,
                f"{name} (the DINO prototypes' weight-norm gain) ranges over [{gain.min():.4g}, {gain.max():.4g}], "
                "not 1; this suite's DINO head has unit-norm prototypes with no gain, so it cannot be folded "
                "exactly. Convert with --drop-ssl-heads to leave the DINO/iBOT heads out (trained afresh)",
            )

    def _transform(self, name: str, target: str, tensor: torch.Tensor) -> torch.Tensor:
        if target.endswith("mask_token"):
            return tensor.reshape(1, 1, -1).clone()
        if target.endswith("rope.periods"):
            return tensor  # checked and converted by the caller, which knows the head width
        if target.endswith("logit_scale") or target.endswith("logit_bias"):
            return tensor.reshape(()).clone()
        if target.endswith("patch_embed.weight") or target.endswith("patch_embed.bias"):
            return _fold_input(self.checkpoint, name, tensor)
        if target.startswith("decoder.proj_out."):
            return _fold_output(tensor, self.patch)
        return tensor.clone()


def _fold_input(checkpoint: OfficialCheckpoint, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """``patch_embed`` on x01-normalised-by-ImageNet = an equivalent conv on y = 2·x01 − 1.

    (x − μ)/σ with x = (y + 1)/2 is y/(2σ) + (1/2 − μ)/σ: the weights divide by 2σ per input channel,
    the bias gains Σ W · (1/2 − μ)/σ. Computed in float64.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    weight_name = name.removesuffix(".bias") + ".weight" if name.endswith(".bias") else name
    weight = checkpoint.tensors[weight_name].double()
    if name.endswith(".weight"):
        return (weight / (2 * std).view(1, 3, 1, 1)).to(tensor.dtype)
    shift = (weight * ((0.5 - mean) / std).view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return (tensor.double() + shift).to(tensor.dtype)


def _fold_output(tensor: torch.Tensor, patch: int) -> torch.Tensor:
    """``proj_out`` made to emit y = 2(σ·x + μ) − 1 for the ImageNet-normalised x it was trained to emit.

    PixelShuffle reads output channel k as colour k // p²: that channel is scaled by 2σ_c and its bias
    shifted by 2μ_c − 1.
    """
    colour = torch.arange(tensor.shape[0]) // (patch * patch)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)[colour]
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)[colour]
    if tensor.ndim > 1:  # weight (3p², D, 1, 1)
        return (tensor.double() * (2 * std).view(-1, 1, 1, 1)).to(tensor.dtype)
    return (tensor.double() * 2 * std + 2 * mean - 1).to(tensor.dtype)


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
        raise _refuse(
            checkpoint, f"{prefix} width {width} is not a multiple of its RoPE head width {head_dim}"
        )
    return ViTConfig(
        width=width,
        depth=_count(tensors, f"{prefix}blocks."),
        heads=width // head_dim,
        patch_size=patch,
        image_size=image_size,
        norm=norm,  # type: ignore[arg-type]
        ffn=ffn[0],  # type: ignore[arg-type]
        ffn_align=ffn[1],
        rope_coords="normalized",
        norm_eps=eps,
    )


def _expected_shapes(
    encoder: ViTConfig,
    latent: int,
    decoder: ViTConfig | None,
    text: TextConfig | None,
    head: tuple[int, int, int] | None,
    teacher: bool,
    logit_bias: bool,
) -> dict[str, torch.Size]:
    """Every tensor name and shape the matching modules of this suite hold (built on the meta device)."""
    parts: dict[str, torch.nn.Module] = {}
    with torch.device("meta"):
        parts["encoder"] = ViTEncoder(encoder)
        parts["bottleneck"] = Bottleneck(encoder.width, latent)
        if decoder is not None:
            parts["decoder"] = PixelDecoder(latent, decoder)
        if text is not None:
            parts["text_tower"] = build_text_tower(text)
            parts["clip_image_proj"] = torch.nn.Linear(encoder.width, text.embed_dim, bias=False)
        if head is not None:
            parts["ssl_head"] = DINOHead(encoder.width, head[0], head[1], head[2])
        if teacher:
            parts["teacher.encoder"] = parts["encoder"]
            if head is not None:
                parts["teacher.ssl_head"] = parts["ssl_head"]
    shapes = {
        f"{name}.{k}": v.shape for name, module in parts.items() for k, v in module.state_dict().items()
    }
    if text is not None:
        shapes["logit_scale"] = torch.Size([])
        if logit_bias:
            shapes["logit_bias"] = torch.Size([])
    return shapes


def _check_complete(
    checkpoint: OfficialCheckpoint, state: dict[str, torch.Tensor], expected: dict[str, torch.Size]
) -> None:
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
        raise _refuse(checkpoint, "its tensors do not make a complete model: " + "; ".join(problems))


def convert(
    checkpoint: OfficialCheckpoint, *, text_heads: int | None = None, drop_ssl_heads: bool = False
) -> Converted:
    """This suite's state dict (every official tensor mapped, folded or left out with a reason)."""
    _check_config(checkpoint)
    _check_names(checkpoint)
    tensors, config = checkpoint.tensors, checkpoint.config or {}
    notes: list[str] = []
    required = [
        "trunk.cls_token",
        "trunk.patch_embed.proj.weight",
        "trunk.rope_embed.periods",
        "trunk.feature_bottleneck.weight",
    ]
    absent = [k for k in required if k not in tensors]
    if absent:
        raise _refuse(checkpoint, f"it lacks {', '.join(absent)} (every VTP tokenizer has them)")
    patch = tensors["trunk.patch_embed.proj.weight"].shape[-1]
    image_size = int(config.get("image_size", 256))
    norm = "layer" if "trunk.norm.bias" in tensors else "rms"
    eps = ENCODER_NORM_EPS[config.get("vision_norm_layer", "rmsnorm" if norm == "rms" else "layernorm")]
    ffn = _ffn(checkpoint, "trunk.", tensors["trunk.cls_token"].shape[-1], "vision_ffn_layer")
    encoder = _trunk_config(checkpoint, "trunk.", patch, image_size, ffn, norm, eps)
    latent = tensors["trunk.feature_bottleneck.weight"].shape[0]
    decoder = None
    if "pixel_decoder.proj_in.weight" in tensors:
        decoder = _trunk_config(checkpoint, "pixel_decoder.", patch, image_size, ffn, "layer", 1e-6)
        decoder_ffn = _ffn(checkpoint, "pixel_decoder.", decoder.width, "decoder_ffn_layer")
        if decoder_ffn != ffn and not (
            decoder_ffn[0] == ffn[0] == "swiglu" and _same_width(decoder.width, ffn[1], decoder_ffn[1])
        ):
            raise _refuse(
                checkpoint,
                f"encoder FFN {ffn} and decoder FFN {decoder_ffn} differ; this suite uses one ffn_align for both",
            )
        out_channels = tensors["pixel_decoder.proj_out.weight"].shape[0]
        if out_channels != 3 * patch * patch:
            raise _refuse(
                checkpoint,
                f"the decoder emits {out_channels} channels per token, not 3 x {patch}^2 (its upscale factor differs from the patch size)",
            )
        if decoder.width == encoder.width and decoder.depth == encoder.depth:
            notes.append("pixel decoder symmetric with the encoder")
    else:
        notes.append("no pixel decoder in the checkpoint (train_reconstruction off): none converted")

    renamer = _Renamer(checkpoint, patch, drop_ssl_heads)
    renamer.run()
    state = renamer.state
    for source, target, config_of in (
        ("trunk.", "encoder.", encoder),
        ("teacher_trunk.", "teacher.encoder.", encoder),
        ("pixel_decoder.", "decoder.", decoder),
    ):
        if f"{source}rope_embed.periods" in tensors and config_of is not None:
            stored = tensors[f"{source}rope_embed.periods"]
            state[f"{target}rope.periods"] = _check_periods(
                checkpoint, f"{source}rope_embed.periods", config_of.width // config_of.heads
            )
            notes.append(
                f"{source}rope_embed.periods: base-100 periods, checked at {str(stored.dtype).removeprefix('torch.')} precision and kept as stored"
            )
    notes.append(
        "pixels: ImageNet mean/std folded exactly into encoder.patch_embed and decoder.proj_out; the model takes and returns [-1, 1]"
    )

    text = None
    text_prefix = "text_transformer." if checkpoint.layout == "hf" else "transformer."
    if "token_embedding.weight" in tensors:
        vocab, width = tensors["token_embedding.weight"].shape
        heads = config.get("text_num_heads") or text_heads
        if heads is None:
            heads = max(1, width // 64)
            notes.append(
                f"text tower heads not recorded in a training state dict: assumed width/64 = {heads} (set with --text-heads)"
            )
        text = TextConfig(
            context_length=tensors["positional_embedding"].shape[0],
            vocab_size=vocab,
            width=width,
            layers=_count(tensors, f"{text_prefix}resblocks."),
            heads=int(heads),
            embed_dim=tensors["text_projection"].shape[1],
        )
    head = None
    prototypes = state.get("ssl_head.prototypes")
    if prototypes is not None:
        if _count(tensors, "dino_head.mlp.") != 5:
            raise _refuse(
                checkpoint,
                "its DINO head MLP is not 3 layers (Linear-GELU-Linear-GELU-Linear) as this suite's",
            )
        head = (prototypes.shape[0], tensors["dino_head.mlp.0.weight"].shape[0], prototypes.shape[1])
    teacher = any(k.startswith("teacher.") for k in state)
    expected = _expected_shapes(encoder, latent, decoder, text, head, teacher, "logit_bias" in state)
    _check_complete(checkpoint, state, expected)
    for name, reason in sorted(renamer.left_out.items()):
        notes.append(f"{name}: left out — {reason}")
    options = _options(encoder, latent, decoder, text, head, "logit_bias" in state)
    return Converted(
        state,
        options,
        architecture_dict(encoder, latent, decoder),
        _tokenizer_class(text, head, decoder),
        notes,
        dict(renamer.left_out),
    )


def _same_width(width: int, align_a: int, align_b: int) -> bool:
    base = int(width * 4.0 * 2 / 3)
    return base + (-base % align_a) == base + (-base % align_b)


def _options(
    encoder: ViTConfig,
    latent: int,
    decoder: ViTConfig | None,
    text: TextConfig | None,
    head: tuple[int, int, int] | None,
    logit_bias: bool,
) -> dict[str, Any]:
    """``model.init_args`` that build modules of exactly the converted shapes and maths."""
    preset = next(
        (n for n, dims in ENCODER_PRESETS.items() if dims == (encoder.width, encoder.depth, encoder.heads)),
        None,
    )
    options: dict[str, Any] = {"encoder": preset or "tiny"}
    if preset is None:
        options.update(encoder_width=encoder.width, encoder_depth=encoder.depth, encoder_heads=encoder.heads)
    options.update(
        image_size=encoder.image_size,
        patch_size=encoder.patch_size,
        latent_dim=latent,
        norm=encoder.norm,
        ffn=encoder.ffn,
        rope_coords="normalized",
        norm_eps=encoder.norm_eps,
        ffn_align=encoder.ffn_align,
    )
    if decoder is not None:
        options.update(
            rec_decoder_width=decoder.width, rec_decoder_depth=decoder.depth, rec_decoder_heads=decoder.heads
        )
    if text is not None:
        options.update(
            clip_loss="sigmoid" if logit_bias else "softmax",
            clip_embed_dim=text.embed_dim,
            clip_text_width=text.width,
            clip_text_layers=text.layers,
            clip_text_heads=text.heads,
            clip_text_context_length=text.context_length,
            clip_text_vocab_size=text.vocab_size,
        )
    if head is not None:
        options.update(
            ssl_num_prototypes=head[0], ssl_head_hidden_dim=head[1], ssl_head_bottleneck_dim=head[2]
        )
    return options


def _tokenizer_class(
    text: TextConfig | None, head: tuple[int, int, int] | None, decoder: ViTConfig | None
) -> str:
    """The composition whose modules the converted tensors fill (the objectives can still be switched off by weight)."""
    name = {
        (True, True): "VTPTokenizer",
        (True, False): "CLIPAETokenizer",
        (False, True): "SSLAETokenizer",
        (False, False): "AETokenizer",
    }[(text is not None, head is not None)]
    return f"vtp_lightning.tokenizer.{name}"
