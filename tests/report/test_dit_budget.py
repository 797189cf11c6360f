"""The DiT-budget curve from protocol_eval rows: means and t intervals over protocol seeds per tokenizer,
and the paired difference against AE-only (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from vtp_lightning.report.dit_budget import combination_of, curves, main, paired_curves

FD = {  # (combination, DiT steps) -> gFD per protocol seed 0, 1, 2
    ("ae", 250): [60.0, 64.0, 59.0],
    ("ae", 500): [50.0, 53.0, 49.0],
    ("clip_ssl_ae", 250): [61.0, 62.0, 60.0],
    ("clip_ssl_ae", 500): [45.0, 47.5, 44.0],
}


def rows() -> list[dict]:
    return [
        {
            "checkpoint": f"runs/dit-budget/{combination}/1x/seed0/checkpoints/last.ckpt",
            "dit_steps": steps,
            "protocol_seed": seed,
            "fd": fd,
            "class_agreement": 0.1 * (seed + 1),
        }
        for (combination, steps), values in FD.items()
        for seed, fd in enumerate(values)
    ]


def test_the_combination_is_read_from_the_cell_folder() -> None:
    assert combination_of("runs/x/clip_ssl_ae/4x/seed2/checkpoints/last.ckpt") == "clip_ssl_ae"
    assert combination_of("elsewhere/model.ckpt") == "model"


def test_curves_and_paired_differences_agree_with_scipy() -> None:
    values = FD[("ae", 500)]
    low, high = stats.t.interval(0.95, 2, loc=stats.tmean(values), scale=stats.sem(values))
    interval = curves(rows(), "fd")["ae"][500]
    assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))

    differences = [a - b for a, b in zip(FD[("clip_ssl_ae", 500)], FD[("ae", 500)])]
    low, high = stats.t.interval(0.95, 2, loc=stats.tmean(differences), scale=stats.sem(differences))
    paired = paired_curves(rows(), "fd")
    assert sorted(paired) == ["clip_ssl_ae"] and sorted(paired["clip_ssl_ae"]) == [250, 500]
    assert (paired["clip_ssl_ae"][500].low, paired["clip_ssl_ae"][500].high) == (
        pytest.approx(low),
        pytest.approx(high),
    )


def test_the_command_writes_the_figure_and_the_table(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows()) + "\n")
    out = tmp_path / "results"
    assert main([str(path), "--out", str(out)]) == 0
    assert (out / "dit_budget_curve.png").read_bytes()[:4] == b"\x89PNG"
    text = (out / "dit_budget_curve.md").read_text()
    assert "| CLIP+SSL+AE | 500 | 3 |" in text and "| AE-only | 250 | 3 |" in text
    assert main([str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
