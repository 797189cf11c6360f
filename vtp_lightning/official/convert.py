"""Convert an official VTP checkpoint into this suite's tensor names, accounting for every tensor.

Once this suite's encoder uses the official maths (``rope_coords: normalized``, ``norm_eps: 1e-5``,
``ffn_align: 8``) the two designs are one renaming apart. The steps, each in its own module:

1. refuse what has no counterpart here (:mod:`.refusals`);
2. infer the encoder and pixel decoder from the tensors (:mod:`.architecture`);
3. rename every tensor, folding the pixel normalisation in (:mod:`.renaming`, :mod:`.pixel_folds`);
4. check the RoPE periods, infer the text tower and DINO head, and check the renamed tensors are
   exactly the matching modules' tensors (:mod:`.architecture`).

The ``model.yaml`` options of a matching tokenizer are :mod:`.model_options` (``vtp-convert`` only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from vtp_lightning.official.architecture import (
    OfficialArchitecture,
    check_complete,
    check_periods,
    expected_shapes,
    infer_ssl_head,
    infer_text,
    infer_trunks,
)
from vtp_lightning.official.refusals import check_config, check_names
from vtp_lightning.official.renaming import Renamer
from vtp_lightning.official.source import OfficialCheckpoint


@dataclass
class Converted:
    """This suite's tensors, the module configs that hold them, and what was done to get them."""

    state: dict[str, torch.Tensor]
    parts: OfficialArchitecture
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # official name -> why it has no tensor here

    @property
    def architecture(self) -> dict[str, Any]:
        """The encode/decode architecture (what ``config.json`` records for ``from_pretrained``)."""
        return self.parts.autoencoder()


def convert(
    checkpoint: OfficialCheckpoint, *, text_heads: int | None = None, drop_ssl_heads: bool = False
) -> Converted:
    """This suite's state dict (every official tensor mapped, folded or left out with a reason)."""
    check_config(checkpoint)
    check_names(checkpoint)
    notes: list[str] = []
    encoder, latent, decoder = infer_trunks(checkpoint, notes)
    renamer = Renamer(checkpoint, encoder.patch_size, drop_ssl_heads)
    state = renamer.run()
    for source, target, config_of in (
        ("trunk.", "encoder.", encoder),
        ("teacher_trunk.", "teacher.encoder.", encoder),
        ("pixel_decoder.", "decoder.", decoder),
    ):
        if f"{source}rope_embed.periods" in checkpoint.tensors and config_of is not None:
            stored = checkpoint.tensors[f"{source}rope_embed.periods"]
            state[f"{target}rope.periods"] = check_periods(
                checkpoint, f"{source}rope_embed.periods", config_of.width // config_of.heads
            )
            notes.append(
                f"{source}rope_embed.periods: base-100 periods, checked at {str(stored.dtype).removeprefix('torch.')} precision and kept as stored"
            )
    notes.append(
        "pixels: ImageNet mean/std folded exactly into encoder.patch_embed and decoder.proj_out; the model takes and returns [-1, 1]"
    )
    parts = OfficialArchitecture(
        encoder=encoder,
        latent_dim=latent,
        decoder=decoder,
        text=infer_text(checkpoint, text_heads, notes),
        ssl_head=infer_ssl_head(checkpoint, state),
        teacher=any(k.startswith("teacher.") for k in state),
        logit_bias="logit_bias" in state,
    )
    check_complete(checkpoint, state, expected_shapes(parts))
    for name, reason in sorted(renamer.left_out.items()):
        notes.append(f"{name}: left out — {reason}")
    return Converted(state, parts, notes, dict(renamer.left_out))
