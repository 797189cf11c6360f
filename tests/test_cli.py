"""The ``lightning`` / ``vtp`` command: resuming, and one clear message for every bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tiny_sizes import TINY_ENCODER, TINY_REC, TINY_SSL

from vtp_lightning.cli import main
from vtp_lightning.errors import CheckpointError, WeightsError
from vtp_lightning.tokenizer import AETokenizer, CLIPAETokenizer, DINOAETokenizer, VTPTokenizer

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
VTP_CONFIG = EXPERIMENTS / "clip_ssl_ae.yaml"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers"),
]


def _snapshot(model: VTPTokenizer) -> dict[str, Any]:
    """What must survive a resume: teacher, centres, and the per-step schedules."""
    return {
        "global_step": model.global_step,
        "teacher": {k: v.detach().clone() for k, v in model.teacher.state_dict().items()},
        "centres": {
            "dino": model.dino_targets.center.clone(),
            "ibot": model.ibot_targets.center.clone(),
        },
        "teacher_momentum": model.teacher_momentum_now(),
        "teacher_temp": model.teacher_temp_now(),
        "lr": model.trainer.optimizers[0].param_groups[0]["lr"],
    }


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """Snapshots of every VTPTokenizer the CLI trains, at the start and at the end of fit."""
    seen: dict[str, list[dict[str, Any]]] = {"start": [], "end": []}
    monkeypatch.setattr(VTPTokenizer, "on_train_start", lambda self: seen["start"].append(_snapshot(self)))
    monkeypatch.setattr(VTPTokenizer, "on_train_end", lambda self: seen["end"].append(_snapshot(self)))
    return seen


def _train_steps(metrics_csv: Path) -> list[int]:
    with metrics_csv.open() as f:
        return sorted({int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")})


def _pinned_batch(self: VTPTokenizer, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, Any]:
    """Replace the batch by one that depends only on the global step (same shapes, same keys)."""
    g = torch.Generator().manual_seed(1000 + self.global_step)
    pinned: dict[str, Any] = {}
    for key, value in batch.items():
        if value.dtype == torch.bool:
            pinned[key] = torch.rand(value.shape, generator=g) < 0.3
        elif value.is_floating_point():
            pinned[key] = torch.rand(value.shape, generator=g) * 2 - 1
        else:
            pinned[key] = value.clone()
    pinned["text"] = torch.randint(1, 1000, batch["text"].shape, generator=g)
    pinned["text"][:, -1] = 49407
    return pinned


def test_a_resumed_run_continues_exactly_where_its_checkpoint_left_off(
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    recorded: dict[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Train 4 steps straight (keeping the step-2 checkpoint), then resume that checkpoint to step 4.

    Each step's batch is pinned to the global step, so this checks the model's own state alone
    (teacher, centres, schedules); that the data stream resumes exactly is tests/test_resume.py's job.
    """
    monkeypatch.setattr(VTPTokenizer, "on_before_batch_transfer", _pinned_batch)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # EMA centring (the scale presets' teacher targets; the CPU configs use Sinkhorn, which has no state)
    centring = {"model.init_args.ssl_teacher_targets": "centering"}
    assert main(shrunk_cli_args(VTP_CONFIG, straight, max_steps=4, checkpoint_every=2, **centring)) == 0
    (at_2,) = (straight / "checkpoints").glob("*step=2*.ckpt")
    assert main(shrunk_cli_args(VTP_CONFIG, resumed, max_steps=4, ckpt_path=at_2, **centring)) == 0
    _, resume_start = recorded["start"]
    straight_end, resumed_end = recorded["end"]
    saved = torch.load(at_2, map_location="cpu", weights_only=True)

    # The resumed run starts from the checkpoint's teacher, centres, step and learning rate ...
    assert saved["global_step"] == resume_start["global_step"] == 2
    for key, value in resume_start["teacher"].items():
        assert torch.equal(value, saved["state_dict"][f"teacher.{key}"]), key
    for name, buffer in (("dino", "dino_targets.center"), ("ibot", "ibot_targets.center")):
        assert torch.equal(resume_start["centres"][name], saved["state_dict"][buffer]), name
        assert resume_start["centres"][name].abs().sum() > 0  # really learnt, not a fresh zero centre
    assert resume_start["lr"] == saved["optimizer_states"][0]["param_groups"][0]["lr"]
    # ... with the schedules at progress 2/4 of the same 4-step run (not restarted).
    # momentum 0.9 -> 1 on a cosine: halfway it is 1 - 0.1 * (cos(pi / 2) + 1) / 2 = 0.95; the
    # teacher temperature is the CPU config's constant 0.04 (experiments/_ssl.yaml: no warm-up).
    assert resume_start["teacher_momentum"] == pytest.approx(0.95)
    assert resume_start["teacher_temp"] == pytest.approx(0.04)

    # It runs only the remaining steps and ends where the uninterrupted run ends.
    assert _train_steps(resumed / "metrics.csv") == [2, 3]
    assert resumed_end["global_step"] == straight_end["global_step"] == 4
    for key in ("teacher_momentum", "teacher_temp", "lr"):
        assert resumed_end[key] == straight_end[key], key
    for key, value in straight_end["teacher"].items():
        # equal up to float rounding: a few ulp at the weights' scale (float32 ulp at 0.07 is 7e-9)
        torch.testing.assert_close(resumed_end["teacher"][key], value, rtol=1e-6, atol=1e-8, msg=key)
    for name in ("dino", "ibot"):
        torch.testing.assert_close(
            resumed_end["centres"][name], straight_end["centres"][name], rtol=1e-6, atol=1e-8
        )


# ------------------------------------------------------------------------------------ bad input
AE_CONFIG = EXPERIMENTS / "ae.yaml"
CLIP_CONFIG = EXPERIMENTS / "clip_ae.yaml"


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "where", ["command_line", "config_file"], ids=["unknown-option-on-the-command-line", "typo-in-a-yaml"]
)
def test_an_unknown_config_key_exits_with_one_error_naming_the_key(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if where == "command_line":
        args = ["fit", "--config", str(AE_CONFIG), "--model.init_args.rec_wieght", "0.2"]
    else:
        typo = tmp_path / "typo.yaml"
        typo.write_text(f"__base__: {AE_CONFIG}\nmodel:\n  init_args:\n    rec_wieght: 0.2\n")
        args = ["fit", "--config", str(typo)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    (error,) = _error_lines(stderr)
    assert error.startswith('error: Parser key "model"')
    # the offending key is named (once) in the indented details of that one error
    details = stderr.split(error, 1)[1]
    assert details.count("Option 'rec_wieght' is not accepted") == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--model.init_args.rec_wieght", "0.2"], "Option 'rec_wieght' is not accepted"),
        (["--data.batch_size", "eight"], 'Parser key "data.batch_size"'),
        (["--config", "no-such-config.yaml"], "no-such-config.yaml"),
    ],
    ids=["unknown-key", "wrong-type", "missing-config"],
)
def test_a_parse_error_is_the_error_and_one_line_pointing_to_help_without_the_usage_block(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(AE_CONFIG), *args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("error: ") and named in "\n".join(lines)
    assert lines[-1].startswith("run '") and lines[-1].endswith(" fit --help' for the accepted options")
    assert not any(line.startswith("usage:") for line in lines)  # jsonargparse's ~70 lines of usage
    # only the error's own indented details sit between the two
    assert all(line.startswith(" ") for line in lines[1:-1])


def test_resuming_another_models_checkpoint_prints_one_error_naming_both_classes(
    ae_checkpoint: Path,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(shrunk_cli_args(VTP_CONFIG, tmp_path, max_steps=2, ckpt_path=ae_checkpoint))
    assert code == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "AETokenizer" in error and "VTPTokenizer" in error
    assert not (tmp_path / "checkpoints").exists()  # refused before anything was trained


def test_init_weights_of_a_different_width_is_a_checkpoint_error_naming_the_tensor(
    ae_checkpoint: Path,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    wider = AETokenizer(
        encoder_width=48, encoder_depth=1, encoder_heads=2, latent_dim=16, rec_decoder_depth=1
    )
    with pytest.raises(
        CheckpointError, match=r"encoder\.cls_token is \(1, 1, 32\) there but \(1, 1, 48\) here"
    ):
        wider.load_matching_weights(ae_checkpoint)

    # through the CLI: one error line, exit code 2, before any step is taken
    args = shrunk_cli_args(
        VTP_CONFIG,
        tmp_path,
        **{"model.init_args.init_weights": ae_checkpoint, "model.init_args.encoder_width": 48},
    )
    assert main(args) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "encoder.cls_token" in error and str(ae_checkpoint) in error
    assert not (tmp_path / "checkpoints").exists()


def test_init_weights_from_a_matching_checkpoint_loads_the_shared_modules_and_reseeds_the_teacher(
    ae_checkpoint: Path,
) -> None:
    # the shrunk CLI run's sizes: the tests' tiny sizes, and the shipped configs' latent width 16
    model = DINOAETokenizer(**TINY_ENCODER, **TINY_SSL, **TINY_REC, latent_dim=16)
    loaded = model.load_matching_weights(ae_checkpoint)
    state = torch.load(ae_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert loaded == ["bottleneck", "decoder", "encoder"]
    assert torch.equal(model.encoder.cls_token, state["encoder.cls_token"])
    assert torch.equal(model.teacher["encoder"].cls_token, state["encoder.cls_token"])


@pytest.mark.parametrize("option", ["clip_text_weights", "rec_perceptual_weights"])
def test_a_missing_weights_file_is_a_weights_error_naming_the_path(
    option: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_clip_ae_options: dict[str, Any],
) -> None:
    missing = tmp_path / "nowhere" / f"{option}.safetensors"
    with pytest.raises(WeightsError, match=str(missing)):
        CLIPAETokenizer(**tiny_clip_ae_options, **{option: str(missing)})

    args = ["fit", "--config", str(CLIP_CONFIG), "--trainer.default_root_dir", str(tmp_path / "run")]
    code = main([*args, f"--model.init_args.{option}", str(missing)])
    assert code == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert str(missing) in error
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------ the installed command
LIGHTNING = Path(sys.executable).parent / "lightning"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LIGHTNING), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_lightning_fit_help_lists_model_data_and_trainer_options(tmp_path: Path) -> None:
    result = _run("fit", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--model", "--data.batch_size", "--trainer.max_steps", "--ckpt_path"):
        assert option in result.stdout


def test_lightning_print_config_shows_the_merged_config_without_training(tmp_path: Path) -> None:
    result = _run(
        "fit", "--config", str(VTP_CONFIG), "--trainer.max_steps", "7", "--print_config", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["model"]["class_path"] == "vtp_lightning.tokenizer.VTPTokenizer"
    init = printed["model"]["init_args"]
    for piece in ("_ssl.yaml", "_clip.yaml", "_rec.yaml"):  # every shared piece's options are merged in
        for key, value in yaml.safe_load((EXPERIMENTS / piece).read_text())["model"]["init_args"].items():
            assert init[key] == pytest.approx(value), f"{key} from {piece}"
    run_data = yaml.safe_load((EXPERIMENTS / "_run.yaml").read_text())["data"]
    assert printed["data"]["image_size"] == run_data["image_size"]  # the model's copy is linked, not printed
    assert printed["trainer"]["max_steps"] == 7
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written
