"""Lightning's side of checkpoint files: the IO plugin and strategies that read files their own way.

:class:`SafeCheckpointIO` saves atomically (:func:`~vtp_lightning.weights.checkpoint_file.atomic_torch_save`)
and reads with :func:`~vtp_lightning.weights.checkpoint_file.load_checkpoint`, whatever ``weights_only``
Lightning asks for. A strategy that reads checkpoints its own way instead (Lightning's FSDP: its lazy
unpickler imports whatever class the file names) gets the file opened tensors-only first
(:func:`open_tensors_only_first`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.strategies import Strategy

from vtp_lightning.weights.checkpoint_file import atomic_torch_save, load_checkpoint
from vtp_lightning.weights.dcp_check import check_dcp_checkpoint


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
