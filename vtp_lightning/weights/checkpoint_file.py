"""Reading and writing one checkpoint file safely (torch only: no Lightning, no models).

Reading: a ``.ckpt`` a user passes (``--ckpt_path``, ``init_weights``, ``vtp-export``) is unpickled
with ``weights_only=True``, so a checkpoint carrying pickled code is refused before anything runs;
tensors, plain containers and numbers are all a Lightning checkpoint of this suite holds.

Old option names: given the class about to be built from it, :func:`load_checkpoint` renames the
saved hyper-parameters of a checkpoint written before an option was renamed
(:mod:`vtp_lightning.renamed_options`), so it still loads and resumes.

Writing: :func:`atomic_torch_save` writes to a temporary file beside the target and renames it into
place, so a kill during the save never leaves a truncated ``last.ckpt`` (Lightning's own writer
stages the file in ``$TMPDIR``, which is a copy, not a rename, when that is another filesystem).
A kill -9 mid-save leaves that temporary file; the next save into the folder removes it
(:func:`remove_stale_temp_files`).
Lightning's side (the checkpoint IO plugin, strategies with their own reader) is
:mod:`vtp_lightning.weights.lightning_io`.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from vtp_lightning.errors import CheckpointError
from vtp_lightning.renamed_options import migrate_hparams
from vtp_lightning.weights.file_kind import NotACheckpoint, checkpoint_kind

log = logging.getLogger(__name__)

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
        kind = checkpoint_kind(path)
    except NotACheckpoint as exc:
        raise CheckpointError(
            f"{what} {path} is not a torch checkpoint: it is {exc}; give a .ckpt file written by `lightning fit`"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        globals_named = [line for line in str(exc).splitlines() if "GLOBAL" in line.upper()]
        if globals_named:
            raise CheckpointError(
                f"refusing to load {what} {path}: it holds pickled Python objects, not only tensors, and "
                f"unpickling them could run code ({globals_named[0].strip()}); only load checkpoints you "
                "trust, re-saved as plain tensors"
            ) from None
        raise _unreadable(what, path, kind, exc) from None
    except Exception as exc:  # torch raises many types for a damaged file; each is "not readable"
        raise _unreadable(what, path, kind, exc) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} holds a {type(state).__name__}, not a checkpoint dict")
    if model_class is not None:
        migrate_hparams(state, model_class)
    return state


def _unreadable(what: str, path: Path, kind: str, exc: Exception) -> CheckpointError:
    """A zip or pickle that torch still cannot read: cut short, damaged, or not written by torch."""
    looks = "a zip archive" if kind == "zip" else "a pickle"
    detail = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return CheckpointError(
        f"cannot read {what} {path}: it is {looks} but not a complete torch checkpoint ({detail}); it is "
        "truncated or was written by something else — use an earlier or complete one"
    )


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` into a temporary file in ``path``'s folder, flushed to disk, then renamed.

    The temporary file's name records the host and process writing it; the temporary files that
    killed saves left in the folder (their process is gone) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    handle, temp = tempfile.mkstemp(
        prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
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


# ``.<target name>.<host>-<pid>.<8 random characters>.tmp``, as atomic_torch_save names them.
_TEMP_NAME = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp$")
# A temporary file of another host is stale once untouched this long (its process cannot be asked).
OTHER_HOST_STALE_S = 3600.0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Remove from ``folder`` the temporary files of saves whose process died (a kill -9 mid-save).

    A file of this host is stale when its process no longer runs; one of another host (a shared
    filesystem) when it has not been touched for :data:`OTHER_HOST_STALE_S`. This process's own
    files (a save in progress on another thread) are never touched. Returns the removed paths.
    """
    removed = []
    here = _host()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        pid = int(match["pid"])
        if match["host"] == here:
            stale = pid != os.getpid() and not _alive(pid)
        else:
            stale = time.time() - entry.stat().st_mtime > OTHER_HOST_STALE_S
        if stale:
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed:
        log.info("removed %d temporary files of interrupted saves from %s", len(removed), folder)
    return removed
