"""``lightning predict`` writes a data set's latents in LightningDiT's ImgLatentDataset layout.

Every run goes through the real CLI on a real one-step checkpoint of ``experiments/ae.yaml`` (shrunk) and
a folder of 20 PNGs in two classes; shards of 8 samples, batches of 4 (so 3 shards: 8, 8 and 4 samples).
Expected values are computed here from the checkpoint and the images, not by the writer's code.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from two_rank_run import launcher_free_env

from vtp_lightning.cli import main
from vtp_lightning.tokenizer import AETokenizer

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
SCRIPT = Path(__file__).resolve().parent / "predict_script.py"
NUM_IMAGES, SHARD, BATCH = 20, 8, 4
SHARD_NAMES = [
    "latents_shard00000.safetensors",
    "latents_shard00001.safetensors",
    "latents_shard00002.safetensors",
]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 random RGB pictures, 10 per class folder, not square (the view takes the centre square)."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for i in range(NUM_IMAGES):
        folder = root / ("cat" if i < NUM_IMAGES // 2 else "dog")
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 26, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return root


def predict_args(
    checkpoint: Path, pictures: Path, out: Path, shrunk_cli_args: Any, dtype: str = "fp32"
) -> list[str]:
    """``lightning predict`` of the shrunk ae config from ``checkpoint``, writing to ``out``."""
    args = shrunk_cli_args(EXPERIMENTS / "ae.yaml", out.parent / f"{out.name}_logs")
    args[0] = "predict"
    source = {"class_path": "vtp_lightning.data.ImageFolder", "init_args": {"root": str(pictures)}}
    return args + [
        "--config",
        str(EXPERIMENTS / "predict" / "latents.yaml"),
        "--trainer.callbacks.init_args.output_dir",
        str(out),
        "--trainer.callbacks.init_args.shard_size",
        str(SHARD),
        "--trainer.callbacks.init_args.dtype",
        dtype,
        "--data.batch_size",
        str(BATCH),
        "--data.predict",
        json.dumps(source),
        "--ckpt_path",
        str(checkpoint),
    ]


@pytest.fixture(scope="module")
def run_args(
    ae_checkpoint: Path, image_folder: Path, shrunk_cli_args: Any, tmp_path_factory: pytest.TempPathFactory
):
    base = tmp_path_factory.mktemp("latents")
    return lambda name, dtype="fp32": predict_args(
        ae_checkpoint, image_folder, base / name, shrunk_cli_args, dtype
    )


@pytest.fixture(scope="module")
def encoded(run_args: Any) -> Path:
    """One uninterrupted fp32 run."""
    args = run_args("fp32")
    assert main(args) == 0
    return Path(args[args.index("--trainer.callbacks.init_args.output_dir") + 1])


@pytest.fixture(scope="module")
def module(ae_checkpoint: Path) -> AETokenizer:
    return AETokenizer.load_from_checkpoint(ae_checkpoint).eval()


@pytest.fixture(scope="module")
def images(image_folder: Path) -> torch.Tensor:
    """The 20 pictures as the model sees them: centre square, 16 px, [-1, 1], in folder order."""
    files = sorted(image_folder.glob("*/*.png"))
    out = []
    for path in files:
        picture = Image.open(path).convert("RGB")
        w, h = picture.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        square = np.asarray(picture.resize((16, 16), Image.Resampling.BICUBIC, box=box), dtype=np.float32)
        # uint8 * float32(1/255), then (x - 0.5) / 0.5: the pipeline's rounding, so equality can be exact
        out.append((torch.from_numpy(square * np.float32(1 / 255)).permute(2, 0, 1) - 0.5) / 0.5)
    return torch.stack(out)


def shard_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every shard's tensors, concatenated in file-name order."""
    shards = [load_file(str(folder / name)) for name in SHARD_NAMES]
    return {key: torch.cat([s[key] for s in shards]) for key in ("latents", "latents_flip", "labels")}


def test_the_folder_has_lightningdit_layout_and_what_its_reader_needs(encoded: Path) -> None:
    """What LightningDiT's ImgLatentDataset reads (checked against its code outside this repository): the
    folder's ``*.safetensors`` in name order, each sample count from the ``labels`` slice's shape, one row
    sliced from ``latents`` or ``latents_flip`` and from ``labels``, and ``latents_stats.pt`` loaded with
    ``torch.load`` holding ``mean`` and ``std`` that broadcast over a (1, C, H, W) row."""
    assert sorted(p.name for p in encoded.iterdir()) == sorted(
        [*SHARD_NAMES, "latents_stats.pt", "encode.json"]
    )
    for name, rows in zip(SHARD_NAMES, (8, 8, 4)):
        with safe_open(str(encoded / name), framework="pt", device="cpu") as f:
            assert set(f.keys()) == {"latents", "latents_flip", "labels"}
            assert f.get_slice("labels").get_shape() == [rows]  # the reader counts samples from this
            assert f.get_slice("latents").get_shape() == [rows, 16, 4, 4]  # (N, C, H, W): f4, d16
            assert f.get_slice("latents_flip").get_shape() == [rows, 16, 4, 4]
            assert f.get_slice("latents")[1:2].dtype == torch.float32  # the reader slices one row
            assert f.get_slice("labels")[0:1].dtype == torch.int64
    stats = torch.load(encoded / "latents_stats.pt", weights_only=True)  # a plain torch.load reads it
    assert stats["mean"].shape == stats["std"].shape == (1, 16, 1, 1)
    assert stats["mean"].dtype == stats["std"].dtype == torch.float32
    record = json.loads((encoded / "encode.json").read_text())
    assert record["num_samples"] == NUM_IMAGES and record["image_size"] == 16 and record["dtype"] == "fp32"
    assert record["tokenizer"] == "vtp_lightning.tokenizer.AETokenizer"
    assert len(record["weights_sha256"]) == 64 and record["source"].startswith("ImageFolder(")
    assert record["latent_shape"] == [16, 4, 4]


def test_labels_are_the_class_folders_in_source_order(encoded: Path) -> None:
    assert shard_tensors(encoded)["labels"].tolist() == [0] * 10 + [1] * 10


def test_decoding_the_written_latents_reproduces_the_modules_reconstruction(
    encoded: Path, module: AETokenizer, images: torch.Tensor
) -> None:
    written = shard_tensors(encoded)["latents"]
    with torch.no_grad():
        for start in range(0, NUM_IMAGES, BATCH):  # the batches the run encoded
            batch = images[start : start + BATCH]
            expected = module.decode(module.encode(batch))
            assert torch.equal(module.decode(written[start : start + BATCH]), expected)


def test_latents_flip_is_the_encoding_of_the_mirrored_image(
    encoded: Path, module: AETokenizer, images: torch.Tensor
) -> None:
    written = shard_tensors(encoded)["latents_flip"]
    with torch.no_grad():
        for start in range(0, NUM_IMAGES, BATCH):
            mirrored = torch.flip(images[start : start + BATCH], dims=[3])  # left-right
            assert torch.equal(written[start : start + BATCH], module.encode(mirrored))


def test_statistics_are_a_float64_computation_over_all_latents(encoded: Path) -> None:
    latents = shard_tensors(encoded)["latents"].double()
    assert latents.shape[0] == NUM_IMAGES
    mean = latents.mean(dim=(0, 2, 3), keepdim=True)
    std = latents.std(dim=(0, 2, 3), keepdim=True)  # unbiased, as LightningDiT computes it
    stats = torch.load(encoded / "latents_stats.pt", weights_only=True)
    torch.testing.assert_close(stats["mean_float64"], mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(stats["std_float64"], std, rtol=1e-12, atol=0)
    # the float32 copies are those values rounded once
    torch.testing.assert_close(stats["mean"].double(), mean, rtol=2**-24, atol=1e-30)
    torch.testing.assert_close(stats["std"].double(), std, rtol=2**-24, atol=0)


def test_from_latents_normalises_as_lightningdit_does(encoded: Path) -> None:
    from vtp_lightning.latents import from_latents

    dataset = from_latents(encoded)
    latents = shard_tensors(encoded)["latents"]
    stats = torch.load(encoded / "latents_stats.pt", weights_only=True)
    assert len(dataset) == NUM_IMAGES
    for index in (0, 9, 19):
        latent, label = dataset[index]
        expected = ((latents[index : index + 1] - stats["mean"]) / stats["std"]).squeeze(0)
        assert torch.equal(latent, expected)
        assert int(label) == (0 if index < 10 else 1)
    normalised = torch.stack([dataset[i][0] for i in range(NUM_IMAGES)]).double()
    assert normalised.mean(dim=(0, 2, 3)).abs().max() < 1e-5  # zero mean, unit std per channel
    assert (normalised.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-5


def test_bf16_halves_the_disk_and_stores_the_rounded_latents(encoded: Path, run_args: Any) -> None:
    args = run_args("bf16", dtype="bf16")
    assert main(args) == 0
    folder = Path(args[args.index("--trainer.callbacks.init_args.output_dir") + 1])
    half, full = shard_tensors(folder), shard_tensors(encoded)
    assert half["latents"].dtype == torch.bfloat16
    assert torch.equal(half["latents"], full["latents"].to(torch.bfloat16))
    assert torch.equal(half["latents_flip"], full["latents_flip"].to(torch.bfloat16))
    latent_bytes = lambda t: t.numel() * t.element_size()  # noqa: E731
    assert latent_bytes(half["latents"]) * 2 == latent_bytes(full["latents"])
    stats = torch.load(folder / "latents_stats.pt", weights_only=True)  # of the values a generator reads
    torch.testing.assert_close(
        stats["mean_float64"],
        half["latents"].double().mean(dim=(0, 2, 3), keepdim=True),
        rtol=1e-12,
        atol=1e-14,
    )


def _subprocess_env() -> dict[str, str]:
    return launcher_free_env(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


@pytest.mark.timeout(400)
def test_a_kill_midway_and_a_rerun_give_the_files_of_an_uninterrupted_run(
    encoded: Path, run_args: Any
) -> None:
    args = run_args("killed")
    folder = Path(args[args.index("--trainer.callbacks.init_args.output_dir") + 1])
    # killed after 3 of 5 batches: shard 0 is whole, shard 1 half encoded
    killed = subprocess.run(
        [sys.executable, str(SCRIPT), json.dumps(args), "3"],
        env=_subprocess_env(),
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
    assert sorted(p.name for p in folder.glob("*.safetensors")) == SHARD_NAMES[:1]
    first_shard = (folder / SHARD_NAMES[0]).stat()

    assert main(args) == 0  # the same command again
    assert (folder / SHARD_NAMES[0]).stat().st_mtime_ns == first_shard.st_mtime_ns  # kept, not redone
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in encoded.iterdir())
    for name in [*SHARD_NAMES, "latents_stats.pt", "encode.json"]:
        assert (folder / name).read_bytes() == (encoded / name).read_bytes(), name


@pytest.mark.distributed
@pytest.mark.timeout(400)
def test_two_processes_write_every_index_exactly_once(encoded: Path, run_args: Any) -> None:
    args = run_args("ddp") + ["--trainer.strategy", "ddp", "--trainer.devices", "2"]
    folder = Path(args[args.index("--trainer.callbacks.init_args.output_dir") + 1])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), json.dumps(args)],
        env=_subprocess_env(),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    covered = []
    for name in SHARD_NAMES:
        with safe_open(str(folder / name), framework="pt", device="cpu") as f:
            info = json.loads(f.metadata()["vtp_shard"])
        covered += range(info["first_index"], info["first_index"] + info["count"])
    assert sorted(covered) == list(range(NUM_IMAGES))  # each index once: none twice, none missing
    two, one = shard_tensors(folder), shard_tensors(encoded)
    for key in ("latents", "latents_flip", "labels"):
        assert torch.equal(two[key], one[key]), key  # every sample in its place
    torch.testing.assert_close(
        torch.load(folder / "latents_stats.pt", weights_only=True)["std_float64"],
        torch.load(encoded / "latents_stats.pt", weights_only=True)["std_float64"],
        rtol=0,
        atol=0,
    )


def test_a_bad_data_path_is_one_error_line(
    run_args: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = run_args("bad_path")
    missing = {
        "class_path": "vtp_lightning.data.ImageFolder",
        "init_args": {"root": str(tmp_path / "nowhere")},
    }
    args[args.index("--data.predict") + 1] = json.dumps(missing)
    assert main(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "nowhere" in lines[-1]
    assert not any("Traceback" in line for line in lines)


def test_a_checkpoint_of_another_model_is_one_error_line(
    run_args: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    args = run_args("other_model")
    args[args.index(str(EXPERIMENTS / "ae.yaml"))] = str(EXPERIMENTS / "clip_ae.yaml")
    assert main(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "AETokenizer" in lines[-1]
    assert not any("Traceback" in line for line in lines)


def test_a_folder_of_another_encoding_is_refused(
    encoded: Path, run_args: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    args = run_args("fp32_again", dtype="bf16")
    args[args.index("--trainer.callbacks.init_args.output_dir") + 1] = str(encoded)  # the fp32 folder
    assert main(args) == 2
    assert "holds latents of another encoding" in capsys.readouterr().err


def test_an_exported_directory_writes_the_latents_of_its_checkpoint(
    encoded: Path, ae_checkpoint: Path, run_args: Any, tmp_path: Path
) -> None:
    from vtp_lightning.export import main as export_main

    exported = tmp_path / "exported"
    assert export_main([str(ae_checkpoint), str(exported)]) == 0
    args = run_args("from_export")
    at = args.index("--ckpt_path")
    args[at : at + 2] = [
        "--model.init_args.init_weights",
        str(exported),
    ]  # no checkpoint: the export's weights
    assert main(args) == 0
    folder = Path(args[args.index("--trainer.callbacks.init_args.output_dir") + 1])
    for name in [*SHARD_NAMES, "latents_stats.pt"]:
        assert (folder / name).read_bytes() == (encoded / name).read_bytes(), name
    assert json.loads((folder / "encode.json").read_text())["weights_from"] == str(exported)


def test_vtp_encode_is_lightning_predict_with_the_writer(encoded: Path, run_args: Any) -> None:
    from vtp_lightning.latents.encode_command import main as vtp_encode

    args = run_args("vtp_encode")[1:]  # the same run without "predict", the predict config and writer options
    out = args[args.index("--trainer.callbacks.init_args.output_dir") + 1]
    for option in (
        "--config",
        "--trainer.callbacks.init_args.output_dir",
        "--trainer.callbacks.init_args.shard_size",
    ):
        at = (
            len(args) - 1 - args[::-1].index(option)
        )  # the last one: the predict config comes after the ae config
        del args[at : at + 2]
    at = args.index("--trainer.callbacks.init_args.dtype")
    del args[at : at + 2]
    assert vtp_encode([out, "--shard_size", str(SHARD), *args]) == 0
    for name in [*SHARD_NAMES, "latents_stats.pt", "encode.json"]:
        assert (Path(out) / name).read_bytes() == (encoded / name).read_bytes(), name
