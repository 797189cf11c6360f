"""``init_weights`` into a tokenizer that FSDP2 has already sharded (2 CPU processes, gloo): each rank
keeps its slice of the file's full tensors, and gathered back they are the file's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from gloo_group import free_port, gloo_group
from tiny_sizes import TINY_MODEL

WORLD = 2

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:perceptual"),
]


def _worker(rank: int, port: int, source: str, out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from vtp_lightning.fsdp import shard_tokenizer
    from vtp_lightning.tokenizer import VTPTokenizer

    with gloo_group(rank, WORLD, port):
        torch.manual_seed(0)  # not the file's seed: the weights must come from the file
        model = VTPTokenizer(**TINY_MODEL)
        shard_tokenizer(model, init_device_mesh("cpu", (WORLD,)))
        model.load_matching_weights(source)
        state = {
            k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
            for k, v in model.state_dict().items()
        }
        sharded = sum(isinstance(p, DTensor) for p in model.parameters())
        if rank == 0:
            torch.save({"state": state, "sharded": sharded}, out)


def test_init_weights_fill_the_shards_of_a_sharded_tokenizer(tmp_path: Path) -> None:
    from vtp_lightning.tokenizer import VTPTokenizer

    torch.manual_seed(1)
    source = VTPTokenizer(**TINY_MODEL).state_dict()
    torch.save({"state_dict": source}, tmp_path / "source.ckpt")
    mp.spawn(
        _worker, args=(free_port(), str(tmp_path / "source.ckpt"), str(tmp_path / "out.pt")), nprocs=WORLD
    )
    result = torch.load(tmp_path / "out.pt", weights_only=True)
    assert result["sharded"] > 50  # the load really went into DTensor shards
    assert set(result["state"]) == set(source)
    for name, value in source.items():
        assert torch.equal(result["state"][name], value), name
