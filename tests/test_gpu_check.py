"""``scripts/gpu_check.py`` (``make gpu-check``): its dry mode runs on the CPU, so the GPU script cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.mark.parametrize(
    ("device_name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),  # SXM
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("Tesla V100-SXM2-16GB", None),  # no bf16 tensor cores: MFU is reported as unknown
    ],
)
def test_bf16_peaks_are_looked_up_by_device_name(device_name: str, tflops: float | None) -> None:
    assert load_script(SCRIPT).bf16_peak_tflops(device_name) == tflops


@pytest.mark.integration
def test_the_dry_run_measures_every_size_and_writes_json_and_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = load_script(SCRIPT)
    monkeypatch.setenv("GPU_CHECK_DRY", "1")
    monkeypatch.setattr(script, "TUXPAINT", tmp_path / "no-shards")  # synthetic JPEGs: no local data needed
    assert script.main(["--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["dry"] is True and report["bf16_peak_tflops"] is None
    assert [row["size"] for row in report["sizes"]] == ["S", "B", "L"]
    for row in report["sizes"]:
        assert row["largest_batch"] == 4 and row["search_stopped"] == "cap 4"  # 1, 2, 4 all fit
        assert row["step_s"] > 0 and row["images_per_s"] == pytest.approx(4 / row["step_s"])
        assert row["tflop_per_step"] > 0 and row["mfu"] is None
    assert report["data"]["images_per_s_per_core"] > 0 and report["data"]["data"].startswith("synthetic")
    for row in report["ddp_vs_fsdp"]:  # "not measured" until the FSDP preset exists, then both CLI fits run
        assert "note" in row or (row["rc"] == 0 and row["peak"] > 0), row
    assert "dry" in report["grid_cell"]["note"] and "run-cell ae" in report["grid_cell"]["command"]
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "DRY RUN" in table
    rows = [line for line in table.splitlines() if line.startswith(("| S |", "| B |", "| L |"))]
    assert len(rows) == 9  # the sizes, compile_blocks and data-workers tables
