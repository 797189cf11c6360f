"""``FSDP2Strategy``: Lightning's ``ModelParallelStrategy`` with every process data-parallel.

Lightning's defaults make the data-parallel size the number of nodes and the tensor-parallel size
the number of processes per node (it expects the module to apply tensor parallelism inside a
node). This suite applies FSDP2 only, so with those defaults two processes on one node would
form a 1-replica data-parallel group: both would read the same batches. Here the data-parallel
size is every process (``num_nodes * devices``) and the tensor-parallel size 1 unless given.
Everything else (sharded DCP checkpoints, the launcher, the process group) is Lightning's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.pytorch.strategies import ModelParallelStrategy


class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy(data_parallel_size=world size, tensor_parallel_size=1)`` by default.

    Args:
        data_parallel_size: processes that shard the parameters; ``auto``: all of them.
        tensor_parallel_size: must stay 1 (the tokenizers apply no tensor parallelism).
        save_distributed_checkpoint: one DCP folder with a shard per rank (``True``), or a full
            checkpoint file assembled on rank 0.
        process_group_backend: ``gloo`` on CPUs, ``nccl`` on GPUs when left ``None``.
        timeout: collective timeout.
    """

    def __init__(
        self,
        data_parallel_size: Literal["auto"] | int = "auto",
        tensor_parallel_size: int = 1,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        super().__init__(
            data_parallel_size=data_parallel_size,
            tensor_parallel_size=tensor_parallel_size,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()
