"""FSDP2 (``torch.distributed.fsdp.fully_shard``) applied to a tokenizer, block by block.

Which units: every transformer block (the encoder's, the EMA teacher's, the pixel decoder's, the
text tower's) is one unit, gathered just before it runs and freed after; then every top-level part
of the tokenizer that holds parameters (``encoder``, ``bottleneck``, ``decoder``, ``text_tower``,
``clip_image_proj``, ``ssl_head``, the teacher's ``encoder`` and ``ssl_head``, ...) is a unit for
what its blocks leave over (embeddings, norms, projections, prototypes).

Why each top-level part is its own FSDP root rather than the LightningModule being one: FSDP2
gathers a unit's parameters in the unit's ``forward`` hooks, and a root's leftover parameters in
the root's. Lightning's ``ModelParallelStrategy`` calls ``training_step`` directly (no ``forward``),
and the evaluation callbacks call ``encode``/``extract_features``/``encode_text`` outside any step,
so a LightningModule root would never gather; each part is entered through its own ``forward``.

The EMA teacher: its copies are sharded exactly like their students (same unit boundaries, same
mesh, same parameter shapes, so the same dim-0 shard on every rank), which makes the EMA update
``t = m t + (1 - m) s`` shard-local: each rank updates its own slice, no communication, and the
gathered teacher equals the unsharded EMA.

The LightningModule's own parameters (CLIP's ``logit_scale``/``logit_bias``, 0-d tensors FSDP2
cannot shard) stay whole on every rank; their gradients are averaged over the ranks as each
backward leaves them, which is what DDP would do.

Mixed precision: with ``bf16_params`` the units gather bf16 copies for compute while the shards,
the optimizer and the gradient reduce-scatter stay fp32 (``MixedPrecisionPolicy(param_dtype=bf16,
reduce_dtype=fp32)``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from open_clip.transformer import ResidualAttentionBlock
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from vtp_lightning.models.blocks import Block

#: modules sharded one by one (the repeated layers that hold most parameters)
BLOCK_TYPES: tuple[type[nn.Module], ...] = (Block, ResidualAttentionBlock)


def mixed_precision_policy(bf16_params: bool) -> MixedPrecisionPolicy:
    """bf16 gathered parameters and fp32 gradient reduction, or FSDP2's default (no casting)."""
    if bf16_params:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def is_sharded(module: nn.Module) -> bool:
    """Whether FSDP2 has been applied anywhere in ``module``."""
    return any(isinstance(m, FSDPModule) for m in module.modules())


def top_level_parts(module: nn.Module) -> dict[str, nn.Module]:
    """The parts of ``module`` that get their own unit: children holding parameters, a ``ModuleDict``
    (the EMA teacher, which has no ``forward``) replaced by its entries."""
    parts: dict[str, nn.Module] = {}
    for name, child in module.named_children():
        if next(child.parameters(), None) is None:
            continue
        if isinstance(child, nn.ModuleDict):
            parts.update({f"{name}.{key}": entry for key, entry in child.items()})
        else:
            parts[name] = child
    return parts


def shard_tokenizer(module: nn.Module, mesh: DeviceMesh, bf16_params: bool = False) -> list[str]:
    """Apply FSDP2 to ``module`` in place (blocks, then top-level parts); returns the parts' names.

    ``mesh`` is the 1-D data-parallel mesh the parameters are sharded over. Idempotent: a module
    that is already sharded is left as it is (Lightning calls ``configure_model`` once per stage).
    """
    if is_sharded(module):
        return []
    policy = mixed_precision_policy(bf16_params)
    parts = top_level_parts(module)
    for part in parts.values():
        for sub in part.modules():
            if isinstance(sub, BLOCK_TYPES):
                fully_shard(sub, mesh=mesh, mp_policy=policy)
        # resharded after forward like the blocks (FSDP2 keeps a root's parameters gathered until
        # its backward, which the teacher's no-grad passes never run: the EMA would see them whole)
        fully_shard(part, mesh=mesh, mp_policy=policy, reshard_after_forward=True)
    average_replicated_gradients(module, mesh)
    return list(parts)


def average_replicated_gradients(module: nn.Module, mesh: DeviceMesh) -> list[str]:
    """Average, over ``mesh``, the gradient of every trainable parameter ``module`` holds itself.

    These stay whole on every rank (FSDP2 shards no 0-d tensor); without this each rank would step
    them with its own half-batch gradient and they would drift apart. The hook runs when a backward
    has accumulated the gradient, so gradient accumulation averages the running sum (the mean of
    rank means is linear, so averaging again after each micro-batch is still the mean).
    """
    names = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
    group = mesh.get_group()
    size = dist.get_world_size(group)
    if size == 1:
        return names

    def average(param: torch.Tensor) -> None:
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM, group=group)
        param.grad.div_(size)

    for name in names:
        getattr(module, name).register_post_accumulate_grad_hook(average)
    return names


def load_full_weights(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``module.load_state_dict(state, strict=False)`` with full tensors, also into FSDP2 shards
    (each rank keeps its slice: torch's ``set_model_state_dict`` with ``full_state_dict``)."""
    if not is_sharded(module):
        module.load_state_dict(state, strict=False)
        return
    set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True, strict=False))
