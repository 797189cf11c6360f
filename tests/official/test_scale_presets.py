"""The paper-scale presets build exactly the released VTP-S/B/L parameter shapes.

``shapes.json`` was recorded from the official ``VTPModel`` (see scripts/make_official_fixtures.py).
The renaming below is the official layout written out independently of the converter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from vtp_lightning.config_files import load_config
from vtp_lightning.tokenizer import VTPTokenizer

REPO = Path(__file__).resolve().parents[2]
SHAPES = json.loads((REPO / "tests" / "fixtures" / "official" / "shapes.json").read_text())
RENAMES = [  # official name pattern -> this suite's name
    (r"^trunk\.feature_bottleneck\.", "bottleneck.proj."),
    (r"^trunk\.patch_embed\.proj\.", "encoder.patch_embed."),
    (r"^trunk\.rope_embed\.", "encoder.rope."),
    (r"^trunk\.", "encoder."),
    (r"^pixel_decoder\.rope_embed\.", "decoder.rope."),
    (r"^pixel_decoder\.", "decoder."),
    (r"\.mlp\.w1\.", ".mlp.fc1_g."),
    (r"\.mlp\.w2\.", ".mlp.fc1_x."),
    (r"\.mlp\.w3\.", ".mlp.fc2."),
    (r"^text_transformer\.", "text_tower.transformer."),
    (r"^(token_embedding|positional_embedding|ln_final|text_projection)", r"text_tower.\1"),
    (r"^visual_proj\.", "clip_image_proj."),
]
pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")
COUNTERPARTS = ("encoder.", "bottleneck.", "decoder.", "text_tower.", "clip_image_proj.", "logit_scale")


def _ours(name: str) -> str:
    for pattern, replacement in RENAMES:
        name = re.sub(pattern, replacement, name)
    return name


@pytest.mark.parametrize("size", ["S", "B", "L"])
def test_scale_preset_has_exactly_the_released_parameter_shapes(size: str) -> None:
    config = load_config(REPO / "experiments" / "scale" / f"vtp_{size.lower()}.yaml")
    options = {**config["model"]["init_args"], **{k: config["data"][k] for k in ("image_size", "patch_size")}}
    with torch.device("meta"):
        model = VTPTokenizer(**options)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith(COUNTERPARTS)}
    official = {_ours(k): tuple(v) for k, v in SHAPES[size].items()}
    official["encoder.mask_token"] = (1, *official["encoder.mask_token"])  # (1, D) there, (1, 1, D) here
    assert set(ours) == set(official)
    wrong = {k: (ours[k], official[k]) for k in ours if ours[k] != official[k]}
    assert not wrong
