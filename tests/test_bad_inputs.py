"""Each bad file a user may hand the suite gives one ``error:`` line that names it, not a traceback;
with ``skip_corrupt`` unreadable images are skipped, counted over the whole run and named."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from vtp_lightning.cli import main as cli_main
from vtp_lightning.data import WebDatasetShards
from vtp_lightning.data.datasets import StreamingTrainItems, Unreadable
from vtp_lightning.data.sources.caption_file import CaptionFile
from vtp_lightning.errors import CheckpointError, ConfigError, DataError
from vtp_lightning.export import main as export_main
from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.models.vit import ViTConfig
from vtp_lightning.option_checks import check_data_options, check_model_options
from vtp_lightning.tokenizer import VTPTokenizer
from vtp_lightning.weights.pretrained import from_pretrained

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
AE_CONFIG = EXPERIMENTS / "ae.yaml"

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers")


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    stderr = capsys.readouterr().err
    (error,) = _error_lines(stderr)
    assert "Traceback" not in stderr
    return error


# ----------------------------------------------------------------------------- trainer settings
@pytest.mark.parametrize(
    ("setting", "named"),
    [("nonsense", "invalid strategy name"), ("fsdp", "requires a GPU accelerator")],
)
def test_a_trainer_setting_lightning_refuses_is_one_error_line(
    setting: str,
    named: str,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    assert cli_main(shrunk_cli_args(AE_CONFIG, run, **{"trainer.strategy": setting})) == 2
    error = _one_error(capsys)
    assert "trainer" in error and named in error and setting in error.lower()
    assert not (run / "checkpoints").exists()


# ------------------------------------------------------------------------------- caption files
@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_caption_file_with_non_utf8_bytes_names_the_file_and_line(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"captions.{kind}"
    good = '{"image": "a.png", "caption": "a cat"}\n' if kind == "jsonl" else "image,caption\na.png,a cat\n"
    bad = '{"image": "b.png", "caption": "caf\xe9"}\n' if kind == "jsonl" else "b.png,caf\xe9\n"
    path.write_bytes(good.encode() + bad.encode("latin-1"))  # é as one latin-1 byte, 0xe9
    line = 2 if kind == "jsonl" else 3
    with pytest.raises(DataError, match=rf"captions\.{kind}, line {line}: byte 0xe9 .* not UTF-8"):
        CaptionFile(path)


@pytest.mark.integration
def test_through_the_cli_a_non_utf8_caption_file_is_one_error_line(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "captions.jsonl"
    path.write_bytes(b'{"image": "a.png", "caption": "caf\xe9"}\n')
    train = json.dumps({"class_path": "vtp_lightning.data.CaptionFile", "init_args": {"path": str(path)}})
    assert cli_main(shrunk_cli_args(AE_CONFIG, tmp_path / "run", **{"data.train": train})) == 2
    assert f"{path}, line 1" in _one_error(capsys)


# ------------------------------------------------------------------------ images in a folder
def _image_folder(root: Path, good: int, corrupt: int, oversized: int) -> list[str]:
    """``root/cls`` with readable 8x8 PNGs, files that are not images, and 64x64 PNGs; returns the
    names of the unreadable ones."""
    folder = root / "cls"
    folder.mkdir(parents=True)
    bad = []
    for i in range(good):
        Image.new("RGB", (8, 8), (i, 2 * i, 3 * i)).save(folder / f"good{i:02d}.png")
    for i in range(corrupt):
        (folder / f"corrupt{i}.png").write_bytes(b"not a png at all")
        bad.append(str(folder / f"corrupt{i}.png"))
    for i in range(oversized):
        Image.new("RGB", (64, 64)).save(folder / f"huge{i}.png")
        bad.append(str(folder / f"huge{i}.png"))
    return bad


def _folder_source(root: Path) -> str:
    return json.dumps({"class_path": "vtp_lightning.data.ImageFolder", "init_args": {"root": str(root)}})


@pytest.mark.integration
def test_a_decompression_bomb_is_one_error_line_naming_the_file(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _image_folder(tmp_path / "images", good=0, corrupt=0, oversized=8)
    options = {"data.train": _folder_source(tmp_path / "images"), "data.max_image_pixels": 1000}
    assert cli_main(shrunk_cli_args(AE_CONFIG, tmp_path / "run", **options)) == 2
    error = _one_error(capsys)
    assert "huge" in error and "skip_corrupt" in error
    # the image's own size and the one limit the user set (PIL's message cited twice the limit)
    assert "64x64 = 4096 pixels, more than the 1000-pixel limit" in error
    assert re.findall(r"\d+(?=-pixel| pixels)", error) == ["4096", "1000"]


@pytest.mark.integration
def test_skipped_samples_are_summed_over_every_step_and_named_at_the_end(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # 16 files, batch 8: 2 batches an epoch, so 4 steps read every file exactly twice
    bad = _image_folder(tmp_path / "images", good=12, corrupt=3, oversized=1)
    options = {
        "data.train": _folder_source(tmp_path / "images"),
        "data.max_image_pixels": 1000,
        "data.skip_corrupt": True,
        "trainer.log_every_n_steps": 3,  # the count must not depend on which steps are logged
    }
    assert cli_main(shrunk_cli_args(AE_CONFIG, tmp_path / "run", max_steps=4, **options)) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped_samples"] == 2 * len(bad) == 8
    assert sorted(summary["skipped_files"]) == sorted(bad)  # each file once, though read twice
    printed = capsys.readouterr().out
    assert "skipped 8 unreadable samples" in printed and Path(summary["skipped_files"][0]).name in printed
    assert _logged_skips(tmp_path / "run" / "metrics.csv") == 8


def _logged_skips(metrics_csv: Path) -> float:
    """The last running total of skipped samples in a run's ``metrics.csv``."""
    with metrics_csv.open() as f:
        totals = [
            float(row["train/skipped_samples_total"])
            for row in csv.DictReader(f)
            if row.get("train/skipped_samples_total")
        ]
    return totals[-1]


@pytest.mark.integration
def test_without_the_summary_callback_every_skip_still_reaches_metrics_csv(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]]
) -> None:
    # 16 files, batch 8: 4 steps read each of the 4 unreadable files twice; only every 3rd step is
    # logged, and no TrainingSummary runs
    bad = _image_folder(tmp_path / "images", good=12, corrupt=4, oversized=0)
    options = {
        "data.train": _folder_source(tmp_path / "images"),
        "data.skip_corrupt": True,
        "trainer.log_every_n_steps": 3,
        "trainer.callbacks": "null",
    }
    assert cli_main(shrunk_cli_args(AE_CONFIG, tmp_path / "run", max_steps=4, **options)) == 0
    assert not (tmp_path / "run" / "summary.json").exists()
    assert _logged_skips(tmp_path / "run" / "metrics.csv") == 2 * len(bad) == 8


# ------------------------------------------------------------------------------ vtp-export
@pytest.mark.integration
def test_vtp_export_of_a_checkpoint_without_state_dict_is_one_error(
    ae_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = torch.load(ae_checkpoint, map_location="cpu", weights_only=True)
    del state["state_dict"]
    stripped = tmp_path / "stripped.ckpt"
    torch.save(state, stripped)
    assert export_main([str(stripped), str(tmp_path / "out")]) == 2
    error = _one_error(capsys)
    assert str(stripped) in error and "state_dict" in error


@pytest.mark.integration
def test_vtp_export_into_a_path_that_is_a_file_is_one_error(
    ae_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    occupied = tmp_path / "exported"
    occupied.write_text("a file, not a folder")
    assert export_main([str(ae_checkpoint), str(occupied)]) == 2
    error = _one_error(capsys)
    assert str(occupied) in error and "is a file" in error
    assert occupied.read_text() == "a file, not a folder"


# ---------------------------------------------------------------------------- from_pretrained
@pytest.fixture
def exported(ae_checkpoint: Path, tmp_path: Path) -> Path:
    out = tmp_path / "exported"
    assert export_main([str(ae_checkpoint), str(out)]) == 0
    return out


@pytest.mark.integration
def test_from_pretrained_on_a_truncated_model_safetensors_names_the_file(exported: Path) -> None:
    weights = exported / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated or not a safetensors file"):
        from_pretrained(exported)


@pytest.mark.integration
@pytest.mark.parametrize("broken", ["{not json", '{"no_architecture": 1}'], ids=["syntax", "missing-key"])
def test_from_pretrained_on_a_broken_config_json_names_the_file(broken: str, exported: Path) -> None:
    (exported / "config.json").write_text(broken)
    with pytest.raises(CheckpointError, match=r"config\.json is not a valid export config"):
        from_pretrained(exported)


def test_from_pretrained_refuses_weights_of_another_shape(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"architecture": {"encoder": {"width": 32, "depth": 1, "heads": 2}, "latent_dim": 8}})
    )
    save_file({"encoder.cls_token": torch.zeros(1, 1, 16)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError):
        from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("with_base", [False, True], ids=["plain-config", "config-with-base"])
def test_a_yaml_syntax_error_is_one_line_naming_the_file_line_and_column(
    with_base: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.yaml"
    base = f"__base__: {AE_CONFIG}\n" if with_base else ""
    bad.write_text(f"{base}model:\n  init_args:\n    lr: [0.1, 0.2\n")
    assert cli_main(["fit", "--config", str(bad)]) == 2
    error = _one_error(capsys)
    assert f"{bad}, line {5 if with_base else 4}, column 1: YAML syntax error" in error


def test_merged_configs_leave_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"__base__: {AE_CONFIG}\nmodel:\n  init_args:\n    rec_wieght: 0.2\n")
    with pytest.raises(SystemExit):  # jsonargparse's own error for the unknown key, after the merge
        cli_main(["fit", "--config", str(typo)])
    assert list(tmpdir.iterdir()) == []


@pytest.mark.integration
def test_after_a_progress_bar_the_error_starts_on_a_fresh_line(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = shrunk_cli_args(
        AE_CONFIG,
        tmp_path,
        max_steps=4,
        **{"model.init_args.lr": 1e30, "model.init_args.warmup_fraction": 0.0},
    )
    args += ["--trainer.enable_progress_bar", "true"]
    assert cli_main(args) == 2
    stderr = capsys.readouterr().err
    assert "\nerror: training diverged" in stderr


def test_encoding_an_image_whose_size_is_not_a_multiple_of_the_patch_is_refused() -> None:
    model = VTPAutoencoder(ViTConfig(width=32, depth=1, heads=2, patch_size=4, image_size=32), 8)
    assert model.encode(torch.zeros(1, 3, 32, 32)).shape == (1, 8, 8, 8)
    with pytest.raises(ConfigError, match=r"\(1, 3, 30, 30\).*multiples of the patch size 4"):
        model.encode(torch.zeros(1, 3, 30, 30))  # the patch grid would silently drop 2 rows and columns


# ------------------------------------------------------------------------------ option values
@pytest.mark.integration
@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        ("data.patch_size", "0", "must be an integer >= 1, got 0"),  # was a ZeroDivisionError
        ("model.init_args.lr", "-1", "must be a number > 0, got -1.0"),  # was the optimiser's ValueError
        (
            "model.init_args.latent_dim",
            "0",
            "must be an integer >= 1, got 0",
        ),  # was a RuntimeError in forward
        ("data.image_size", "18", "(18) must be a multiple of data.patch_size (4)"),
    ],
)
def test_an_option_value_out_of_range_is_one_error_line_naming_the_option_and_its_range(
    option: str,
    value: str,
    accepted: str,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    assert cli_main(shrunk_cli_args(AE_CONFIG, run, **{option: value})) == 2
    assert _one_error(capsys) == f"error: {option} {accepted}"
    assert not run.exists()  # refused before anything was built or written


def test_the_option_table_refuses_what_each_option_cannot_hold() -> None:
    # the tiny encoder preset is 192 wide with 3 heads; the pixel decoder takes the encoder's shape
    cases = {
        "model.init_args.encoder_width (32) must be divisible by model.init_args.encoder_heads (3)": dict(
            encoder_width=32, encoder_heads=3
        ),
        # 36 / 2 = 18 is a whole head width, but not a multiple of 4 as the 2-D RoPE needs
        "model.init_args.encoder_width / model.init_args.encoder_heads (36 / 2 = 18) must be a multiple of 4": dict(
            encoder_width=36, encoder_heads=2
        ),
        "model.init_args.encoder_width (192) must be divisible by model.init_args.rec_decoder_heads (5)": dict(
            rec_decoder_heads=5
        ),
        "each value of model.init_args.betas must be a number in [0, 1), got [0.9, 1.0]": dict(
            betas=(0.9, 1.0)
        ),
        "model.init_args.ssl_teacher_temp must be a number > 0, got 0.0": dict(ssl_teacher_temp=0.0),
        "model.init_args.clip_text_width (16) must be divisible by model.init_args.clip_text_heads (3)": dict(
            clip_text_width=16, clip_text_heads=3
        ),
    }
    for message, options in cases.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_model_options(VTPTokenizer, options)
    check_model_options(
        VTPTokenizer, dict(encoder_width=32, encoder_heads=2, clip_text_width=16, clip_text_heads=2)
    )

    data = {
        "data.ssl_batch_size (9) must be at most data.batch_size (8)": dict(batch_size=8, ssl_batch_size=9),
        "data.local_crop_size (6) must be a multiple of data.patch_size (4)": dict(
            patch_size=4, local_crop_size=6
        ),
        "data.mask_ratio must be two values [low, high] with low <= high, got [0.5, 0.1]": dict(
            mask_ratio=(0.5, 0.1)
        ),
        "each value of data.background must be an integer in [0, 255], got [0, 0, 256]": dict(
            background=(0, 0, 256)
        ),
        "data.batch_size must be an integer >= 1, got 0": dict(batch_size=0),
    }
    for message, options in data.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_data_options(options)


# ------------------------------------------------------------------------------ output folder
@pytest.mark.integration
@pytest.mark.parametrize("where", ["under-a-file", "procfs", "read-only"])
def test_an_output_folder_that_cannot_be_written_is_one_error_before_training(
    where: str, tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    if where == "under-a-file":
        (tmp_path / "a-file").write_text("not a folder")
        root = tmp_path / "a-file" / "run"
    elif where == "procfs":
        root = Path("/proc/vtp-run")  # the kernel's file system refuses new folders, even to root
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "locked").mkdir(mode=0o555)
        root = tmp_path / "locked" / "run"
    assert cli_main(shrunk_cli_args(AE_CONFIG, root)) == 2
    error = _one_error(capsys)
    assert error.startswith(f"error: trainer.default_root_dir {root} cannot be")
    assert not (tmp_path / "a-file").is_dir() and not root.exists()


# --------------------------------------------------------------------------- WebDataset captions
def _tar(path: Path, samples: dict[str, dict[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for key, files in samples.items():
            for suffix, data in files.items():
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_non_utf8_webdataset_caption_is_refused_like_a_caption_file_or_skipped(tmp_path: Path) -> None:
    latin1 = "caf\xe9".encode("latin-1")  # é as the single byte 0xe9
    shard = _tar(
        tmp_path / "shard.tar",
        {"good": {"png": _png(), "txt": b"a cat"}, "bad": {"png": _png(), "txt": latin1}},
    )
    good, bad = WebDatasetShards(str(shard)).iter_samples(None, shuffle=False)
    assert good.caption == "a cat"
    assert isinstance(bad, DataError)
    assert f"{shard} sample 'bad' (.txt), line 1: byte 0xe9 at column 4 is not UTF-8 text" in str(bad)
    assert "skip_corrupt" in str(bad)
    # the same bytes in a caption file give the same rule's message
    captions = tmp_path / "captions.csv"
    captions.write_bytes(b"image,caption\na.png," + latin1 + b"\n")  # 0xe9 is the 10th byte of line 2
    with pytest.raises(DataError, match=r"line 2: byte 0xe9 at column 10 is not UTF-8 text"):
        CaptionFile(captions)
    # skip_corrupt drops the sample (counted once), without it training stops with the message
    kept = list(StreamingTrainItems(WebDatasetShards(str(shard)), skip_corrupt=True))
    assert sum(isinstance(item, Unreadable) for item in kept) == 1
    with pytest.raises(DataError, match="byte 0xe9"):
        list(StreamingTrainItems(WebDatasetShards(str(shard)), skip_corrupt=False))


def test_a_tokenizer_built_from_python_checks_its_options_against_the_same_table() -> None:
    # the same values as on the command line, without the CLI: no ZeroDivisionError, no optimiser error
    for options, message in [
        ({"patch_size": 0}, "patch_size must be an integer >= 1, got 0"),
        ({"lr": -1.0}, "lr must be a number > 0, got -1.0"),
        ({"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
        ({"image_size": 30, "patch_size": 4}, "image_size (30) must be a multiple of patch_size (4)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            VTPTokenizer(**options)
