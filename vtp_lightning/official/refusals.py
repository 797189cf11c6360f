"""What of an official VTP checkpoint this suite cannot reproduce, refused by name before converting.

LayerScale, QK-norm, register tokens, untied CLS norms, QuickGELU, a text CLS token and the like have
no counterpart in this suite's modules: a checkpoint using them is refused with the tensor or the
config switch behind it, instead of being converted into something that computes otherwise.
"""

from __future__ import annotations

import re

from vtp_lightning.errors import CheckpointError
from vtp_lightning.official.source import OfficialCheckpoint

#: SwiGLU hidden-width alignments the official ``*_ffn_layer`` names select.
FFN_ALIGNMENTS = {"swiglu": 8, "swiglu32": 32, "swiglu64": 64, "swiglu128": 128}
#: the epsilon of each official encoder norm layer.
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


def refuse(checkpoint: OfficialCheckpoint, what: str) -> CheckpointError:
    """The one error a conversion ends with: which checkpoint, and what in it cannot convert."""
    return CheckpointError(f"cannot convert {checkpoint.path}: {what}")


def check_config(checkpoint: OfficialCheckpoint) -> None:
    """Refuse a released config whose switches select maths this suite does not have."""
    config = checkpoint.config or {}
    for key, expected in _CONFIG_EXPECTED.items():
        if key in config and config[key] != expected:
            raise refuse(
                checkpoint,
                f"its config sets {key} = {config[key]!r}, which this suite has no counterpart for "
                f"(it reproduces {key} = {expected!r})",
            )
    for key in ("vision_norm_layer",):
        if key in config and config[key] not in ENCODER_NORM_EPS:
            raise refuse(
                checkpoint, f"its config sets {key} = {config[key]!r}; known: {sorted(ENCODER_NORM_EPS)}"
            )
    for key in ("vision_ffn_layer", "decoder_ffn_layer"):
        if key in config and config[key] not in (*FFN_ALIGNMENTS, "mlp"):
            raise refuse(
                checkpoint, f"its config sets {key} = {config[key]!r}; known: swiglu[32|64|128], mlp"
            )


def check_names(checkpoint: OfficialCheckpoint) -> None:
    """Refuse a checkpoint holding tensors of a module this suite does not have, naming the first."""
    for pattern, what, switch in _REFUSED:
        hits = sorted(k for k in checkpoint.tensors if re.search(pattern, k))
        if hits:
            raise refuse(
                checkpoint,
                f"it has {what} ({hits[0]}{f' and {len(hits) - 1} more' if len(hits) > 1 else ''}), which "
                f"this suite's modules do not have (official switch: {switch})",
            )
