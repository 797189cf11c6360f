"""vtp-convert: every official tensor accounted for, and one clear error for what cannot convert."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from vtp_lightning.errors import CheckpointError
from vtp_lightning.official.command import main
from vtp_lightning.official.convert import convert
from vtp_lightning.official.model_options import model_options
from vtp_lightning.official.source import read_official
from vtp_lightning.tokenizer import CLIPAETokenizer, VTPTokenizer
from vtp_lightning.weights.pretrained import from_pretrained, read_weights

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")


def _released_copy(tmp_path: Path, edit=None, config_edit=None) -> Path:
    """A copy of the released-layout fixture, its tensors or config edited."""
    out = tmp_path / "released"
    shutil.copytree(FIXTURES / "hf", out)
    if edit is not None:
        tensors = load_file(str(out / "model.safetensors"))
        edit(tensors)
        save_file(tensors, str(out / "model.safetensors"))
    if config_edit is not None:
        config = json.loads((out / "config.json").read_text())
        config_edit(config)
        (out / "config.json").write_text(json.dumps(config))
    return out


def _training_copy(tmp_path: Path, edit) -> Path:
    tensors = torch.load(FIXTURES / "train.pt", weights_only=True)
    edit(tensors)
    torch.save(tensors, tmp_path / "train.pt")
    return tmp_path / "train.pt"


@pytest.mark.parametrize(("source", "cls"), [("hf", CLIPAETokenizer), ("train.pt", VTPTokenizer)])
def test_every_official_tensor_is_converted_or_left_out_with_a_reason(source: str, cls: type) -> None:
    checkpoint = read_official(FIXTURES / source)
    converted = convert(checkpoint, text_heads=2)
    assert len(converted.state) + len(converted.left_out) == len(checkpoint.tensors)
    options = model_options(converted)
    assert options.class_path == f"{cls.__module__}.{cls.__qualname__}"
    # the converted tensors are exactly the parameters and RoPE periods of the composition they name
    model_state = cls(**options.init_args).state_dict()
    own = {k for k in model_state if not k.endswith(("center", "center_initialized"))}
    assert set(converted.state) == own
    assert all(converted.state[k].shape == model_state[k].shape for k in own)


def test_training_layout_leaves_out_only_the_unused_teacher_projection_bottleneck_and_unit_gains() -> None:
    left_out = convert(read_official(FIXTURES / "train.pt"), text_heads=2).left_out
    assert sorted(left_out) == [
        "dino_head.last_layer.weight_g",
        "teacher_dino_head.last_layer.weight_g",
        "teacher_proj.weight",
        "teacher_trunk.feature_bottleneck.weight",
    ]


def test_vtp_convert_writes_a_directory_that_from_pretrained_and_init_weights_load(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "converted"
    assert main([str(FIXTURES / "hf"), str(out)]) == 0
    assert "converted" in capsys.readouterr().out
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    direct, written = from_pretrained(FIXTURES / "hf"), from_pretrained(out)
    torch.testing.assert_close(written.encode(images), direct.encode(images), rtol=0, atol=0)
    options = OmegaConf.to_container(OmegaConf.load(out / "model.yaml"))
    assert options["model"]["init_args"]["init_weights"] == str(out.resolve())
    assert options["model"]["init_args"]["rope_coords"] == "normalized"
    assert options["data"] == {"image_size": 64, "patch_size": 16}
    assert set(read_weights(out)) == set(read_weights(FIXTURES / "hf"))


def _expect_one_error(path: Path, *fragments: str, **kwargs: object) -> None:
    with pytest.raises(CheckpointError) as error:
        convert(read_official(path), **kwargs)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_an_unknown_tensor_is_named(tmp_path: Path) -> None:
    path = _released_copy(tmp_path, edit=lambda t: t.update({"trunk.extra_scale": torch.ones(3)}))
    _expect_one_error(path, "no counterpart", "trunk.extra_scale")


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    path = _released_copy(tmp_path, edit=lambda t: t.pop("trunk.blocks.1.attn.proj.bias"))
    _expect_one_error(path, "missing", "encoder.blocks.1.attn.proj.bias")


def test_rope_periods_of_another_base_are_refused(tmp_path: Path) -> None:
    path = _released_copy(
        tmp_path, edit=lambda t: t.update({"trunk.rope_embed.periods": t["trunk.rope_embed.periods"] * 1.5})
    )
    _expect_one_error(path, "trunk.rope_embed.periods", "base-100")


def test_a_dino_gain_other_than_one_is_refused_unless_the_heads_are_dropped(tmp_path: Path) -> None:
    def gain(tensors: dict[str, torch.Tensor]) -> None:
        tensors["dino_head.last_layer.weight_g"] = tensors["dino_head.last_layer.weight_g"] * 1.5

    path = _training_copy(tmp_path, gain)
    _expect_one_error(path, "weight_g", "--drop-ssl-heads", text_heads=2)
    converted = convert(read_official(path), text_heads=2, drop_ssl_heads=True)
    assert not any("ssl_head" in k for k in converted.state)
    assert model_options(converted).tokenizer is CLIPAETokenizer


def test_layerscale_and_qk_norm_are_refused_by_name(tmp_path: Path) -> None:
    path = _released_copy(tmp_path, edit=lambda t: t.update({"trunk.blocks.0.ls1.gamma": torch.ones(40)}))
    _expect_one_error(path, "LayerScale", "trunk.blocks.0.ls1.gamma")
    path = _released_copy(tmp_path / "qk", config_edit=lambda c: c.update(vision_use_qk_norm=True))
    _expect_one_error(path, "vision_use_qk_norm")


def test_a_truncated_or_foreign_file_is_one_error_line(tmp_path: Path, capsys) -> None:
    truncated = _released_copy(tmp_path)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 3])
    foreign = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.ones(2)}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    for path, fragment in (
        (truncated, "truncated"),
        (foreign, "not an official VTP checkpoint"),
        (text, "not a torch"),
    ):
        assert main([str(path), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and fragment in err, err


def test_init_weights_refuses_official_weights_for_a_model_with_integer_rope_positions() -> None:
    converted = convert(read_official(FIXTURES / "hf"))
    model = CLIPAETokenizer(**{**model_options(converted).init_args, "rope_coords": "index"})
    with pytest.raises(CheckpointError, match="rope_coords: normalized"):
        model.load_matching_weights(FIXTURES / "hf")
