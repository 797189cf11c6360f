"""The reference step built on the official VTP model code (``VTP_REF=/path/to/VTP``).

The official repository ships the model (``vtp.models.vtp.VTP``: trunk, text tower, DINO head,
pixel decoder, EMA teacher) but no training loop, so the step here drives its ``clip``, ``ssl`` and
``rec`` forwards the way its docstrings describe, with open_clip's ``ClipLoss`` for CLIP and, for
DINO/KoLeo/iBOT/reconstruction, the same loss modules and teacher targets this suite uses (so both
sides compute the same losses; the comparison is about the model code and the step's structure).
The clone is imported from its path and never copied into this project.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from vtp_lightning.losses.dino import DINOLoss
from vtp_lightning.losses.ibot import IBOTPatchLoss
from vtp_lightning.losses.koleo import KoLeoLoss
from vtp_lightning.losses.teacher_targets import make_teacher_targets
from vtp_lightning.tokenizer import VTPTokenizer


def load_official_vtp(path: str) -> type:
    root = Path(path).expanduser().resolve()
    if not (root / "vtp" / "models" / "vtp.py").is_file():
        raise FileNotFoundError(
            f"VTP_REF={path} is not a clone of the official VTP repository (no vtp/models/vtp.py)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    logging.getLogger().setLevel(logging.WARNING)
    from vtp.models.vtp import VTP

    return VTP


def official_config(ours: VTPTokenizer) -> dict[str, Any]:
    """An official VTP config with the architecture of ``ours`` (widths, depths, heads, head, decoder)."""
    enc, dec, text, hp = ours.encoder_config, ours.decoder_config, ours.text_config, ours.hparams
    rope = {"pos_embed_rope_base": enc.rope_theta, "pos_embed_rope_dtype": "fp32"}
    return {
        "data": {"image_size": enc.image_size},
        "training": {
            "train_clip": True,
            "train_dinov2": True,
            "train_reconstruction": True,
            "cast_dtype": None,
            "clip_drop_rate": hp.get("clip_drop_path", 0.0),
            "ssl_drop_rate": hp.get("ssl_drop_path", 0.0),
            "rec_drop_rate": hp.get("rec_drop_path", 0.0),
            "init_logit_scale": None,
            "init_logit_bias": None,
            "nonscalar_logit_scale": False,
            "clip_output_dict": True,
        },
        "vtp_model": {
            "vision_encoder": {
                "model_type": "dinov3",
                "patch_size": enc.patch_size,
                "embed_dim": enc.width,
                "depth": enc.depth,
                "num_heads": enc.heads,
                "mlp_ratio": enc.mlp_ratio,
                "ffn_layer": "swiglu",
                "norm_type": "rmsnorm",
                "init_values": None,
                "vit_feature_bottleneck": ours.latent_dim,
                "bottleneck_ae_only": True,
                "clip_feat": "cls",
                **rope,
            },
            "text_encoder": {
                "quick_gelu": False,
                "norm_kwargs": None,
                "act_kwargs": None,
                "context_length": text.context_length,
                "vocab_size": text.vocab_size,
                "embed_dim": text.embed_dim,
                "heads": text.heads,
                "layers": text.layers,
                "mlp_ratio": 4.0,
                "ls_init_value": None,
                "embed_cls": False,
                "no_causal_mask": False,
                "pad_id": 0,
                "pool_type": "argmax",
                "proj_type": "linear",
                "proj_bias": False,
                "output_tokens": False,
            },
            "dino_head": {
                "out_dim": ours.ssl_options["num_prototypes"],
                "nlayers": 3,
                "hidden_dim": ours.ssl_head.mlp[0].out_features,
                "bottleneck_dim": ours.ssl_head.prototypes.shape[1],
            },
            "pixel_decoder": {
                "model_type": "dinov3",
                "upscale_factor": dec.patch_size,
                "embed_dim": dec.width,
                "depth": dec.depth,
                "num_heads": dec.heads,
                "ffn_layer": "swiglu",
                "norm_layer": "layernorm",
                **rope,
            },
        },
    }


def build_official_model(vtp_class: type, ours: VTPTokenizer) -> torch.nn.Module:
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model = vtp_class(vtp_config=OmegaConf.create(official_config(ours)))
    return model.train()


def official_step(model: Any, ours: VTPTokenizer, batch: dict[str, Any]) -> Callable[[], dict[str, float]]:
    """One full step through the official model's forwards, with ``ours``' loss weights and options."""
    o = ours.ssl_options
    weights = {name: obj.weight for name, obj in ours.objectives.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=ours.hparams.lr, betas=tuple(ours.hparams.betas))
    clip_loss, dino_loss, ibot_loss, koleo_loss = ClipLoss(), DINOLoss(), IBOTPatchLoss(), KoLeoLoss()
    dino_targets = make_teacher_targets(o["teacher_targets"], o["num_prototypes"], o["center_momentum"])
    ibot_targets = make_teacher_targets(o["teacher_targets"], o["num_prototypes"], o["center_momentum"])
    global_crops = batch["global_crops"].flatten(0, 1)
    local_crops = batch["local_crops"].flatten(0, 1)
    num_local = batch["local_crops"].shape[0]
    masks = batch["masks"].flatten(0, 1).flatten(1)
    mask_index = masks.flatten().nonzero().flatten()
    sample_index = masks.nonzero()[:, 0]
    ssl_dict = {
        "global_crops": global_crops,
        "n_global_crops": 2,
        "mask_indices_list": mask_index,
        "n_masked_patches": mask_index.numel(),
        "upperbound": mask_index.numel(),  # no padding rows: the reference's least work
        "local_crops": local_crops,
        "masks": masks,
    }
    temp, student_temp = ours.teacher_temp_now(), o["student_temp"]
    momentum = ours.teacher_momentum_now()

    def step() -> dict[str, float]:
        clip = model(image=batch["image"], text=batch["text"], forward_type="clip")
        losses = {"clip": clip_loss(clip["image_features"], clip["text_features"], clip["logit_scale"])}
        teacher, student = model(ssl_dict=ssl_dict, forward_type="ssl")
        # The official teacher CLS rows come swapped (view 1, view 0): swap back to pair by view.
        swapped = dino_targets(teacher["teacher_cls_tokens_after_head"], temp).chunk(2)
        student_logits = list(student["student_global_cls_tokens_after_head"].chunk(2))
        student_logits += list(student["student_local_cls_tokens_after_head"].chunk(num_local))
        losses["dino"] = dino_loss(student_logits, [swapped[1], swapped[0]], student_temp)
        cls = student["student_global_cls_tokens"].chunk(2)
        losses["koleo"] = torch.stack([koleo_loss(c) for c in cls]).mean()
        losses["mim"] = ibot_loss(
            student["student_global_masked_patch_tokens_after_head"],
            ibot_targets(teacher["masked_teacher_patch_tokens_after_head"], temp),
            sample_index,
            masks.shape[0],
            student_temp,
        )
        rec = model(reconstruction_image=batch["image"], forward_type="rec")
        losses["rec"] = F.l1_loss(rec["reconstructed_image"], rec["target_image"])
        total = sum(weights[name] * loss for name, loss in losses.items())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        model.update_teacher(momentum)
        return {name: float(v.detach()) for name, v in losses.items()}

    return step
