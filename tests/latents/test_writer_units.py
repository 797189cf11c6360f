"""LatentWriter without a Trainer: what it keeps of the batches it is handed, and what it writes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from vtp_lightning.errors import ConfigError
from vtp_lightning.latents import LatentWriter


def one_process_trainer(module: nn.Module) -> Any:
    """The parts of a single-process Trainer the writer uses."""
    strategy = SimpleNamespace(broadcast=lambda obj, src=0: obj, barrier=lambda *a, **k: None)
    return SimpleNamespace(
        is_global_zero=True,
        global_rank=0,
        world_size=1,
        strategy=strategy,
        lightning_module=module,
        ckpt_path=None,
    )


def prediction(indices: list[int], latents: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "index": torch.tensor(indices),
        "label": torch.tensor(indices) % 3,
        "latents": latents,
        "latents_flip": -latents,
    }


def test_a_repeated_index_is_dropped_and_every_shard_holds_its_samples_once(tmp_path: Path) -> None:
    module = nn.Linear(2, 2)
    trainer = one_process_trainer(module)
    writer = LatentWriter(str(tmp_path), shard_size=4)
    sampler = writer.predict_sampler(trainer, num_samples=6, batch_size=2, source="six", image_size=8)
    assert list(sampler) == [0, 1, 2, 3, 4, 5]
    rows = torch.randn(6, 3, 2, 2)
    batches = [[0, 1], [2, 3], [3, 0], [4, 5]]  # [3, 0]: what DDP padding repeats to even out ranks
    for number, indices in enumerate(batches):
        writer.on_predict_batch_start(trainer, module, None, number)
        repeated = rows[indices] + (100.0 if number == 2 else 0.0)  # a repeat must not overwrite the first
        writer.write_on_batch_end(trainer, module, prediction(indices, repeated), None, None, number, 0)
    writer.teardown(trainer, module, "predict")

    assert writer.duplicates_dropped == 2
    first, second = (
        load_file(str(tmp_path / "latents_shard00000.safetensors")),
        load_file(str(tmp_path / "latents_shard00001.safetensors")),
    )
    assert torch.equal(torch.cat([first["latents"], second["latents"]]), rows)
    assert torch.equal(torch.cat([first["latents_flip"], second["latents_flip"]]), -rows)
    assert torch.cat([first["labels"], second["labels"]]).tolist() == [0, 1, 2, 0, 1, 2]
    stats = torch.load(tmp_path / "latents_stats.pt", weights_only=True)
    torch.testing.assert_close(
        stats["std_float64"], rows.double().std(dim=(0, 2, 3), keepdim=True), rtol=1e-12, atol=0
    )


def test_a_shard_size_that_splits_a_batch_is_refused(tmp_path: Path) -> None:
    writer = LatentWriter(str(tmp_path), shard_size=10)
    with pytest.raises(ConfigError, match="multiple of data.batch_size"):
        writer.predict_sampler(
            one_process_trainer(nn.Linear(1, 1)), 30, batch_size=4, source="x", image_size=8
        )


def test_an_unknown_dtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dtype"):
        LatentWriter(str(tmp_path), dtype="int8")  # type: ignore[arg-type]
