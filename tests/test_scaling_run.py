"""The scaling curve's estimate (issue 24): cost parts read from finished cells' records, the
quiet-machine estimate printed before anything trains, and the refusal over budget. No training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from script_module import load_script

from vtp_lightning import scaling_run
from vtp_lightning.scaling_cost import evaluation_rounds
from vtp_lightning.scaling_reuse import compare_cells
from vtp_lightning.scaling_run import main

BASE_STEPS = 25
EVERY = 100  # the probe's every_n_steps in the synthetic configs; generation runs at the end only


def write_finished_cell(
    grid: Path, combination: str, budget: int, seed: int, startup: float, per_step: float, generation: float,
    probe: float,
) -> None:  # fmt: skip
    """DONE, summary.json and config.yaml as a real cell writes them, from chosen cost parts."""
    steps = budget * BASE_STEPS
    rounds = steps // EVERY + (1 if steps % EVERY else 0)
    evaluation = generation + probe * rounds
    run_wall = steps * per_step + evaluation
    directory = grid / combination / f"{budget}x" / f"seed{seed}"
    directory.mkdir(parents=True)
    (directory / "DONE").write_text(
        json.dumps({"wall_time_s": run_wall + startup, "max_steps": steps, "attempts": 1})
    )
    summary = {
        "wall_time_s": run_wall,
        "evaluation_time_s": evaluation,
        "evaluation_time_by_callback_s": {
            "GenerationEvaluation": generation,
            "LinearProbeEvaluation": probe * rounds,
        },
    }
    (directory / "summary.json").write_text(json.dumps(summary))
    callbacks = [
        {"class_path": "callbacks.GenerationEvaluation", "init_args": {"every_n_steps": None}},
        {"class_path": "callbacks.LinearProbeEvaluation", "init_args": {"every_n_steps": EVERY}},
    ]
    (directory / "config.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    (directory / "metrics.csv").write_text(ARCHIVED_LOSSES)


ARCHIVED_LOSSES = "step,train/loss,compute/flops\n5,0.5,10.0\n10,0.25,20.0\n"


# quiet cost parts per combination; the contended copies (seed 1) are slower and must not count
QUIET = {"ae": (5.0, 1.0, 100.0, 10.0), "clip_ssl_ae": (5.0, 2.0, 120.0, 20.0)}


@pytest.fixture
def restored(tmp_path: Path) -> Path:
    grid = tmp_path / "runs" / "paper"
    for combination, (startup, per_step, generation, probe) in QUIET.items():
        for budget in (1, 4):
            write_finished_cell(grid, combination, budget, 0, startup, per_step, generation, probe)
            write_finished_cell(
                grid, combination, budget, 1, 2 * startup, 3 * per_step, 2 * generation, 2 * probe
            )
    return tmp_path / "runs"


def expected_seconds(combination: str, budget: int) -> float:
    startup, per_step, generation, probe = QUIET[combination]
    steps = budget * BASE_STEPS
    return startup + steps * per_step + generation + probe * -(-steps // EVERY)


def draw_seconds(combination: str) -> float:
    startup, _, generation, _ = QUIET[combination]
    return startup + generation


def run_estimate(runs: Path, *extra: str) -> int:
    return main(["--runs-dir", str(runs), "--grid", "paper", "--seeds", "0", "1", "--estimate-only", *extra])


def test_evaluation_rounds_count_every_n_steps_and_the_end_of_fit() -> None:
    assert [evaluation_rounds(s, 100) for s in (25, 100, 150, 400)] == [1, 1, 2, 4]
    assert evaluation_rounds(1600, None) == 1


def test_the_estimate_counts_the_16x_cells_and_their_second_draws(
    restored: Path, capsys: pytest.CaptureFixture
) -> None:
    new_cells = [(c, 16) for c in QUIET for _ in (0, 1)]
    checks = sum(expected_seconds(c, 1) for c in QUIET)  # one archived 1x cell per combination, again
    total = checks + sum(expected_seconds(c, b) + draw_seconds(c) for c, b in new_cells)
    with_64 = total + sum(expected_seconds(c, 64) + draw_seconds(c) for c in QUIET)
    budget_hours = (total + with_64) / 2 / 3600  # room for the 16x cells, not for 64x

    assert run_estimate(restored, "--budget-hours", str(budget_hours)) == 0

    out = capsys.readouterr().out
    assert f"estimate: {total / 3600:.2f} h of new compute" in out
    assert "left out: ae/64x/seed0, clip_ssl_ae/64x/seed0" in out
    assert "keep their one protocol draw: 8 cells" in out  # restored 1x/4x cells have no checkpoint
    assert (
        "reuse check: train ae/1x/seed0 again" in out
        and "reuse check: train clip_ssl_ae/1x/seed0 again" in out
    )


def test_64x_for_seed_0_joins_when_it_fits(restored: Path, capsys: pytest.CaptureFixture) -> None:
    total = sum(expected_seconds(c, b) + draw_seconds(c) for c in QUIET for b in (16, 16, 64))
    assert run_estimate(restored, "--budget-hours", str(total / 3600 + 0.01), "--skip-reuse-check") == 0
    out = capsys.readouterr().out
    assert f"estimate: {total / 3600:.2f} h" in out and "train ae/64x/seed0 (1600 steps)" in out


def test_the_estimate_over_budget_refuses_in_one_line(restored: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_estimate(restored, "--budget-hours", "0.1") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: the estimate") and "SCALING_GO_ON=1" in error[0]


def test_go_on_accepts_an_estimate_over_budget(restored: Path) -> None:
    assert run_estimate(restored, "--budget-hours", "0.1", "--go-on") == 0


def test_no_finished_cell_to_measure_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_estimate(tmp_path) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no finished ae cell" in error[0]


FAKE_TRAINER = """
import os, sys, pathlib
root = pathlib.Path(sys.argv[sys.argv.index("--trainer.default_root_dir") + 1])
(root / "checkpoints").mkdir(parents=True, exist_ok=True)
(root / "checkpoints" / "last.ckpt").write_bytes(b"weights")
(root / "metrics.csv").write_text(os.environ["FAKE_LOSSES"])
"""


@pytest.fixture
def fake_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[list[str]]]:
    """A trainer that writes a checkpoint and FAKE_LOSSES as metrics.csv; protocol_eval calls recorded."""
    trainer, configs = tmp_path / "fake_trainer.py", tmp_path / "experiments"
    trainer.write_text(FAKE_TRAINER)
    configs.mkdir()
    for combination in QUIET:
        (configs / f"{combination}.yaml").write_text("trainer:\n  max_steps: 25\n")
    monkeypatch.setenv("VTP_GRID_TRAIN_COMMAND", f"{sys.executable} {trainer}")
    monkeypatch.setenv("FAKE_LOSSES", ARCHIVED_LOSSES)  # today's code trains as the archived cells did
    draws: list[list[str]] = []

    def fake_protocol_eval(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        draws.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(scaling_run.subprocess, "run", fake_protocol_eval)
    return configs, draws


def test_the_run_checks_reuse_then_trains_new_cells_lowest_budget_first_and_draws_each_once_more(
    restored: Path, fake_training: tuple[Path, list[list[str]]]
) -> None:
    configs, draws = fake_training
    argv = ["--runs-dir", str(restored), "--seeds", "0", "--extra-budgets", "--configs-dir", str(configs)]

    assert main(argv) == 0

    grid = restored / "paper"
    assert all((grid / c / "16x" / "seed0" / "DONE").is_file() for c in QUIET)
    drawn = [
        (Path(c[3]).parts[-5:-2], c[c.index("--seeds") + 1], Path(c[c.index("--out") + 1]).name)
        for c in draws
    ]
    assert drawn == [
        (("ae", "16x", "seed0"), "100", "protocol_eval.jsonl"),
        (("clip_ssl_ae", "16x", "seed0"), "100", "protocol_eval.jsonl"),
    ]
    assert all(c[3].endswith("checkpoints/last.ckpt") and "vtp_lightning.protocol_eval" in c for c in draws)
    record = json.loads((grid / "scaling_run.jsonl").read_text())
    assert record["trained"] == ["ae/16x/seed0", "clip_ssl_ae/16x/seed0"] and record["wall_time_s"] >= 0
    assert [line.split(" trained today ")[0] for line in record["reuse_check"]] == [
        "ae/1x/seed0",
        "clip_ssl_ae/1x/seed0",
    ]
    assert all("matches the archived cell" in line for line in record["reuse_check"])


def test_archived_cells_that_todays_code_trains_differently_are_refused_before_new_cells_train(
    restored: Path, fake_training: tuple[Path, list[list[str]]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    configs, draws = fake_training
    monkeypatch.setenv("FAKE_LOSSES", ARCHIVED_LOSSES.replace("0.25", "0.2501"))  # a changed step 10

    assert (
        main(["--runs-dir", str(restored), "--seeds", "0", "--extra-budgets", "--configs-dir", str(configs)])
        == 2
    )

    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "ae/1x/seed0 no longer matches today's code (train/loss at step 10" in error[0]
    assert not (restored / "paper" / "ae" / "16x" / "seed0").exists() and draws == []


def test_compare_cells_reports_the_largest_relative_difference(tmp_path: Path) -> None:
    archived, fresh = tmp_path / "a", tmp_path / "b"
    for directory, loss in ((archived, 0.25), (fresh, 0.3)):
        directory.mkdir()
        (directory / "metrics.csv").write_text(f"step,train/loss,eval/x\n5,0.5,1\n10,{loss},2\n")

    match = compare_cells(archived, fresh)

    assert (match.compared, match.where) == (2, "train/loss at step 10")
    assert match.worst == pytest.approx((0.3 - 0.25) / 0.3)
    assert compare_cells(archived, archived).worst == 0.0


def test_archiving_keeps_the_second_protocol_draws(tmp_path: Path) -> None:
    grid_results = load_script(Path(__file__).parents[1] / "scripts" / "grid_results.py")
    cell = tmp_path / "runs" / "paper" / "ae" / "16x" / "seed0"
    (cell / "generation").mkdir(parents=True)
    (cell / "DONE").write_text("{}")
    (cell / "generation" / "protocol_eval.jsonl").write_text('{"protocol_seed": 100}\n')

    assert (
        grid_results.main(
            ["archive", "paper", "--runs-dir", str(tmp_path / "runs"), "--archive-dir", str(tmp_path / "a")]
        )
        == 0
    )
    assert (
        tmp_path / "a" / "paper" / "ae" / "16x" / "seed0" / "generation" / "protocol_eval.jsonl"
    ).is_file()
