"""``vtp-export``: a training checkpoint becomes ``model.safetensors`` + ``config.json`` that
``from_pretrained`` turns back into the exact same encode / decode functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vtp_lightning.cli import main as cli_main
from vtp_lightning.errors import CheckpointError
from vtp_lightning.export import main as export_main
from vtp_lightning.tokenizer import VTPTokenizer
from vtp_lightning.weights.pretrained import from_pretrained

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers"),
]


@pytest.fixture(scope="module")
def vtp_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, shrunk_cli_args: Callable[..., list[str]]
) -> Path:
    """A real one-step checkpoint of the full VTP tokenizer (CLIP + DINO + iBOT + AE)."""
    root = tmp_path_factory.mktemp("vtp_run")
    assert cli_main(shrunk_cli_args(EXPERIMENTS / "clip_ssl_ae.yaml", root, max_steps=1)) == 0
    return root / "checkpoints" / "last.ckpt"


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_exported_tokenizer_reproduces_encode_and_decode_exactly(
    vtp_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    assert export_main([str(vtp_checkpoint), str(out)]) == 0

    trained = VTPTokenizer.load_from_checkpoint(vtp_checkpoint, map_location="cpu").eval()
    exported = from_pretrained(out)
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        latents = trained.encode(images)
        assert torch.equal(exported.encode(images), latents)
        assert torch.equal(exported.decode(latents), trained.decode(latents))
    assert latents.shape == (3, trained.latent_dim, 4, 4)
    assert not exported.training


def test_export_keeps_only_the_encode_decode_path_and_records_its_architecture(
    vtp_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    assert export_main([str(vtp_checkpoint), str(out)]) == 0
    weights = load_file(str(out / "model.safetensors"))
    assert {k.split(".")[0] for k in weights} == {
        "encoder",
        "bottleneck",
        "decoder",
    }  # no teacher, text, heads
    config = json.loads((out / "config.json").read_text())
    assert config["class"] == "vtp_lightning.tokenizer.VTPTokenizer"
    assert config["architecture"]["encoder"]["width"] == 32
    assert config["architecture"]["latent_dim"] == 16


def test_exported_weights_initialise_a_new_training_run(vtp_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    assert export_main([str(vtp_checkpoint), str(out)]) == 0
    trained = VTPTokenizer.load_from_checkpoint(vtp_checkpoint, map_location="cpu")
    fresh = VTPTokenizer(**{k: v for k, v in trained.hparams.items() if not k.startswith("_")})
    assert fresh.load_matching_weights(out) == ["bottleneck", "decoder", "encoder"]
    assert torch.equal(fresh.encoder.cls_token, trained.encoder.cls_token)


def _plain_state_dict(path: Path) -> Path:
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, path)
    return path


def _text_file(path: Path) -> Path:
    path.write_text("not a checkpoint")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_plain_state_dict, "was not written by a vtp-lightning tokenizer"),
        (_text_file, "is not a torch checkpoint: it is plain text"),
        (lambda path: path, "does not exist"),
    ],
    ids=["foreign-torch-checkpoint", "not-a-checkpoint", "missing-file"],
)
def test_exporting_a_file_that_is_not_a_vtp_checkpoint_fails_with_one_clear_message(
    make: Callable[[Path], Path], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make(tmp_path / "model.ckpt")
    out = tmp_path / "exported"
    assert export_main([str(source), str(out)]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith("error: ") and message in line and str(source) in line
    assert not out.exists()


def test_from_pretrained_of_a_directory_that_was_not_exported_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="vtp-export"):
        from_pretrained(tmp_path)
