"""Which model wrote a checkpoint: the class path and architecture stamped into every save.

Stage 2, ``init_weights`` and resuming refuse a checkpoint another model class wrote with one
message (:func:`check_written_by`); ``vtp-export`` rebuilds the encode/decode path from
:data:`ARCH_KEY`.
"""

from __future__ import annotations

from typing import Any

from vtp_lightning.errors import CheckpointError

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
