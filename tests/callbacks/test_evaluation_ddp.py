"""Every evaluation callback under 2-process CPU DDP (gloo): full sets, one log, agreement, no deadlock.

The fit runs in ``ddp_callbacks_script.py`` (Lightning's launcher re-runs the script for rank 1),
once per module; each test reads what it left behind.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from script_module import load_script
from two_rank_run import launcher_free_env, run_two_ranks

from callbacks.evaluation import frozen
from vtp_lightning.data import VTPDataModule
from vtp_lightning.tokenizer import VTPTokenizer

SCRIPT = Path(__file__).resolve().parent / "ddp_callbacks_script.py"
TIMEOUT_S = 240

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(TIMEOUT_S + 60)]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the 2-rank fit; fail (after killing both ranks) if it has not finished within the timeout."""
    out = tmp_path_factory.mktemp("ddp")
    env = launcher_free_env(VTP_CACHE_DIR=str(out / "cache"), PYTHONUNBUFFERED="1")
    run_two_ranks([sys.executable, str(SCRIPT), str(out)], out, env, TIMEOUT_S, "the 2-rank fit")
    return out


@pytest.fixture(scope="module")
def rank_reports(ddp_run: Path) -> list[dict[str, Any]]:
    return [json.loads((ddp_run / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def metric_rows(path: Path, key: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if row.get(key)]


def test_the_fit_really_ran_on_two_ranks_and_finished_in_time(rank_reports: list[dict[str, Any]]) -> None:
    assert [report["world_size"] for report in rank_reports] == [2, 2]


def test_each_rank_evaluates_half_and_the_metrics_see_the_whole_gathered_set(
    rank_reports: list[dict[str, Any]], script: ModuleType
) -> None:
    n = script.NUM_IMAGES
    for report in rank_reports:
        gathers = report["gathers"]
        # reconstruction: features, PSNR and SSIM, at two evaluations
        assert gathers["callbacks.reconstruction"] == [[n // 2, n]] * 6
        # linear probe: features, latents and labels, of the training and the held-out split
        assert gathers["callbacks.linear_probe"] == [[n // 2, n]] * 6
        # zero-shot: image embeddings and labels
        assert gathers["callbacks.zero_shot"] == [[n // 2, n]] * 2
        # generation: latents and labels of the training images and their flips, then sample features
        assert gathers["callbacks.generation"] == [[n, 2 * n], [n, 2 * n], [n // 2, n]]


def test_every_rank_computes_the_same_numbers(rank_reports: list[dict[str, Any]]) -> None:
    rank0, rank1 = (report["results"] for report in rank_reports)
    assert set(rank0) == {"reconstruction", "linear_probe", "zero_shot", "generation"}
    assert all(rank0[name] for name in rank0), rank0
    assert rank0 == rank1


def test_rank_0_alone_writes_one_metrics_file_with_one_row_per_evaluation(
    ddp_run: Path, rank_reports: list[dict[str, Any]], script: ModuleType
) -> None:
    assert [p.relative_to(ddp_run) for p in ddp_run.rglob("metrics.csv")] == [Path("logs/metrics.csv")]
    metrics = ddp_run / "logs" / "metrics.csv"
    every = script.RECONSTRUCTION_EVERY
    expected_steps = {
        "eval/rfd_fmnist": [str(s) for s in range(every, script.MAX_STEPS + 1, every)],
        "eval/probe_cls_top1": [str(script.MAX_STEPS)],
        "eval/zeroshot_top1": [str(script.MAX_STEPS)],
        "eval/gfd_fmnist": [str(script.MAX_STEPS)],
    }
    for key, steps in expected_steps.items():
        assert [row["step"] for row in metric_rows(metrics, key)] == steps, key
    final = {
        key: float(row[key])
        for key in ("eval/probe_cls_top1", "eval/zeroshot_top1", "eval/gfd_fmnist")
        for row in metric_rows(metrics, key)
    }
    results = rank_reports[0]["results"]
    assert final == {
        "eval/probe_cls_top1": pytest.approx(results["linear_probe"]["eval/probe_cls_top1"]),
        "eval/zeroshot_top1": pytest.approx(results["zero_shot"]["eval/zeroshot_top1"]),
        "eval/gfd_fmnist": pytest.approx(results["generation"]["eval/gfd_fmnist"]),
    }


def test_rank_0_writes_the_artefacts_and_the_summary(ddp_run: Path, script: ModuleType) -> None:
    logs = ddp_run / "logs"
    step = script.MAX_STEPS
    assert (logs / "images" / f"reconstructions_step{step:07d}.png").is_file()
    assert (logs / "generation" / f"protocol_step{step:07d}.json").is_file()
    assert (logs / "generation" / f"samples_step{step:07d}.png").is_file()
    summary = json.loads((logs / "summary.json").read_text())
    assert summary["global_step"] == step
    assert "eval/gfd_fmnist" in summary["metrics"]


def test_two_ranks_give_the_numbers_one_process_gives_on_the_same_weights(
    ddp_run: Path, rank_reports: list[dict[str, Any]], script: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gathering must neither lose, duplicate nor reorder images: the fit-end evaluations of the DDP
    run are repeated on one process with the final weights and must agree."""
    monkeypatch.setenv("VTP_CACHE_DIR", str(ddp_run / "cache"))
    model = VTPTokenizer(**script.MODEL_KWARGS)
    model.load_state_dict(torch.load(ddp_run / "final_weights.pt", weights_only=True))
    one_process = SimpleNamespace(
        world_size=1,
        global_rank=0,
        is_global_zero=False,  # no artefacts
        global_step=script.MAX_STEPS,
        datamodule=VTPDataModule(**script.DATA_KWARGS),
    )
    ddp_results = rank_reports[0]["results"]
    for name, callback in script.build_evaluations().items():
        with frozen(model):
            single = callback.evaluate(one_process, model)
        assert single == pytest.approx(ddp_results[name], rel=1e-4, abs=1e-4), name
