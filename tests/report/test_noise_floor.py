"""The noise floor: a metric's variance split into tokenizer training and evaluation protocol by a
balanced one-way random-effects ANOVA, on synthetic rows and runs trees (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from synthetic_runs import write_cell

from vtp_lightning.errors import DataError
from vtp_lightning.report.noise import main, noise_rows, split_variance


def test_a_hand_computed_split() -> None:
    # group means 2 and 6 (grand mean 4): MS_between = 2 * (4 + 4) / 1 = 16; MS_within = 4 / 2 = 2
    split = split_variance([[1.0, 3.0], [5.0, 7.0]])
    assert (split.ms_between, split.ms_within) == (16.0, 2.0)
    assert split.protocol_variance == 2.0
    assert split.tokenizer_variance == (16.0 - 2.0) / 2


def test_the_mean_squares_give_scipys_f_statistic_and_recover_known_components() -> None:
    rng = np.random.default_rng(0)
    tokenizer_sd, protocol_sd = 3.0, 1.0
    values = (rng.normal(0, tokenizer_sd, size=(400, 1)) + rng.normal(0, protocol_sd, size=(400, 4))).tolist()

    split = split_variance(values)

    assert split.ms_between / split.ms_within == pytest.approx(stats.f_oneway(*values).statistic)
    assert np.sqrt(split.tokenizer_variance) == pytest.approx(tokenizer_sd, rel=0.1)
    assert np.sqrt(split.protocol_variance) == pytest.approx(protocol_sd, rel=0.1)


def test_more_spread_within_than_between_leaves_no_tokenizer_variance() -> None:
    split = split_variance([[0.0, 10.0], [1.0, 9.0]])
    assert split.tokenizer_variance == 0.0


def test_unbalanced_or_single_seed_input_is_refused() -> None:
    with pytest.raises(DataError, match="tokenizer seeds"):
        split_variance([[1.0, 2.0]])
    with pytest.raises(DataError):
        split_variance([[1.0, 2.0], [3.0]])


def protocol_row(tokenizer_seed: int, protocol_seed: int, fd: float) -> dict:
    return {
        "checkpoint": f"runs/noise-ae/ae/1x/seed{tokenizer_seed}/checkpoints/last.ckpt",
        "protocol_seed": protocol_seed,
        "dit_steps": 1000,
        "fd": fd,
        "fd_inf": fd - 1,
        "kd": fd / 100,
        "kd_se": 0.01 * (1 + tokenizer_seed),
        "class_agreement": 0.5,
        "dit_loss": 0.4,
    }


def test_the_noise_table_splits_generation_metrics_and_marks_once_evaluated_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fds = {0: [30.0, 32.0, 31.0], 1: [40.0, 41.0, 42.0], 2: [35.0, 36.0, 34.0]}
    rows_file = tmp_path / "protocol_eval.jsonl"
    rows = [protocol_row(t, 100 + p, fd) for t, values in fds.items() for p, fd in enumerate(values)]
    rows_file.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    runs = tmp_path / "noise-ae"
    for seed in fds:
        write_cell(runs, "ae", 1, seed, {"eval/rfd_fmnist": 5.0 + seed, "eval/gfd_fmnist": 99.0})

    table = {row.metric: row for row in noise_rows(rows, runs)}

    expected = split_variance(list(fds.values()))
    assert table["eval/gfd_fmnist"].split == expected  # from the protocol rows, not the training run's 99
    assert table["eval/gkd_fmnist"].own_error == pytest.approx(0.02)  # mean jackknife SE
    assert table["eval/rfd_fmnist"].split.replicates == 1
    assert table["eval/rfd_fmnist"].split.tokenizer_variance == pytest.approx(np.var([5, 6, 7], ddof=1))

    assert main([str(runs), "--protocol-rows", str(rows_file)]) == 0
    text = (runs / "report" / "results.md").read_text()
    assert f"{np.sqrt(expected.tokenizer_variance):.3g}" in text
    assert f"{np.sqrt(expected.protocol_variance):.3g}" in text
    assert "– (evaluated once)" in text
    assert main([str(runs), "--protocol-rows", str(tmp_path / "missing.jsonl")]) == 2
    assert capsys.readouterr().err.startswith("error:")
