"""The grid's layout, written once: cell folders ``<grid>/<combination>/<budget>x/seed<k>``, their
done state and status, and the names the generation metrics are logged under."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from vtp_lightning.errors import ConfigError
from vtp_lightning.grid_layout import (
    Cell,
    cell_at,
    cell_directories,
    cell_in_path,
    cell_status,
    finished_cells,
    format_budget,
    grid_cells,
    is_done,
    parse_budget,
)
from vtp_lightning.metric_names import GENERATION_FIELDS, generation_metric_names


def test_a_cell_lives_in_grid_combination_budget_seed_with_the_budget_written_shortest() -> None:
    cell = Cell("paper", "clip_ae", 4.0, 2)
    assert cell.name == "clip_ae/4x/seed2"
    assert cell.directory(Path("runs")) == Path("runs/paper/clip_ae/4x/seed2")
    assert Cell("g", "ae", 0.5, 0).name == "ae/0.5x/seed0"
    assert [format_budget(b) for b in (1.0, 3.0, 0.5, 10.0)] == ["1", "3", "0.5", "10"]


def test_budgets_must_be_positive_numbers_in_their_shortest_form() -> None:
    assert parse_budget("0.5") == 0.5
    for bad in ("1.0", "0", "-1", "nan", "x"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_cells_are_listed_combination_major() -> None:
    cells = grid_cells("g", ["ae", "clip_ae"], [1.0, 4.0], [0, 1])
    assert [c.name for c in cells][:4] == ["ae/1x/seed0", "ae/1x/seed1", "ae/4x/seed0", "ae/4x/seed1"]
    assert len(cells) == 8


def test_a_folder_or_a_path_inside_one_names_its_cell() -> None:
    assert cell_at("runs/paper/ae/4x/seed2") == Cell("paper", "ae", 4.0, 2)
    assert cell_at("ae/1x/seed0") == Cell("", "ae", 1.0, 0)
    assert cell_at("runs/paper/ae/4x/seed2/checkpoints") is None
    assert cell_at("runs/paper/ae/four/seed2") is None
    checkpoint = "/abs/runs/dit-budget/clip_ssl_ae/4x/seed0/checkpoints/last.ckpt"
    assert cell_in_path(checkpoint) == Cell("dit-budget", "clip_ssl_ae", 4.0, 0)
    assert cell_in_path("elsewhere/model.ckpt") is None


def make_cell(root: Path, name: str, done: bool = False) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    if done:
        (folder / "DONE").write_text("{}")
    return folder


def test_only_cell_shaped_folders_are_cells_and_done_means_a_done_file(tmp_path: Path) -> None:
    finished = make_cell(tmp_path, "ae/1x/seed0", done=True)
    running = make_cell(tmp_path, "ae/4x/seed0")
    make_cell(tmp_path, "ae/report/seed0")  # not a budget folder
    make_cell(tmp_path, "report/figures")
    (tmp_path / "ae/1x/seed1").parent.mkdir(exist_ok=True)
    (tmp_path / "ae/1x/seed1").write_text("a file, not a cell")

    assert cell_directories(tmp_path) == [finished, running]
    assert finished_cells(tmp_path) == [finished]
    assert is_done(finished) and not is_done(running)


def test_a_cells_status_follows_its_files(tmp_path: Path) -> None:
    cell = make_cell(tmp_path, "ae/1x/seed0")
    assert cell_status(cell) == "pending"
    (cell / "attempts.jsonl").write_text(json.dumps({"exit_code": 1}) + "\n")
    assert cell_status(cell) == "failed"
    (cell / "checkpoints").mkdir()
    (cell / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    assert cell_status(cell) == "interrupted"
    with (cell / ".lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what the runner holds while it trains
        assert cell_status(cell) == "running"
    (cell / "DONE").write_text("{}")
    assert cell_status(cell) == "done"


def test_generation_metrics_are_named_after_the_extractor_and_only_inceptions_are_fid() -> None:
    assert generation_metric_names("fmnist") == {
        "fd": "eval/gfd_fmnist",
        "fd_inf": "eval/gfd_fmnist_inf",
        "kd": "eval/gkd_fmnist",
        "kd_se": "eval/gkd_fmnist_se",
        "class_agreement": "eval/gen_class_agreement",
        "dit_loss": "eval/gen_dit_loss",
    }
    inception = generation_metric_names("inception")
    assert (inception["fd"], inception["fd_inf"], inception["kd"]) == (
        "eval/gfid",
        "eval/gfid_inf",
        "eval/gkid",
    )
    assert set(inception) == set(GENERATION_FIELDS)
