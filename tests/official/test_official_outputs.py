"""Converted official checkpoints compute what the official code computes.

The fixtures (``tests/fixtures/official``, made by ``scripts/make_official_fixtures.py`` from the
official VTP code with random weights) hold the official outputs on one input batch. The official
models take ImageNet mean/std-normalised pixels and return them; this suite's take and return
[-1, 1], so the tests map the official reconstruction with y = 2(σx + μ) − 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vtp_lightning.official.convert import convert
from vtp_lightning.official.model_options import model_options
from vtp_lightning.official.source import read_official
from vtp_lightning.tokenizer import CLIPAETokenizer, VTPTokenizer
from vtp_lightning.weights.pretrained import from_pretrained

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TOLERANCE = 1e-5

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")


def _inputs() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "inputs.safetensors"))


def _official_pixels_to_ours(x: torch.Tensor) -> torch.Tensor:
    return 2 * (x * STD + MEAN) - 1


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize(("source", "outputs"), [("hf", "hf_outputs"), ("train.pt", "train_outputs")])
def test_encoder_latents_and_decoder_output_match_the_official_code(source: str, outputs: str) -> None:
    official = load_file(str(FIXTURES / f"{outputs}.safetensors"))
    model = from_pretrained(FIXTURES / source) if source == "hf" else _autoencoder_of(source)
    images = _inputs()["pixels01"] * 2 - 1
    with torch.no_grad():
        latents = model.encode(images)
        decoded = model.decode(official["latents"])
        reconstruction = model.decode(latents)
    expected = _official_pixels_to_ours(official["reconstruction"])
    assert _max_diff(latents, official["latents"]) <= TOLERANCE
    assert _max_diff(decoded, expected) <= TOLERANCE
    # end to end the encoder's fp32 rounding (the pixel fold changes it) reaches the decoder as well
    assert _max_diff(reconstruction, expected) <= 5 * TOLERANCE


def _autoencoder_of(source: str):
    from vtp_lightning.official.loading import official_autoencoder

    return official_autoencoder(FIXTURES / source)


def _tokenizer(cls: type, source: str, **extra: object):
    converted = convert(read_official(FIXTURES / source), text_heads=2)
    torch.manual_seed(0)
    model = cls(**model_options(converted).init_args, **extra).eval()
    assert model.load_matching_weights(FIXTURES / source)  # init_weights reads the official file directly
    return model


def test_released_layout_text_and_image_embeddings_and_features_match() -> None:
    official = load_file(str(FIXTURES / "hf_outputs.safetensors"))
    model = _tokenizer(CLIPAETokenizer, "hf")
    inputs = _inputs()
    with torch.no_grad():
        features = model.encoder(inputs["pixels01"] * 2 - 1)
        text = model.text_tower(inputs["tokens"])
        image = model.clip_image_proj(features["cls"])
    assert _max_diff(text, official["text_embedding"]) <= TOLERANCE
    assert _max_diff(features["cls"], official["cls"]) <= TOLERANCE
    assert _max_diff(features["patch"], official["patch"]) <= TOLERANCE
    assert _max_diff(image, official["image_embedding"]) <= TOLERANCE
    assert model.logit_scale.item() == official["logit_scale"].item()


def test_training_layout_dino_heads_teacher_and_text_match() -> None:
    official = load_file(str(FIXTURES / "train_outputs.safetensors"))
    model = _tokenizer(VTPTokenizer, "train.pt")
    inputs = _inputs()
    images = inputs["pixels01"] * 2 - 1
    with torch.no_grad():
        student = model.encoder(images)["cls"]
        teacher = model.teacher["encoder"](images)["cls"]
        dino = model.ssl_head(student)
        teacher_dino = model.teacher["ssl_head"](teacher)
        text = model.text_tower(inputs["tokens"] % model.text_config.vocab_size)
    assert _max_diff(student, official["cls"]) <= TOLERANCE
    assert _max_diff(teacher, official["teacher_cls"]) <= TOLERANCE
    assert _max_diff(dino, official["dino_logits"]) <= TOLERANCE
    assert _max_diff(teacher_dino, official["teacher_dino_logits"]) <= TOLERANCE
    assert _max_diff(text, official["text_embedding"]) <= TOLERANCE
    assert _max_diff(teacher, student) > 0.1  # the teacher really is a different set of weights


def test_integer_index_rope_does_not_reproduce_the_official_latents() -> None:
    """The fixtures tell the RoPE modes apart (they are not near-uniform attention)."""
    official = load_file(str(FIXTURES / "hf_outputs.safetensors"))
    converted = convert(read_official(FIXTURES / "hf"))
    options = {**model_options(converted).init_args, "rope_coords": "index"}
    model = CLIPAETokenizer(**options).eval()
    state = {k: v for k, v in converted.state.items() if not k.endswith("rope.periods")}
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        latents = model.encode(_inputs()["pixels01"] * 2 - 1)
    assert _max_diff(latents, official["latents"]) > 0.1


def test_bf16_rope_of_the_official_default_is_a_visible_difference_we_do_not_reproduce() -> None:
    """The official code computes RoPE in bf16 by default; this suite computes it in fp32."""
    official = load_file(str(FIXTURES / "hf_outputs.safetensors"))
    with torch.no_grad():
        latents = from_pretrained(FIXTURES / "hf").encode(_inputs()["pixels01"] * 2 - 1)
    assert _max_diff(latents, official["latents"]) < _max_diff(latents, official["latents_bf16_rope"])
