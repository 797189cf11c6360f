"""Check a sharded ``torch.distributed.checkpoint`` (DCP) folder before torch unpickles any of it.

Lightning's FSDP writes a sharded checkpoint as a DCP folder, and torch reads two parts of it with
code-running unpicklers: the ``.metadata`` file (a plain ``pickle.load``) and every non-tensor item
of the shard files (optimizer param groups, steps: ``DefaultLoadPlanner.load_bytes`` calls
``torch.load`` with ``weights_only`` off). A hostile folder runs code the moment it is resumed from.

So, before the strategy reads the folder: ``.metadata`` is read with an unpickler that resolves only
what DCP metadata is made of (its own classes, tensor sizes, dtypes and layouts, paths); then every
non-tensor item is read through DCP's own reader (offsets, any transforms) with a planner whose
``load_bytes`` is ``torch.load(weights_only=True)``. Why not torch's weights-only unpickler for the
metadata too: it is private (``torch._weights_only_unpickler``) and ``torch.load``, its public door,
does not read a bare pickle.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata
from torch.distributed.checkpoint.planner import ReadItem

from vtp_lightning.errors import CheckpointError

METADATA_FILE = ".metadata"
_PATH_CLASSES = {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"}


def _allowed(module: str, name: str) -> bool:
    if module == "torch.distributed.checkpoint.metadata":
        # DCP's metadata dataclasses and enums (Metadata, TensorStorageMetadata, ...): plain records
        found = getattr(torch.distributed.checkpoint.metadata, name, None)
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


class _TensorsOnlyItemsPlanner(DefaultLoadPlanner):
    """DCP's default load planner, except that a non-tensor item is unpickled tensors-only."""

    refused: str | None = None  # the first item that named a global outside torch's weights-only set

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            self.state_dict[fqn] = torch.load(value, weights_only=True)
        except pickle.UnpicklingError:
            self.refused = self.refused or fqn
            raise


class _CheckedMetadataReader(dcp.FileSystemReader):
    """DCP's file reader, handed the metadata the allowlisted unpickler read, never unpickling it itself."""

    def __init__(self, folder: Path, metadata: Metadata) -> None:
        super().__init__(folder)
        self._checked_metadata = metadata

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        return self._checked_metadata


def check_dcp_checkpoint(folder: Path) -> None:
    """Raise :class:`CheckpointError` if ``folder`` (a DCP checkpoint) would run code when torch reads it.

    A folder without a ``.metadata`` is not a DCP checkpoint: left to its reader.
    """
    metadata = _read_metadata(Path(folder))
    if metadata is None:
        return
    items = {
        fqn: None
        for fqn, item in metadata.state_dict_metadata.items()
        if isinstance(item, BytesStorageMetadata)
    }
    if not items:
        return
    planner = _TensorsOnlyItemsPlanner(flatten_state_dict=False, allow_partial_load=True)
    try:
        reader = _CheckedMetadataReader(folder, metadata)
        dcp.load(items, storage_reader=reader, planner=planner, no_dist=True)
    except (Exception, CheckpointException) as exc:  # DCP's own wrapper is a BaseException
        if planner.refused is not None:
            raise CheckpointError(
                f"refusing to load sharded checkpoint {folder}: its item {planner.refused!r} holds pickled "
                "Python objects, not only tensors and plain values, and unpickling them could run code; only "
                "resume from checkpoints you trust"
            ) from None
        raise CheckpointError(
            f"cannot read sharded checkpoint {folder} ({_first_failure(exc)}); its shard files are "
            "truncated or incomplete — use an earlier or complete one"
        ) from None


def _first_failure(exc: BaseException) -> str:
    """What went wrong, unwrapped from DCP's per-rank ``CheckpointException`` when it is one."""
    if isinstance(exc, CheckpointException) and exc.failures:
        exc = next(iter(exc.failures.values()))[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_metadata(folder: Path) -> Metadata | None:
    """``folder``'s ``.metadata`` read with the allowlisted unpickler (None when there is none)."""
    path = folder / METADATA_FILE
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            metadata = _MetadataUnpickler(f).load()
    except _Refused as exc:
        raise CheckpointError(
            f"refusing to load sharded checkpoint {folder}: its {METADATA_FILE} holds pickled Python objects "
            f"beyond checkpoint metadata ({exc}), and unpickling them could run code; only resume from "
            "checkpoints you trust"
        ) from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"cannot read {path} ({_first_failure(exc)}); the sharded "
            "checkpoint is truncated or incomplete — use an earlier or complete one"
        ) from None
    if not isinstance(metadata, Metadata):
        raise CheckpointError(f"{path} holds a {type(metadata).__name__}, not DCP checkpoint metadata")
    return metadata
