"""The ablation grid: cell naming and listing, run-cell's skip / resume / lock rules, the make targets.

The non-slow tests replace the training command with a tiny script that behaves like
``lightning fit`` on the outside: it reads the same flags, writes ``metrics.csv`` and
``checkpoints/last.ckpt`` into ``--trainer.default_root_dir`` and can be told to fail half-way.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vtp_lightning import grid
from vtp_lightning.errors import ConfigError
from vtp_lightning.grid import (
    COMBINATIONS,
    EXIT_LOCKED,
    Cell,
    cell_status,
    format_budget,
    grid_cells,
    parse_budget,
)
from vtp_lightning.grid_layout import DONE
from vtp_lightning.tokenizer import TOKENIZERS

REPO = Path(__file__).resolve().parents[1]

FAKE_FIT = """
import json, os, pathlib, sys
args = sys.argv[1:]
flag = lambda name: args[args.index(name) + 1] if name in args else None
root = pathlib.Path(flag("--trainer.default_root_dir"))
steps = int(flag("--trainer.max_steps"))
with open(os.environ["FAKE_FIT_CALLS"], "a") as calls:
    calls.write(json.dumps(args) + "\\n")
print("fake fit", steps, "steps")
(root / "checkpoints").mkdir(parents=True, exist_ok=True)
(root / "checkpoints" / "last.ckpt").write_text("weights")
rows = ["step,compute/flops,eval/gfd_fmnist"]
rows += [f"{s},{100 * (s + 1)}," for s in range(steps)] + [f"{steps - 1},,{50 / steps}"]
(root / "metrics.csv").write_text("\\n".join(rows) + "\\n")
sys.exit(3 if os.environ.get("FAKE_FIT_FAIL") else 0)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configs (with a ``__base__`` chain setting 1x = 4 steps), the fake trainer and a calls log."""
    configs = tmp_path / "experiments"
    configs.mkdir()
    (configs / "_base.yaml").write_text("trainer:\n  max_steps: 4\n  default_root_dir: outputs\n")
    for combination in COMBINATIONS:
        (configs / f"{combination}.yaml").write_text(f"__base__: _base.yaml\nmodel:\n  name: {combination}\n")
    (tmp_path / "fake_fit.py").write_text(FAKE_FIT)
    monkeypatch.setenv("FAKE_FIT_CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("FAKE_FIT_FAIL", raising=False)
    return tmp_path


def run_cell(project: Path, combination: str, budget: str, seed: int, *options: str) -> int:
    return grid.main(
        [
            "run-cell",
            combination,
            budget,
            str(seed),
            "--grid",
            "g",
            "--runs-dir",
            str(project / "runs"),
            "--configs-dir",
            str(project / "experiments"),
            "--train-command",
            f"{sys.executable} {project / 'fake_fit.py'}",
            "--no-echo",
            *options,
        ]
    )


def calls(project: Path) -> list[list[str]]:
    path = project / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# -- naming and listing -----------------------------------------------------------------------


def test_cells_are_every_combination_budget_and_seed_in_their_own_folder() -> None:
    cells = grid_cells("pilot", budgets=(1.0, 3.0), seeds=(0, 1))
    assert len(cells) == len(COMBINATIONS) * 2 * 2
    assert [c.name for c in cells[:4]] == ["ae/1x/seed0", "ae/1x/seed1", "ae/3x/seed0", "ae/3x/seed1"]
    assert Cell("pilot", "clip_ssl_ae", 10.0, 2).directory(Path("runs")) == Path(
        "runs/pilot/clip_ssl_ae/10x/seed2"
    )


def test_budget_folders_use_the_shortest_spelling_and_reject_others() -> None:
    assert [format_budget(b) for b in (1.0, 3.0, 10.0, 0.5)] == ["1", "3", "10", "0.5"]
    assert parse_budget("0.5") == 0.5
    for text in ("3.0", "-1", "0", "three"):
        with pytest.raises(ConfigError):
            parse_budget(text)


def test_list_prints_every_cell_with_its_status(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cell(project, "ae", "1", 0) == 0
    interrupted = project / "runs/g/ae/3x/seed0/checkpoints"
    interrupted.mkdir(parents=True)
    (interrupted / "last.ckpt").write_text("weights")
    capsys.readouterr()
    grid.main(["list", "--grid", "g", "--runs-dir", str(project / "runs"), "--budgets", "1", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(COMBINATIONS) * 2
    status = {line.split()[0]: line.split()[1] for line in lines}
    assert status["ae/1x/seed0"] == "done"
    assert status["ae/3x/seed0"] == "interrupted"
    assert status["clip_ssl_ae/3x/seed0"] == "pending"


# -- run-cell ---------------------------------------------------------------------------------


def test_a_cell_trains_budget_times_base_steps_into_its_folder_and_is_marked_done(project: Path) -> None:
    assert run_cell(project, "clip_ae", "3", 1) == 0
    directory = project / "runs/g/clip_ae/3x/seed1"
    (args,) = calls(project)
    assert flag(args, "--config") == str(project / "experiments/clip_ae.yaml")
    assert flag(args, "--trainer.max_steps") == "12"  # 3 x the 4 steps _base.yaml gives as 1x
    assert flag(args, "--seed_everything") == "1"
    assert flag(args, "--trainer.default_root_dir") == str(directory)
    assert "--ckpt_path" not in args

    done = json.loads((directory / "DONE").read_text())
    assert done["exit_code"] == 0 and done["attempts"] == 1 and done["wall_time_s"] >= 0
    assert json.loads((directory / "cell.json").read_text())["max_steps"] == 12
    resolved = yaml.safe_load((directory / "experiment_config.yaml").read_text())
    assert resolved["trainer"]["max_steps"] == 12
    assert resolved["model"]["name"] == "clip_ae"  # the __base__ chain merged under the combination
    assert "fake fit 12 steps" in (directory / "train.log").read_text()


def test_base_steps_can_be_given_instead_of_read_from_the_config(project: Path) -> None:
    assert run_cell(project, "ae", "0.5", 0, "--base-steps", "10") == 0
    assert flag(calls(project)[0], "--trainer.max_steps") == "5"


def test_a_done_cell_is_skipped_on_rerun(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cell(project, "ae", "1", 0) == 0
    done = (project / "runs/g/ae/1x/seed0/DONE").read_text()
    assert run_cell(project, "ae", "1", 0) == 0
    assert len(calls(project)) == 1
    assert "already done" in capsys.readouterr().out
    assert (project / "runs/g/ae/1x/seed0/DONE").read_text() == done


def test_an_interrupted_cell_resumes_from_last_ckpt_and_keeps_the_first_attempts_metrics(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = project / "runs/g/ae/1x/seed0"
    monkeypatch.setenv("FAKE_FIT_FAIL", "1")
    assert run_cell(project, "ae", "1", 0) == 3
    assert not (directory / "DONE").exists()
    assert cell_status(directory) == "interrupted"
    first_metrics = (directory / "metrics.csv").read_text()

    monkeypatch.delenv("FAKE_FIT_FAIL")
    assert run_cell(project, "ae", "1", 0) == 0
    first, second = calls(project)
    assert "--ckpt_path" not in first
    assert flag(second, "--ckpt_path") == str(directory / "checkpoints/last.ckpt")
    assert (directory / "attempts/1/metrics.csv").read_text() == first_metrics
    attempts = [json.loads(line) for line in (directory / "attempts.jsonl").read_text().splitlines()]
    assert [a["exit_code"] for a in attempts] == [3, 0]
    assert json.loads((directory / "DONE").read_text())["attempts"] == 2


def test_a_failed_cell_without_checkpoint_is_reported_failed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FIT_FAIL", "1")
    assert run_cell(project, "ae", "1", 0) == 3
    directory = project / "runs/g/ae/1x/seed0"
    (directory / "checkpoints/last.ckpt").unlink()
    assert cell_status(directory) == "failed"


def test_a_cell_another_process_is_training_is_left_alone(project: Path) -> None:
    directory = project / "runs/g/ae/1x/seed0"
    directory.mkdir(parents=True)
    with (directory / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert cell_status(directory) == "running"
        assert run_cell(project, "ae", "1", 0) == EXIT_LOCKED
    assert calls(project) == []
    assert run_cell(project, "ae", "1", 0) == 0  # the lock died with its holder


def test_extra_arguments_go_last_and_into_the_recorded_config(project: Path) -> None:
    extra = ["--trainer.callbacks", "null", "--data.batch_size=8", "--trainer.plugins+=my.Plugin"]
    assert run_cell(project, "ae", "1", 0, "--extra", *extra) == 0
    (args,) = calls(project)
    assert args[-4:] == extra
    directory = project / "runs/g/ae/1x/seed0"
    resolved = yaml.safe_load((directory / "experiment_config.yaml").read_text())
    assert resolved["trainer"]["callbacks"] is None and resolved["data"]["batch_size"] == 8
    assert "plugins" not in resolved["trainer"]  # appends are only recorded in cell.json
    assert json.loads((directory / "cell.json").read_text())["extra"] == extra


def test_an_unknown_combination_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cell(project, "rec_only", "1", 0) == 2
    assert "no config for combination 'rec_only'" in capsys.readouterr().err


# -- make targets -----------------------------------------------------------------------------


def make_dry_run(*args: str) -> list[str]:
    """The run-cell commands ``make -n`` would execute."""
    result = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if "vtp_lightning.grid run-cell" in line]


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_dry_run_lists_every_cell_of_the_grid(tmp_path: Path) -> None:
    lines = make_dry_run("grid", "GRID=x", "BUDGETS=1 3", "SEEDS=0", f"RUNS_DIR={tmp_path}")
    assert len(lines) == 16 == len(set(lines))
    cells = {tuple(re.search(r"run-cell (\S+) (\S+) (\S+)", line).groups()) for line in lines}
    assert cells == {(c, b, "0") for c in COMBINATIONS for b in ("1", "3")}
    assert all(f"--grid x --runs-dir {tmp_path}" in line for line in lines)


@needs_make
def test_make_skips_done_cells_and_has_a_target_per_combination(tmp_path: Path) -> None:
    done = tmp_path / "x/ae/1x/seed0/DONE"
    assert done == Cell("x", "ae", 1.0, 0).directory(tmp_path) / DONE  # make spells grid_layout's path
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    common = ("GRID=x", "BUDGETS=1 3", "SEEDS=0 1", f"RUNS_DIR={tmp_path}")
    assert len(make_dry_run("grid", *common)) == 8 * 2 * 2 - 1
    assert len(make_dry_run("ae", *common)) == 3
    assert len(make_dry_run("clip_ssl_ae", *common)) == 4


@needs_make
def test_make_help_documents_the_grid_targets() -> None:
    text = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for target in ("grid", "plots", "grid-list", *COMBINATIONS):
        assert re.search(rf"^\s+\S*{re.escape(target)}\s", text, re.MULTILINE), target


@needs_make
def test_the_paper_preset_is_four_combinations_at_two_budgets_4x_apart_with_three_seeds(
    tmp_path: Path,
) -> None:
    lines = make_dry_run("grid", "GRID=paper", f"RUNS_DIR={tmp_path}")
    cells = {tuple(re.search(r"run-cell (\S+) (\S+) (\S+)", line).groups()) for line in lines}
    paper = ("ae", "clip_ae", "ssl_ae", "clip_ssl_ae")
    assert cells == {(c, b, s) for c in paper for b in ("1", "4") for s in ("0", "1", "2")}
    assert len(lines) == 24 and all("--grid paper" in line and "--base-steps 25" in line for line in lines)
    narrowed = make_dry_run("grid", "GRID=paper", "SEEDS=0", f"RUNS_DIR={tmp_path}")
    assert len(narrowed) == 8  # the command line still wins over the preset


@needs_make
def test_the_gpu_preset_adds_its_config_last(tmp_path: Path) -> None:
    lines = make_dry_run("grid", "GRID=gpu", f"RUNS_DIR={tmp_path}")
    assert len(lines) == 24
    assert all(line.rstrip().endswith("--extra --config experiments/presets/gpu.yaml") for line in lines)
    preset = yaml.safe_load((REPO / "experiments/presets/gpu.yaml").read_text())
    assert preset["trainer"]["accelerator"] == "gpu"
    assert "UNTESTED" in (REPO / "experiments/presets/gpu.yaml").read_text()


@needs_make
def test_noise_and_dit_budget_train_their_cells_then_evaluate_and_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "make",
            "-n",
            "noise",
            "COMBO=ssl_ae",
            "NOISE_SEEDS=0 1",
            "PROTOCOL_SEEDS=5 6",
            f"RUNS_DIR={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cells = re.findall(r"run-cell (\S+) (\S+) (\S+) --grid (\S+)", result)
    assert sorted(cells) == [("ssl_ae", "4", "0", "noise-ssl_ae"), ("ssl_ae", "4", "1", "noise-ssl_ae")]
    assert "vtp_lightning.protocol_eval --config experiments/ssl_ae.yaml --seeds 5 6" in result
    assert f"{tmp_path}/noise-ssl_ae/ssl_ae/4x/seed1/checkpoints/last.ckpt" in result
    assert "vtp_lightning.report.noise" in result
    budget = subprocess.run(
        ["make", "-n", "dit-budget", f"RUNS_DIR={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(re.findall(r"run-cell (\S+) ", budget)) == ["ae", "clip_ssl_ae"]
    assert "--dit-steps 200 400 600 1000" in budget and "vtp_lightning.report.dit_budget" in budget


def test_grid_mk_the_runner_and_the_tokenizers_share_one_list_of_combinations() -> None:
    listed = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", "-", "show"],
        input="show:\n\t@echo $(COMBINATIONS)\n",
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tuple(listed) == COMBINATIONS == tuple(TOKENIZERS)
    assert all((REPO / "experiments" / f"{name}.yaml").is_file() for name in listed)


# -- end to end -------------------------------------------------------------------------------


# The configs' own callbacks with evaluation sets shrunk so a micro grid runs in minutes on a CPU.
# Only the test shrinks them: a real grid keeps the configs' fixed protocol in every cell.
MICRO_CALLBACKS = [
    {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"save_last": True, "save_top_k": 0},
    },
    {"class_path": "callbacks.compute.ComputeAccounting"},
    {"class_path": "callbacks.ReconstructionEvaluation", "init_args": {"num_images": 64, "grid_images": 4}},
    {
        "class_path": "callbacks.LinearProbeEvaluation",
        "init_args": {"train_images": 128, "eval_images": 64, "steps": 20},
    },
    {"class_path": "callbacks.ZeroShotEvaluation", "init_args": {"eval_images": 64}},
    {
        "class_path": "callbacks.GenerationEvaluation",
        "init_args": {
            "train_images": 128,
            "reference_images": 64,
            "grid_images": 4,
            "protocol": {"train_steps": 5, "batch_size": 32, "sampling_steps": 2, "num_samples": 64},
        },
    },
]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_micro_grid_trains_skips_on_rerun_and_reports(tmp_path: Path) -> None:
    """2 combinations x 2 budgets with the real trainer, a few steps each, then vtp-report."""
    if not (REPO / "experiments/ae.yaml").exists():
        pytest.skip("experiments/ae.yaml is not there yet")
    runs = tmp_path / "runs"
    extra = ["--trainer.log_every_n_steps", "1", "--trainer.accelerator", "cpu", "--data.num_workers", "0"]
    extra += ["--trainer.callbacks", json.dumps(MICRO_CALLBACKS)]

    def run(combination: str, budget: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "vtp_lightning.grid", "run-cell", combination, budget, "0"]
        command += [
            "--grid",
            "micro",
            "--runs-dir",
            str(runs),
            "--base-steps",
            "2",
            "--no-echo",
            "--extra",
            *extra,
        ]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True)

    for combination in ("ae", "clip_ae"):
        for budget in ("1", "2"):
            result = run(combination, budget)
            directory = runs / "micro" / combination / f"{budget}x" / "seed0"
            log = (directory / "train.log").read_text(errors="replace")[-3000:] if directory.exists() else ""
            assert result.returncode == 0, result.stdout + result.stderr + log
            for name in ("DONE", "metrics.csv", "config.yaml", "cell.json", "checkpoints/last.ckpt"):
                assert (directory / name).is_file(), f"{directory}/{name}"

    done = (runs / "micro/ae/1x/seed0/DONE").read_text()
    rerun = run("ae", "1")
    assert rerun.returncode == 0 and "already done" in rerun.stdout
    assert (runs / "micro/ae/1x/seed0/DONE").read_text() == done

    report = subprocess.run(
        [sys.executable, "-m", "vtp_lightning.report.cli", str(runs / "micro")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    out = runs / "micro/report"
    lines = (out / "results.md").read_text().splitlines()
    rows = [line for c in ("ae", "clip_ae") for line in lines if line.startswith(f"| {c} |")]
    assert [row.split(" | ")[1] for row in rows] == ["1x", "2x", "1x", "2x"]
    flops = [float(row.split(" | ")[3]) for row in rows]  # measured: twice the steps, twice the FLOPs
    assert [flops[1] / flops[0], flops[3] / flops[2]] == pytest.approx([2, 2], rel=1e-3)
    figures = {path.stem for path in out.glob("*.png")}
    assert figures == {
        "generation_vs_flops",
        "reconstruction_vs_generation",
        "understanding_vs_generation",
        "bars_at_2x",
        "paired_differences",
    }
