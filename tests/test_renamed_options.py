"""Options renamed with their objective's prefix: an old name in a config or on the command line is one
error line naming the new one; a checkpoint saved under the old names still loads, resumes and exports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning
import pytest
import torch
from safetensors.torch import load_file
from tiny_sizes import tiny_options

from vtp_lightning.cli import main
from vtp_lightning.errors import ConfigError
from vtp_lightning.export import main as export_main
from vtp_lightning.objectives import TokenizerModule
from vtp_lightning.renamed_options import (
    RENAMED_OPTIONS,
    declared_options,
    migrate_options,
    refuse_renamed_model_options,
)
from vtp_lightning.tokenizer import TOKENIZERS, AETokenizer, VTPTokenizer
from vtp_lightning.weights.provenance import stamp

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
OLD_NAMES = {new: old for old, new in RENAMED_OPTIONS.items()}

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers")


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def _declared(cls: type) -> set[str]:
    return {name for name, _ in declared_options(cls)}


def _with_old_names(options: dict[str, Any]) -> dict[str, Any]:
    return {OLD_NAMES.get(k, k): v for k, v in options.items()}


# ------------------------------------------------------------------------------------ the table
def test_every_new_name_is_an_option_and_no_tokenizer_declares_an_old_one() -> None:
    every_option = set().union(*(_declared(cls) for cls in TOKENIZERS.values()))
    assert set(RENAMED_OPTIONS.values()) <= every_option
    assert not set(RENAMED_OPTIONS) & every_option
    # every objective option now says which objective it belongs to; the base's stay unprefixed
    base = _declared(TokenizerModule)
    prefixes = ("clip_", "ssl_", "dino_", "koleo_", "mim_", "rec_")
    assert all(name.startswith(prefixes) for name in every_option - base)


def test_migrating_keeps_a_value_already_given_under_the_new_name() -> None:
    migrated = migrate_options({"decoder_depth": 3, "rec_decoder_depth": 1, "lr": 0.1}, AETokenizer)
    assert migrated == {"rec_decoder_depth": 1, "lr": 0.1}


# --------------------------------------------------------------------------- configs and flags
@pytest.mark.parametrize("where", ["config", "command_line"])
def test_an_old_option_name_is_one_error_line_naming_the_new_name(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = EXPERIMENTS / "clip_ae.yaml"
    if where == "config":
        old = tmp_path / "old.yaml"
        old.write_text(f"__base__: {config}\nmodel:\n  init_args:\n    embed_dim: 64\n")
        args = ["fit", "--config", str(old)]
    else:
        args = ["fit", "--config", str(config), "--model.init_args.embed_dim", "64"]
    args += ["--trainer.default_root_dir", str(tmp_path / "run")]
    assert main(args) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    fix = "rename it in your config" if where == "config" else "rename it on the command line"
    assert line == f"error: model option 'embed_dim' was renamed 'clip_embed_dim'; {fix}"
    assert not (tmp_path / "run").exists()


def test_stage_2_keeps_its_own_perceptual_weights_option() -> None:
    stage2 = EXPERIMENTS / "stage2_decoder.yaml"
    refuse_renamed_model_options(
        ["fit", "--config", str(stage2), "--model.init_args.perceptual_weights", "x"]
    )
    with pytest.raises(ConfigError, match="'decoder_depth' was renamed 'rec_decoder_depth'"):
        refuse_renamed_model_options(
            ["fit", "--config", str(EXPERIMENTS / "ae.yaml"), "--model.decoder_depth=2"]
        )


# ----------------------------------------------------------------------------------- checkpoints
TINY_VTP: dict[str, Any] = tiny_options(VTPTokenizer) | {
    "image_size": 16,
    "clip_text_context_length": 8,
    "ssl_teacher_temp": 0.05,  # not the default: the renamed option must carry this value
}


def test_a_checkpoint_saved_under_the_old_option_names_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VTPTokenizer(**TINY_VTP)
    hparams = _with_old_names(dict(model.hparams))
    assert "num_prototypes" in hparams and "ssl_num_prototypes" not in hparams
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": hparams,
        "pytorch-lightning_version": lightning.__version__,
    }
    stamp(checkpoint, model)
    torch.save(checkpoint, tmp_path / "old.ckpt")

    loaded = VTPTokenizer.load_from_checkpoint(tmp_path / "old.ckpt")
    assert dict(loaded.hparams) == dict(model.hparams)
    assert loaded.ssl_options["teacher_temp"] == 0.05
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.integration
def test_a_run_saved_under_the_old_option_names_resumes_exports_and_loads(
    ae_checkpoint: Path,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved = torch.load(ae_checkpoint, map_location="cpu", weights_only=True)
    saved["hyper_parameters"] = _with_old_names(saved["hyper_parameters"])
    assert "decoder_depth" in saved["hyper_parameters"]
    old = tmp_path / "old.ckpt"
    torch.save(saved, old)

    # resume (the config uses the new names; the checkpoint's saved ones are migrated)
    args = shrunk_cli_args(EXPERIMENTS / "ae.yaml", tmp_path / "resumed", max_steps=2, ckpt_path=old)
    assert main(args) == 0, capsys.readouterr().err
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 2
    assert "rec_decoder_depth" in resumed["hyper_parameters"]
    assert "decoder_depth" not in resumed["hyper_parameters"]

    # export, and the CLI-written checkpoint (with its instantiator) through load_from_checkpoint
    assert export_main([str(old), str(tmp_path / "exported")]) == 0
    assert {k.split(".")[0] for k in load_file(str(tmp_path / "exported" / "model.safetensors"))} == {
        "encoder",
        "bottleneck",
        "decoder",
    }
    loaded = AETokenizer.load_from_checkpoint(old)
    assert loaded.hparams["rec_decoder_depth"] == saved["hyper_parameters"]["decoder_depth"]
