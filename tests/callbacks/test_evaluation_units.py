"""The evaluation base pieces on their own: probe features, rank shards, gathering, freezing,
scheduling and where artefacts go."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from callbacks import LinearProbeEvaluation, ReconstructionEvaluation, ZeroShotEvaluation
from callbacks.evaluation import frozen, gather, iterate_images, rank_shard, run_directory
from vtp_lightning.errors import ConfigError

WIDTH, LATENT_DIM, GRID = 32, 8, 8  # the tiny tokenizer: encoder width D, latent d, 32 px / patch 4


def fake_rank(rank: int, world: int = 2) -> SimpleNamespace:
    return SimpleNamespace(world_size=world, global_rank=rank)


class Items(torch.utils.data.Dataset):
    """``{"image", "label"}`` items like ``VTPDataModule.eval_dataset``, image ``i`` filled with ``i``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": torch.full((3, 2, 2), float(i)), "label": torch.tensor(i % 3)}


# ---------------------------------------------------------------------------------- linear probe
@pytest.mark.parametrize(
    ("pooling", "latent_features"), [("mean", LATENT_DIM), ("flat", LATENT_DIM * GRID * GRID)]
)
def test_probe_features_are_cls_with_patch_mean_and_the_latent(
    pooling: str, latent_features: int, make_vtp, make_data, fake_trainer
) -> None:
    model, datamodule = make_vtp(), make_data()
    probe = LinearProbeEvaluation(latent_pooling=pooling, batch_size=8)
    with frozen(model):
        features, labels = probe._features(fake_trainer(datamodule), model, "val", 12)
        images = torch.stack([item["image"] for item in datamodule.eval_dataset("val", 12)])
        direct = model.extract_features(images, source="teacher")

    assert features["cls"].shape == (12, 2 * WIDTH)  # CLS and mean patch token, side by side
    assert features["latent"].shape == (12, latent_features)
    torch.testing.assert_close(features["cls"][:, :WIDTH], direct["cls"])
    torch.testing.assert_close(features["cls"][:, WIDTH:], direct["patch_mean"])
    latent_key = "latent_mean" if pooling == "mean" else "latent"
    torch.testing.assert_close(features["latent"], direct[latent_key])
    expected_labels = torch.stack([item["label"] for item in datamodule.eval_dataset("val", 12)])
    assert torch.equal(labels, expected_labels)


# ---------------------------------------------------------------------------------- rank shards
def test_rank_shard_splits_an_evaluation_set_into_equal_disjoint_shards() -> None:
    items = Items(10)
    shards = [list(rank_shard(items, fake_rank(rank)).indices) for rank in (0, 1)]
    assert shards == [list(range(0, 5)), list(range(5, 10))]


def test_rank_shard_leaves_out_the_remainder_so_every_shard_has_the_same_size() -> None:
    shards = [rank_shard(Items(11), fake_rank(rank)) for rank in (0, 1)]
    assert [len(shard) for shard in shards] == [5, 5]


def test_one_process_gets_the_whole_set() -> None:
    assert list(rank_shard(Items(7), fake_rank(0, world=1)).indices) == list(range(7))


def test_too_few_images_for_the_ranks_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot be split over 2 ranks"):
        rank_shard(Items(1), fake_rank(0))


def test_iterate_images_yields_this_ranks_shard_in_order_in_batches() -> None:
    items = Items(10)
    seen = []
    for rank in (0, 1):
        batches = list(iterate_images(items, fake_rank(rank), torch.device("cpu"), batch_size=3))
        assert [images.shape[0] for images, _ in batches] == [3, 2]
        seen += [
            (int(image[0, 0, 0]), int(label))
            for images, labels in batches
            for image, label in zip(images, labels)
        ]
    assert seen == [(i, i % 3) for i in range(10)]  # the two shards together: every image once


def test_gather_on_one_process_returns_the_tensor_itself() -> None:
    tensor = torch.arange(6).view(3, 2)
    assert gather(SimpleNamespace(world_size=1), tensor) is tensor


def test_gather_concatenates_the_ranks_along_the_first_dimension() -> None:
    shards = [torch.arange(6).view(3, 2), torch.arange(6, 12).view(3, 2)]
    strategy = SimpleNamespace(all_gather=lambda tensor: torch.stack(shards))
    gathered = gather(SimpleNamespace(world_size=2, strategy=strategy), shards[0])
    assert torch.equal(gathered, torch.arange(12).view(6, 2))


# ---------------------------------------------------------------------------------- freezing
def test_frozen_evaluates_without_gradients_and_restores_train_mode() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    with frozen(module):
        assert not module.training and not module[1].training
        assert not torch.is_grad_enabled()
    assert module.training and module[1].training
    assert torch.is_grad_enabled()


def test_frozen_restores_train_mode_when_the_evaluation_fails() -> None:
    module = torch.nn.Linear(2, 2).train()
    with pytest.raises(RuntimeError), frozen(module):
        raise RuntimeError("evaluation failed")
    assert module.training


def test_frozen_leaves_a_module_in_eval_mode_in_eval_mode() -> None:
    module = torch.nn.Linear(2, 2).eval()
    with frozen(module):
        pass
    assert not module.training


# ---------------------------------------------------------------------------------- scheduling
@pytest.mark.parametrize("every_n_steps", [0, -3])
def test_every_n_steps_must_be_positive_or_null(every_n_steps: int) -> None:
    with pytest.raises(ConfigError, match="every_n_steps"):
        ZeroShotEvaluation(every_n_steps=every_n_steps)


@pytest.mark.integration
def test_a_step_is_evaluated_once_under_gradient_accumulation(
    tmp_path: Path, make_ae, make_data, fit_tiny, metrics_of
) -> None:
    """Two batches make one optimiser step; the step's evaluation must not run once per batch."""
    evaluation = ReconstructionEvaluation(num_images=16, grid_images=0, every_n_steps=1, batch_size=16)
    fit_tiny(make_ae(), tmp_path, [evaluation], max_steps=2, accumulate_grad_batches=2)
    steps = [row["step"] for row in metrics_of(tmp_path) if row.get("eval/rfd_fmnist")]
    assert steps == ["1", "2"]


@pytest.mark.integration
def test_without_at_fit_end_nothing_is_evaluated_after_the_last_step(
    tmp_path: Path, make_ae, fit_tiny, metrics_of
) -> None:
    evaluation = ReconstructionEvaluation(
        num_images=16, grid_images=0, every_n_steps=2, at_fit_end=False, batch_size=16
    )
    fit_tiny(make_ae(), tmp_path, [evaluation], max_steps=3)
    steps = [row["step"] for row in metrics_of(tmp_path) if row.get("eval/rfd_fmnist")]
    assert steps == ["2"]


@pytest.mark.integration
def test_reconstruction_without_an_extractor_logs_psnr_and_ssim_only(
    tmp_path: Path, make_ae, fit_tiny, metrics_of
) -> None:
    """``feature_extractor: null`` (256 px data with no fitting feature net): no Fréchet distance at all."""
    evaluation = ReconstructionEvaluation(num_images=16, feature_extractor=None, grid_images=0, batch_size=16)
    fit_tiny(make_ae(), tmp_path, [evaluation], max_steps=1)
    logged = {key for row in metrics_of(tmp_path) for key, value in row.items() if value}
    assert {"eval/psnr", "eval/ssim"} <= logged
    assert not any(key.startswith(("eval/rfd", "eval/rfid")) for key in logged)


# ---------------------------------------------------------------------------------- artefacts
def test_run_directory_is_the_loggers_folder_and_needs_no_other_rank(tmp_path: Path) -> None:
    """Artefacts are written on rank 0 only: finding the folder must not be a collective."""

    def broadcast(*args: object) -> None:
        raise AssertionError("run_directory called a collective")

    logger = CSVLogger(tmp_path / "logs", name="run", version="v0")
    trainer = SimpleNamespace(
        loggers=[logger], default_root_dir=str(tmp_path), strategy=SimpleNamespace(broadcast=broadcast)
    )
    assert run_directory(trainer) == tmp_path / "logs" / "run" / "v0"
    assert run_directory(trainer).is_dir()


def test_without_a_logger_artefacts_go_to_the_default_root_dir(tmp_path: Path) -> None:
    trainer = SimpleNamespace(loggers=[], default_root_dir=str(tmp_path / "root"))
    assert run_directory(trainer) == tmp_path / "root"
    assert (tmp_path / "root").is_dir()


def test_items_helper_matches_the_eval_dataset_layout(make_data) -> None:
    """The unit tests' stand-in has the contract's item layout."""
    real = make_data().eval_dataset("val", 2)[0]
    fake = Items(2)[0]
    assert set(real) == set(fake) == {"image", "label"}
    assert real["label"].dtype == fake["label"].dtype == torch.long


# ---------------------------------------------------------------------------------- random streams
def test_an_evaluation_leaves_torch_numpy_and_python_random_streams_as_it_found_them() -> None:
    import random

    import numpy as np

    from callbacks.evaluation import EvaluationCallback

    class DrawsRandomNumbers(EvaluationCallback):
        def evaluate(self, trainer, pl_module) -> dict[str, float]:
            return {"eval/x": float(torch.rand(1)) + float(np.random.rand()) + random.random()}

    def draws() -> tuple[float, float, float]:
        return float(torch.rand(1)), float(np.random.rand()), random.random()

    trainer = SimpleNamespace(global_step=3, loggers=[], callback_metrics={}, callbacks=[])
    module = torch.nn.Linear(1, 1)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = draws()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    DrawsRandomNumbers().run(trainer, module)
    assert draws() == expected
