"""Every official tensor renamed to this suite's name (or left out with a recorded reason), once.

The two designs are one renaming apart (``trunk`` -> ``encoder``, SwiGLU ``w1/w2/w3`` -> timm's
``fc1_g/fc1_x/fc2``, ``mask_token`` (1, D) -> (1, 1, D), ...). Pixels are folded on the way
(:mod:`.pixel_folds`); DINO prototypes' weight-norm gain converts only when it is 1 (this suite's head
has unit-norm prototypes), otherwise ``drop_ssl_heads`` leaves the heads out. ``teacher_proj`` (an
EMA copy of the CLIP projection that no official loss reads) and the teacher's
``feature_bottleneck`` (unused by the teacher) are left out, and the report says so.
"""

from __future__ import annotations

import re

import torch

from vtp_lightning.official.pixel_folds import fold_input, fold_output
from vtp_lightning.official.refusals import refuse
from vtp_lightning.official.source import OfficialCheckpoint


class Renamer:
    """Maps every official tensor to this suite's name (or to a documented omission), once."""

    def __init__(self, checkpoint: OfficialCheckpoint, patch: int, drop_ssl_heads: bool) -> None:
        self.checkpoint, self.patch, self.drop_ssl_heads = checkpoint, patch, drop_ssl_heads
        self.state: dict[str, torch.Tensor] = {}
        self.left_out: dict[str, str] = {}

    def run(self) -> dict[str, torch.Tensor]:
        """This suite's state dict; refuses the checkpoint when any tensor has no counterpart."""
        unknown = []
        for name, tensor in self.checkpoint.tensors.items():
            target = self._target(name)
            if target is None:
                unknown.append(name)
            elif target:
                self.state[target] = self._transform(name, target, tensor)
        if unknown:
            raise refuse(
                self.checkpoint,
                f"{len(unknown)} tensors have no counterpart in this suite: {', '.join(sorted(unknown)[:6])}"
                f"{' ...' if len(unknown) > 6 else ''}",
            )
        return self.state

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
            raise refuse(
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
            weight = self.checkpoint.tensors[name.removesuffix(".bias").removesuffix(".weight") + ".weight"]
            return fold_input(weight, tensor, is_bias=name.endswith(".bias"))
        if target.startswith("decoder.proj_out."):
            return fold_output(tensor, self.patch)
        return tensor.clone()
