"""Reading and writing training checkpoints safely.

Reading: a ``.ckpt`` a user passes (``--ckpt_path``, ``init_weights``, ``vtp-export``) is unpickled
with ``weights_only=True``, so a checkpoint carrying pickled code is refused before anything runs;
tensors, plain containers and numbers are all a Lightning checkpoint of this suite holds.

Old option names: given the class about to be built from it, :func:`load_checkpoint` renames the
saved hyper-parameters of a checkpoint written before an option was renamed
(:mod:`vtp_lightning.renamed_options`), so it still loads and resumes.

Writing: :class:`SafeCheckpointIO` writes a checkpoint to a temporary file beside the target and
renames it into place, so a kill during the save never leaves a truncated ``last.ckpt`` (Lightning's
own writer stages the file in ``$TMPDIR``, which is a copy, not a rename, when that is another
filesystem). The same plugin reads checkpoints with :func:`load_checkpoint`, whatever ``weights_only``
Lightning asks for. A strategy that reads checkpoints its own way instead (Lightning's FSDP: its lazy
unpickler imports whatever class the file names) gets the file opened tensors-only first
(:func:`open_tensors_only_first`).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.strategies import Strategy

from vtp_lightning.dcp_check import check_dcp_checkpoint
from vtp_lightning.errors import CheckpointError
from vtp_lightning.renamed_options import migrate_hparams

# Anything beyond tensors and builtin containers that a checkpoint of this suite may hold: path
# hyper-parameters (``init_weights`` given as a Path by Python users).
SAFE_GLOBALS: list[Any] = [Path, type(Path())]


def load_checkpoint(
    path: str | Path, what: str = "checkpoint", model_class: type | None = None, mmap: bool = False
) -> dict[str, Any]:
    """The dict stored at ``path``; a :class:`CheckpointError` when it is missing, truncated or unsafe.

    With ``model_class`` (the class about to be built from it), old option names in the saved
    hyper-parameters are renamed. ``mmap`` maps the tensors instead of reading them (to look at the
    hyper-parameters of a large file cheaply).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist; check the path")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} is not a file; give the .ckpt file itself")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty (an interrupted save?); use an earlier checkpoint")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        globals_named = [line for line in str(exc).splitlines() if "GLOBAL" in line.upper()]
        if not globals_named:  # not a pickle of any kind (e.g. a text file)
            raise CheckpointError(
                f"cannot read {what} {path}: it is not a torch checkpoint; is it a Lightning .ckpt file?"
            ) from None
        raise CheckpointError(
            f"refusing to load {what} {path}: it holds pickled Python objects, not only tensors, and "
            f"unpickling them could run code ({globals_named[0].strip()}); only load checkpoints you "
            "trust, re-saved as plain tensors"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read {what} {path} ({str(exc).splitlines()[0]}); it is truncated or not a "
            "torch checkpoint — use an earlier or complete one"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} holds a {type(state).__name__}, not a checkpoint dict")
    if model_class is not None:
        migrate_hparams(state, model_class)
    return state


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` into a temporary file in ``path``'s folder, flushed to disk, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        with open(temp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def open_tensors_only_first(strategy: Strategy) -> None:
    """Make ``strategy`` refuse a checkpoint with pickled code before it reads the file its own way.

    The base strategy reads through the checkpoint IO plugin (:class:`SafeCheckpointIO`), but
    Lightning's FSDP reads a full checkpoint with its own unpickler, which imports any class the
    file names (code runs), and this includes the ``last``/``best`` paths Lightning resolves itself,
    which the CLI never sees. So such a strategy first opens the file (a sharded checkpoint: its
    ``meta.pt``) with :func:`load_checkpoint`, tensors memory-mapped, not read, and a sharded
    folder's ``torch.distributed.checkpoint`` parts that torch unpickles with code-running loaders
    (its ``.metadata``, the shard files' non-tensor items) through :func:`check_dcp_checkpoint`.
    """
    if type(strategy).load_checkpoint is Strategy.load_checkpoint:
        return
    read_its_own_way = strategy.load_checkpoint

    def load(checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        path = Path(checkpoint_path)
        if not path.is_dir():
            load_checkpoint(path, mmap=True)
        else:  # a sharded checkpoint: Lightning's meta.pt and torch's DCP files
            if (path / "meta.pt").is_file():
                load_checkpoint(path / "meta.pt", mmap=True)
            check_dcp_checkpoint(path)
        return read_its_own_way(checkpoint_path, *args, **kwargs)

    strategy.load_checkpoint = load  # type: ignore[method-assign]


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic saves beside the target and weights-only loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> Any:
        # Loaded on the CPU: Lightning moves the model's and the optimiser's states to their devices.
        return load_checkpoint(path)


# ------------------------------------------------------------------ what model wrote a checkpoint
ARCH_KEY = "vtp_architecture"  # the encode/decode architecture, enough to rebuild a VTPAutoencoder
CLASS_KEY = "vtp_class"  # the import path of the LightningModule that wrote the checkpoint


def class_path(module: Any) -> str:
    """``package.module.Class`` of a module instance (what :data:`CLASS_KEY` stores)."""
    return f"{type(module).__module__}.{type(module).__qualname__}"


def stamp(checkpoint: dict[str, Any], module: Any) -> None:
    """Record in ``checkpoint`` which class wrote it and its architecture (``on_save_checkpoint``)."""
    checkpoint[ARCH_KEY] = module.architecture()
    checkpoint[CLASS_KEY] = class_path(module)


def check_written_by(theirs: str | None, ours: str, source: str, fix: str) -> None:
    """Refuse, with one message, a checkpoint that another model class wrote.

    ``theirs`` is the checkpoint's class path (None: not written by this suite), ``ours`` the class
    about to load it, ``source`` how the user named the file and ``fix`` what to do instead.
    """
    if theirs is None:
        raise CheckpointError(f"{source} was not written by a vtp-lightning model; {fix}")
    if theirs != ours:
        raise CheckpointError(
            f"{source} holds a {theirs.rsplit('.', 1)[-1]} but this run builds a {ours.rsplit('.', 1)[-1]}; {fix}"
        )
