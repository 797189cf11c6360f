"""A sharded training checkpoint (the folder FSDP2 training writes) read back as one full checkpoint.

Lightning's ``ModelParallelStrategy`` saves a folder: torch DCP shard files (``*.distcp``, one per
rank) with their ``.metadata``, and ``meta.pt`` holding everything else (hyper-parameters, loops,
the architecture record). :func:`read_sharded_checkpoint` returns what a single-file ``.ckpt``
holds: ``meta.pt``'s entries plus a full ``state_dict``, so ``vtp-export`` and ``init_weights``
treat both alike.

Safety first: the folder goes through :func:`~vtp_lightning.weights.dcp_check.check_dcp_checkpoint`
and ``meta.pt`` through :func:`~vtp_lightning.weights.checkpoint_file.load_checkpoint` before torch
reads any of it. Then DCP's own loader fills full-size tensors from the shards, in one process
(``no_dist``). Why not DCP's ``dcp_to_torch_save``: it reads the optimizer states too (twice the
model again, for Adam) and writes a file; only the model's tensors are wanted here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from vtp_lightning.errors import CheckpointError
from vtp_lightning.weights.checkpoint_file import load_checkpoint
from vtp_lightning.weights.dcp_check import METADATA_FILE, check_dcp_checkpoint

#: Lightning's file for the non-tensor part of a sharded checkpoint
META_FILE = "meta.pt"
#: the DCP key prefix under which Lightning saves the model's tensors
STATE_PREFIX = "state_dict."


def is_sharded_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a sharded checkpoint folder (DCP ``.metadata`` and Lightning's ``meta.pt``)."""
    path = Path(path)
    return path.is_dir() and (path / METADATA_FILE).is_file() and (path / META_FILE).is_file()


def read_sharded_checkpoint(folder: str | Path) -> dict[str, Any]:
    """``meta.pt``'s entries and the full model ``state_dict`` of a sharded checkpoint folder."""
    folder = Path(folder)
    check_dcp_checkpoint(folder)
    checkpoint = load_checkpoint(folder / META_FILE, what="sharded checkpoint part")
    metadata = dcp.FileSystemReader(folder).read_metadata()  # checked above
    state = {
        fqn.removeprefix(STATE_PREFIX): torch.empty(item.size, dtype=item.properties.dtype)
        for fqn, item in metadata.state_dict_metadata.items()
        if fqn.startswith(STATE_PREFIX) and isinstance(item, TensorStorageMetadata)
    }
    if not state:
        raise CheckpointError(
            f"{folder} holds no model tensors under {STATE_PREFIX!r}; is it a checkpoint written by "
            "`lightning fit` with the FSDP2 strategy?"
        )
    with warnings.catch_warnings():  # DCP says it assumes one process: that is what no_dist asks for
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        dcp.load({"state_dict": state}, storage_reader=dcp.FileSystemReader(folder), no_dist=True)
    checkpoint["state_dict"] = state
    return checkpoint
