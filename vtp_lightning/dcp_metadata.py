"""Check a sharded checkpoint's ``torch.distributed.checkpoint`` ``.metadata`` before torch unpickles it.

Lightning's FSDP writes a sharded checkpoint as a folder whose ``.metadata`` torch reads with a
plain ``pickle.load``: a hostile file runs code the moment the folder is resumed from. This reads it
with an unpickler that resolves only what DCP metadata is made of (its own classes, tensor sizes,
dtypes and layouts, paths), so a file naming anything else is refused before torch opens it. Why not
torch's weights-only unpickler: it is private (``torch._weights_only_unpickler``) and ``torch.load``,
its public door, does not read a bare pickle.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from vtp_lightning.errors import CheckpointError

METADATA_FILE = ".metadata"
_PATH_CLASSES = {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"}


def _allowed(module: str, name: str) -> bool:
    if module == "torch.distributed.checkpoint.metadata":
        # DCP's metadata dataclasses and enums (Metadata, TensorStorageMetadata, ...): plain records
        import torch.distributed.checkpoint.metadata as dcp_metadata

        found = getattr(dcp_metadata, name, None)
        return isinstance(found, type) and found.__module__ == module
    if module == "torch.distributed.checkpoint.filesystem":
        return name == "_StorageInfo"  # where each item sits in the shard files
    if module == "torch":
        return name == "Size" or isinstance(getattr(torch, name, None), torch.dtype)
    if module == "torch.serialization":
        return name == "_get_layout"  # turns a layout's name into torch.strided etc.
    if module == "pathlib":
        return name in _PATH_CLASSES
    return module == "collections" and name == "OrderedDict"


class _Refused(pickle.UnpicklingError):
    """The file names a global outside the allowlist (a truncated file raises the plain error)."""


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if not _allowed(module, name):
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def check_dcp_metadata(folder: Path) -> None:
    """Raise :class:`CheckpointError` if ``folder``'s ``.metadata`` names anything DCP metadata does not hold."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return
    try:
        with open(path, "rb") as f:
            _MetadataUnpickler(f).load()
    except _Refused as exc:
        raise CheckpointError(
            f"refusing to load sharded checkpoint {folder}: its {METADATA_FILE} holds pickled Python objects "
            f"beyond checkpoint metadata ({exc}), and unpickling them could run code; only resume from "
            "checkpoints you trust"
        ) from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"cannot read {path} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); the sharded "
            "checkpoint is truncated or incomplete — use an earlier or complete one"
        ) from None
