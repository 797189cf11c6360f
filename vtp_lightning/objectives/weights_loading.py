"""How a tokenizer takes in weights: another run's matching modules (``init_weights``), and the checks
on a Lightning checkpoint it resumes from or is loaded from.

Functions over the module rather than methods, so :class:`~vtp_lightning.objectives.base.TokenizerModule`
keeps only the Lightning hooks that call them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.utilities import rank_zero_info

from vtp_lightning.errors import CheckpointError
from vtp_lightning.fsdp.sharding import load_full_weights
from vtp_lightning.models.autoencoder import with_config_defaults
from vtp_lightning.renamed_options import migrate_hparams
from vtp_lightning.weights.checkpoint_file import load_checkpoint
from vtp_lightning.weights.pretrained import read_weights
from vtp_lightning.weights.provenance import ARCH_KEY, CLASS_KEY, check_written_by, class_path

if TYPE_CHECKING:
    from vtp_lightning.objectives.base import TokenizerModule


def load_matching_weights(module: TokenizerModule, path: str | Path) -> list[str]:
    """Initialise ``module`` from another run's weights: every tensor whose name exists here must match
    in shape. A teacher the file lacks restarts as a copy of the loaded student.

    Returns the top-level modules that were loaded. Raises :class:`CheckpointError` when the file
    comes from a different architecture.
    """
    state = read_weights(path)
    own = module.state_dict()
    shared = [k for k in state if k in own]
    buffers = dict(module.named_buffers())  # an index-mode RoPE has inv_freq but no periods
    index_rope = [
        k for k in state if k.endswith("rope.periods") and k not in own and k[:-7] + "inv_freq" in buffers
    ]
    if index_rope:
        raise CheckpointError(
            f"{path} was trained with RoPE on each crop's own [-1, 1] grid ({index_rope[0]}) but this model "
            "places RoPE at integer patch indices; set model.init_args.rope_coords: normalized (with norm_eps "
            "and ffn_align as in the checkpoint: a vtp-convert directory's model.yaml has them)"
        )
    if not shared:
        raise CheckpointError(
            f"{path} shares no parameter names with {type(module).__name__}; is it a vtp-lightning tokenizer?"
        )
    mismatched = [k for k in shared if state[k].shape != own[k].shape]
    if mismatched:
        k = mismatched[0]
        raise CheckpointError(
            f"{path} comes from a different architecture: {k} is {tuple(state[k].shape)} there but "
            f"{tuple(own[k].shape)} here ({len(mismatched)} tensors differ). Match encoder/patch_size/"
            "latent_dim to the checkpoint's config."
        )
    load_full_weights(module, {k: state[k] for k in shared})  # into FSDP2 shards too
    if not any(k.startswith("teacher.") for k in shared):
        module.teacher.restart_from({name: getattr(module, name) for name in module.teacher})
    loaded = sorted({k.split(".")[0] for k in shared})
    rank_zero_info(f"initialised {', '.join(loaded)} from {path}")
    return loaded


def migrated_checkpoint(checkpoint_path: Any, cls: type) -> Any:
    """What to hand Lightning's ``load_from_checkpoint``: a path as it is, unless the checkpoint was
    saved before one of ``cls``'s options was renamed; then an in-memory copy with its hyper-parameters
    renamed (:mod:`vtp_lightning.renamed_options`). Streams are passed through."""
    if not isinstance(checkpoint_path, (str, Path)):
        return checkpoint_path
    checkpoint = load_checkpoint(checkpoint_path, mmap=True)  # the tensors are not read here
    if not migrate_hparams(checkpoint, cls):
        return checkpoint_path
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return buffer


def check_checkpoint_matches(module: TokenizerModule, checkpoint: dict[str, Any]) -> None:
    """Refuse, with one clear message, a checkpoint written by another model or architecture."""
    check_written_by(
        checkpoint.get(CLASS_KEY),
        class_path(module),
        "the checkpoint",
        "use the checkpoint's own config, or init_weights to start a new run from its matching modules",
    )
    arch = checkpoint.get(ARCH_KEY)
    if arch is None:
        return
    arch = with_config_defaults(arch)  # written before a ViTConfig field existed: that field had its default
    own = module.architecture()
    if arch != own:
        diff = [k for k in arch if arch.get(k) != own.get(k)]
        raise CheckpointError(
            f"the checkpoint's {', '.join(diff)} architecture differs from this config's; resume with the "
            "same model options the checkpoint was trained with"
        )
