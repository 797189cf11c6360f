"""What a tokenizer's ``configure_model`` calls: shard it when the strategy gave it a device mesh."""

from __future__ import annotations

import lightning.pytorch as pl

from vtp_lightning.errors import ConfigError
from vtp_lightning.fsdp.sharding import shard_tokenizer

#: the precision under which the gathered parameters are bf16 and the reductions fp32
BF16_MIXED = "bf16-mixed"


def shard_for_strategy(module: pl.LightningModule) -> list[str]:
    """Apply FSDP2 over the data-parallel mesh when the strategy is ``ModelParallelStrategy``.

    No mesh (every other strategy): nothing to do. ``precision: bf16-mixed`` selects FSDP2's
    mixed precision (bf16 parameters for compute, fp32 shards and gradient reduction); Lightning's
    autocast still runs around the step, so the ops it keeps in fp32 (softmax, norms, losses) stay
    fp32 as under DDP.
    """
    mesh = module.device_mesh
    if mesh is None:
        return []
    if (
        mesh.mesh_dim_names
        and "tensor_parallel" in mesh.mesh_dim_names
        and mesh["tensor_parallel"].size() > 1
    ):
        raise ConfigError(
            f"the model-parallel strategy asks for tensor parallelism over {mesh['tensor_parallel'].size()} "
            "processes, which the tokenizers do not apply (they shard with FSDP2 only); use "
            "strategy: vtp_lightning.fsdp.FSDP2Strategy (experiments/presets/fsdp.yaml), or set "
            "tensor_parallel_size: 1 and data_parallel_size to the number of processes"
        )
    data_parallel = (
        mesh["data_parallel"] if mesh.mesh_dim_names and "data_parallel" in mesh.mesh_dim_names else mesh
    )
    return shard_tokenizer(module, data_parallel, bf16_params=module.trainer.precision == BF16_MIXED)
