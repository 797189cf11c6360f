"""One short fit with every evaluation callback: what lands in metrics.csv, on disk and on screen.

Schedule of the run (4 optimiser steps):

- reconstruction every 2 steps: steps 2 and 4; fit end adds nothing, step 4 was just evaluated;
- linear probe every 3 steps: step 3, then once more at fit end (step 4);
- zero-shot and generation only at fit end: step 4.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from callbacks import (
    EvaluationCallback,
    GenerationEvaluation,
    LinearProbeEvaluation,
    ReconstructionEvaluation,
    TrainingSummary,
    ZeroShotEvaluation,
)
from callbacks.compute import FLOPS_KEY, SAMPLES_KEY, ComputeAccounting
from vtp_lightning.metrics.generation import GenerationProtocol

pytestmark = pytest.mark.integration

STEPS = 4
BATCH_SIZE = 8  # the tiny datamodule's
IMAGES = 64
GRID = 16  # more than a reconstruction batch: the grid spans two batches
RECON_BATCH = 8
PROTOCOL = GenerationProtocol(
    dit="tiny", train_steps=20, batch_size=16, sampling_steps=5, num_samples=64, sample_batch_size=64
)
EXPECTED_STEPS = {
    "eval/rfd_fmnist": [2, 4],
    "eval/psnr": [2, 4],
    "eval/ssim": [2, 4],
    "eval/probe_cls_top1": [3, 4],
    "eval/probe_latent_top1": [3, 4],
    "eval/zeroshot_top1": [4],
    "eval/gfd_fmnist": [4],
    "eval/gfd_fmnist_inf": [4],
    "eval/gkd_fmnist": [4],
    "eval/gkd_fmnist_se": [4],
    "eval/gen_class_agreement": [4],  # the embedded data has Fashion-MNIST's classes
    "eval/gen_dit_loss": [4],
}
METRICS = list(EXPECTED_STEPS)


class EvaluationWitness:
    """Two callbacks placed around the evaluation callbacks.

    ``before`` snapshots the weights, buffers and every submodule's train/eval mode; ``after``
    compares, for each moment at which an evaluation actually ran in between.
    """

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self._snapshot: dict[str, Any] = {}
        witness = self

        class Before(pl.Callback):
            def on_train_batch_end(
                self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
            ) -> None:
                witness.take_snapshot(trainer, pl_module)

            def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
                witness.take_snapshot(trainer, pl_module)

        class After(pl.Callback):
            def on_train_batch_end(
                self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
            ) -> None:
                witness.compare(trainer, pl_module, trainer.global_step)

            def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
                witness.compare(trainer, pl_module, "fit end")

        self.before, self.after = Before(), After()

    @staticmethod
    def _evaluation_seconds(trainer: pl.Trainer) -> float:
        return sum(cb.seconds_spent for cb in trainer.callbacks if isinstance(cb, EvaluationCallback))

    def take_snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._snapshot = {
            "seconds": self._evaluation_seconds(trainer),
            "state": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            "modes": {name: m.training for name, m in pl_module.named_modules()},
        }

    def compare(self, trainer: pl.Trainer, pl_module: pl.LightningModule, moment: int | str) -> None:
        if self._evaluation_seconds(trainer) == self._snapshot["seconds"]:
            return  # nothing evaluated in between
        state = pl_module.state_dict()
        self.checks.append(
            {
                "moment": moment,
                "training": pl_module.training,
                "modes_kept": {n: m.training for n, m in pl_module.named_modules()}
                == self._snapshot["modes"],
                "changed": [k for k, v in self._snapshot["state"].items() if not torch.equal(v, state[k])],
                "grad_enabled": torch.is_grad_enabled(),
            }
        )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, make_vtp, fit_tiny, metrics_of) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("run")
    evaluations = {
        "reconstruction": ReconstructionEvaluation(
            num_images=IMAGES, grid_images=GRID, every_n_steps=2, batch_size=RECON_BATCH
        ),
        "linear_probe": LinearProbeEvaluation(
            train_images=IMAGES, eval_images=IMAGES, steps=50, every_n_steps=3, batch_size=32
        ),
        "zero_shot": ZeroShotEvaluation(eval_images=IMAGES, batch_size=32),
        "generation": GenerationEvaluation(
            protocol=PROTOCOL, train_images=IMAGES, reference_images=IMAGES, batch_size=32
        ),
    }
    witness = EvaluationWitness()
    callbacks = [
        ComputeAccounting(),
        witness.before,
        *evaluations.values(),
        witness.after,
        TrainingSummary(),
    ]
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("VTP_CACHE_DIR", str(root / "cache"))
        trainer = fit_tiny(make_vtp(), root, callbacks, STEPS)
    return SimpleNamespace(
        root=root,
        trainer=trainer,
        evaluations=evaluations,
        witness=witness,
        printed=printed.getvalue(),
        rows=metrics_of(root),
    )


def logged(run: SimpleNamespace, key: str) -> list[tuple[int, float]]:
    return [(int(row["step"]), float(row[key])) for row in run.rows if row.get(key)]


def test_every_evaluation_metric_is_logged_to_metrics_csv(run: SimpleNamespace) -> None:
    for key in METRICS:
        values = [value for _, value in logged(run, key)]
        assert values and all(math.isfinite(v) for v in values), key
    final = {key: logged(run, key)[-1][1] for key in METRICS}
    assert final["eval/rfd_fmnist"] > 0 and final["eval/gfd_fmnist"] > 0
    assert final["eval/psnr"] > 0 and -1 <= final["eval/ssim"] <= 1
    for key in ("eval/probe_cls_top1", "eval/probe_latent_top1", "eval/zeroshot_top1"):
        assert 0 <= final[key] <= 100, key  # percent
    assert final["eval/gen_dit_loss"] > 0


def test_the_metrics_also_reach_callback_metrics_and_match_the_csv(run: SimpleNamespace) -> None:
    for key in METRICS:
        assert float(run.trainer.callback_metrics[key]) == pytest.approx(logged(run, key)[-1][1]), key


def test_every_evaluation_row_carries_the_compute_spent_so_far(run: SimpleNamespace) -> None:
    evaluation_rows = [row for row in run.rows if any(row.get(key) for key in METRICS)]
    assert evaluation_rows
    flops_per_step = {float(row[FLOPS_KEY]) / int(row["step"]) for row in evaluation_rows}
    for row in evaluation_rows:
        assert float(row[SAMPLES_KEY]) == int(row["step"]) * BATCH_SIZE
        assert float(row[FLOPS_KEY]) > 0
    assert len(flops_per_step) == 1  # cumulative: the same measured FLOPs for every step


def test_evaluations_run_every_n_steps_and_fit_end_skips_a_just_evaluated_last_step(
    run: SimpleNamespace,
) -> None:
    for key, steps in EXPECTED_STEPS.items():
        assert [step for step, _ in logged(run, key)] == steps, key
    assert [check["moment"] for check in run.witness.checks] == [2, 3, 4, "fit end"]


def test_the_model_is_back_in_train_mode_with_its_weights_unchanged_after_each_evaluation(
    run: SimpleNamespace,
) -> None:
    assert run.witness.checks
    for check in run.witness.checks:
        assert check["training"], check["moment"]
        assert check["modes_kept"], check["moment"]
        assert check["changed"] == [], check["moment"]
        assert check["grad_enabled"], check["moment"]


def test_the_summary_is_printed_and_written_as_json(run: SimpleNamespace) -> None:
    assert "summary" in run.printed and f"step {STEPS}" in run.printed
    assert "train/loss" in run.printed
    summary = json.loads((run.root / "summary.json").read_text())
    assert summary["global_step"] == STEPS
    expected = {key: value for cb in run.evaluations.values() for key, value in cb.last_results.items()}
    assert set(expected) == set(METRICS)
    assert summary["metrics"] == pytest.approx(expected)
    for key, value in expected.items():  # each metric is printed on its own line with its value
        line = next(line for line in run.printed.splitlines() if line.split()[:1] == [key])
        assert float(line.split()[1]) == pytest.approx(value, abs=1e-4)
    assert summary["losses"]["train/loss"]["steps"] == STEPS
    by_callback = summary["evaluation_time_by_callback_s"]
    assert set(by_callback) == {type(cb).__name__ for cb in run.evaluations.values()}
    assert all(seconds > 0 for seconds in by_callback.values())
    assert 0 < summary["evaluation_time_s"] <= summary["wall_time_s"]


def test_a_grid_of_originals_over_reconstructions_is_saved_at_every_reconstruction_evaluation(
    run: SimpleNamespace,
) -> None:
    cell = 32 + 1  # image + 1 px padding
    for step in (2, 4):
        png = run.root / "images" / f"reconstructions_step{step:07d}.png"
        with Image.open(png) as image:
            # rows of 8: originals 0-7, their reconstructions, originals 8-15, theirs
            assert image.size == (8 * cell + 1, 4 * cell + 1)
    assert len(list((run.root / "images").glob("*.png"))) == 2


def test_generation_saves_its_protocol_latent_statistics_and_a_sample_grid(run: SimpleNamespace) -> None:
    folder = run.root / "generation"
    record = json.loads((folder / f"protocol_step{STEPS:07d}.json").read_text())
    assert record["step"] == STEPS
    assert record["protocol"] == json.loads(json.dumps(PROTOCOL.to_dict()))
    assert record["feature_extractor"] == "fmnist"
    assert (record["train_images"], record["hflip"], record["reference_images"]) == (IMAGES, True, IMAGES)
    assert record["results"] == pytest.approx(run.evaluations["generation"].last_results)

    stats = load_file(folder / f"latent_stats_step{STEPS:07d}.safetensors")
    latent_dim = run.trainer.lightning_module.latent_dim
    assert stats["mean"].shape == stats["std"].shape == (latent_dim,)
    assert (stats["std"] > 0).all()

    with Image.open(folder / f"samples_step{STEPS:07d}.png") as grid:
        # 64 samples (two decode chunks of 32) conditioned on classes 0..9 in turn: a column per class
        assert grid.size == (10 * 33 + 1, 7 * 33 + 1)
    assert record["feature_dim"] == 192 and record["scores"]["num_samples"] == 64
    assert record["scores"]["fd"] == record["results"]["eval/gfd_fmnist"]


def test_fmnist_distances_are_named_rfd_and_gfd_never_fid(run: SimpleNamespace) -> None:
    columns = set(run.rows[0])
    assert {"eval/rfd_fmnist", "eval/gfd_fmnist"} <= columns
    assert not [column for column in columns if "fid" in column]
    assert not [key for key in run.trainer.callback_metrics if "fid" in key]


def test_the_summary_is_printed_to_stdout_when_fit_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_ae, fit_tiny
) -> None:
    reconstruction = ReconstructionEvaluation(num_images=16, grid_images=0, batch_size=16)
    fit_tiny(make_ae(), tmp_path, [reconstruction, TrainingSummary()], max_steps=2)
    out = capsys.readouterr().out
    assert "== vtp-lightning summary (step 2) ==" in out
    assert f"{'eval/rfd_fmnist':<28}{reconstruction.last_results['eval/rfd_fmnist']:>12.4f}" in out
    assert "of which evaluation" in out
    assert (tmp_path / "summary.json").is_file()
