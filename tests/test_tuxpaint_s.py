"""``experiments/scale/tuxpaint_s*.yaml``: VTP-S on 256 px Tux Paint shards (``make tuxpaint-s``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from script_module import load_script

from vtp_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
CPU_CONFIG = REPO / "experiments" / "scale" / "tuxpaint_s_cpu.yaml"
SCRIPT = REPO / "scripts" / "make_tuxpaint_shards.py"
CATEGORIES = ["animals", "food", "vehicles"]


def test_the_cpu_config_parses_with_the_stamp_categories(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CPU_CONFIG), "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    train, val = config["data"]["train"]["init_args"], config["data"]["val"]["init_args"]
    assert train["urls"] == "outputs/tuxpaint/train-{000000..000007}.tar"
    assert val["urls"] == "outputs/tuxpaint/val-{000000..000001}.tar"
    assert train["class_names"] == val["class_names"] and "natural forces" in train["class_names"]
    assert len(train["class_names"]) == 16
    assert config["model"]["init_args"]["encoder"] == "S" and config["data"]["image_size"] == 256
    assert config["trainer"]["accelerator"] == "cpu" and config["trainer"]["strategy"] == "auto"
    reconstruction = next(
        c
        for c in config["trainer"]["callbacks"]
        if c["class_path"].endswith("Evaluation") and "feature_extractor" in c.get("init_args", {})
    )
    assert reconstruction["init_args"]["feature_extractor"] is None  # no Fréchet distance at 256 px


@pytest.mark.slow
@pytest.mark.integration
def test_two_steps_of_vtp_s_on_fake_stamp_shards_train_evaluate_and_resume(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    for c, category in enumerate(CATEGORIES):
        for i in range(6):
            path = stamps / category / f"{category}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGBA", (40 + 8 * i, 30), (60 * c, 20 * i, 200, 255)).save(path)
            path.with_suffix(".txt").write_text(f"A {category} number {i}.\nfr.utf8=Un truc.\n")
    shards = tmp_path / "shards"
    load_script(SCRIPT).build(stamps, shards, size=256, val_fraction=0.34, train_shards=2, val_shards=1)
    train = {
        "class_path": "vtp_lightning.data.WebDatasetShards",
        "init_args": {
            "urls": str(shards / "train-{000000..000001}.tar"),
            "samples_per_epoch": 12,
            "class_names": CATEGORIES,
        },
    }
    val = {
        "class_path": "vtp_lightning.data.WebDatasetShards",
        "init_args": {"urls": str(shards / "val-000000.tar"), "class_names": CATEGORIES},
    }
    run = tmp_path / "run"
    common = [
        "--config",
        str(CPU_CONFIG),
        "--trainer.default_root_dir",
        str(run),
        "--trainer.precision",
        "32-true",
    ]
    common += ["--data.train", json.dumps(train), "--data.val", json.dumps(val), "--data.num_workers", "0"]
    assert main(["fit", *common, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    losses = summary["losses"]
    assert {"train/loss_clip", "train/loss_dino", "train/loss_mim", "train/loss_rec"} <= set(losses)
    assert {"eval/probe_cls_top1", "eval/zeroshot_top1", "eval/psnr", "eval/ssim"} <= set(summary["metrics"])
    assert not any(key.startswith(("eval/rfd", "eval/rfid")) for key in summary["metrics"])
    ckpt = run / "checkpoints" / "last.ckpt"
    resumed = ["--trainer.max_steps", "3", "--trainer.val_check_interval", "3", "--ckpt_path", str(ckpt)]
    assert main(["fit", *common, *resumed]) == 0
    assert json.loads((run / "summary.json").read_text())["global_step"] == 3
