"""When ``configure_model`` shards: only under a model-parallel strategy, and never into tensor parallelism."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vtp_lightning.errors import ConfigError
from vtp_lightning.fsdp import shard_for_strategy


class _Mesh:
    """A 2-D (data_parallel, tensor_parallel) mesh of the given sizes, as Lightning's strategy builds it."""

    mesh_dim_names = ("data_parallel", "tensor_parallel")

    def __init__(self, data: int, tensor: int) -> None:
        self.sizes = {"data_parallel": data, "tensor_parallel": tensor}

    def __getitem__(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(size=lambda: self.sizes[name])


def test_without_a_device_mesh_nothing_is_sharded() -> None:
    assert shard_for_strategy(SimpleNamespace(device_mesh=None)) == []


def test_lightnings_default_tensor_parallel_split_is_refused_naming_the_fsdp_strategy() -> None:
    """ModelParallelStrategy's defaults on one node: 1 data-parallel replica x 2 tensor-parallel ranks."""
    with pytest.raises(ConfigError, match=r"vtp_lightning\.fsdp\.FSDP2Strategy"):
        shard_for_strategy(SimpleNamespace(device_mesh=_Mesh(data=1, tensor=2)))
