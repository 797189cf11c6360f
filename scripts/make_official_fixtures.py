"""Regenerate ``tests/fixtures/official/`` from the official VTP code (MIT, github MiniMax-AI/VTP).

The fixtures are what the converter tests check against: tiny official models with random weights
in both official layouts, an input batch, the official code's outputs on it, and the parameter
shapes of the released S, B and L models. Nothing of the official code is copied into this project;
this script imports it from a local clone given on the command line.

How the clone used for the committed fixtures was obtained (no network is needed after that):

    git clone https://github.com/MiniMax-AI/VTP /tmp/vtp_official      # commit 5ce1eb6 (2026-04-15)
    pip install --target /tmp/offpkgs "transformers>=4.50,<5"          # the released VTPModel's base class
    PYTHONPATH=/tmp/offpkgs python scripts/make_official_fixtures.py /tmp/vtp_official

Files written (about 3 MB in all):

- ``hf/config.json`` + ``hf/model.safetensors``: a ``VTPModel.save_pretrained`` directory (the released
  layout: encoder, bottleneck, decoder, text tower, CLIP projection, logit scale; RoPE periods in
  bf16 as in the release).
- ``train.pt``: a ``vtp.models.vtp.VTP`` state dict (the training class: adds the DINO head and the
  EMA teacher trunk, CLIP projection and head; RoPE periods in fp32), saved with ``torch.save``.
- ``inputs.safetensors``: ``pixels01`` (B, 3, 64, 64) in [0, 1] and caption ``tokens`` (B, 32).
- ``hf_outputs.safetensors`` / ``train_outputs.safetensors``: the official outputs, fp32, RoPE
  computed in fp32 from the stored periods (the official default computes RoPE in bf16; those
  outputs are kept too, as ``*_bf16_rope``, to show the size of that difference).
- ``shapes.json``: parameter name -> shape of the official ``VTPModel`` at S, B and L (built on the
  meta device; decoders symmetric with the encoder, text tower 768/12/12, as the released models).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The tiny model: widths chosen so that SwiGLU rounding matters (int(4*40*2/3) = 106 -> 112,
# int(4*56*2/3) = 149 -> 152) and head widths give several RoPE periods (20/4 = 5, 28/4 = 7).
TINY = {
    "image_size": 64,
    "patch": 16,
    "width": 40,
    "depth": 2,
    "heads": 2,
    "latent": 8,
    "dec_width": 56,
    "dec_depth": 2,
    "dec_heads": 2,
    "text_context": 32,
    "text_width": 8,
    "text_heads": 2,
    "text_depth": 1,
}
RELEASED = {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16)}


def hf_config(vtp_hf, image_size, patch, width, depth, heads, latent, dec, text, vocab):
    (dec_width, dec_depth, dec_heads), (text_context, text_width, text_heads, text_depth) = dec, text
    return vtp_hf.VTPConfig(
        image_size=image_size,
        vision_patch_size=patch,
        vision_embed_dim=width,
        vision_depth=depth,
        vision_num_heads=heads,
        vision_feature_bottleneck=latent,
        text_context_length=text_context,
        text_vocab_size=vocab,
        text_embed_dim=text_width,
        text_num_heads=text_heads,
        text_depth=text_depth,
        decoder_embed_dim=dec_width,
        decoder_num_heads=dec_heads,
        decoder_depth=dec_depth,
    )


def randomise(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Replace the official init (std 0.02: near-uniform attention, where RoPE hardly matters) by
    weights of std 1/sqrt(fan_in), and give norms, biases and tokens values that differ from their
    init, so that every renaming and every option shows in the outputs."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith("weight_g"):
                p.fill_(1.0)  # the released DINO heads keep the gain at 1; a test sets other values
            elif p.ndim >= 2 and "embedding" not in name:
                p.copy_(noise / p[0].numel() ** 0.5)
            elif name.endswith("logit_scale"):
                p.fill_(2.3)
            elif "norm" in name or "ln_" in name:
                p.copy_((1.0 + 0.2 * noise) if name.endswith("weight") else 0.1 * noise)
            else:
                p.copy_(0.5 * noise if "token" in name or "embedding" in name else 0.1 * noise)


def use_fp32_rope(*ropes: torch.nn.Module) -> None:
    """Compute RoPE in fp32 from the stored periods (their values kept, only the arithmetic changes)."""
    for rope in ropes:
        rope.dtype = torch.float32
        rope.periods.data = rope.periods.data.float()


def use_bf16_rope(*ropes: torch.nn.Module) -> None:
    for rope in ropes:
        rope.dtype = torch.bfloat16
        rope.periods.data = rope.periods.data.to(torch.bfloat16)


def make_inputs(generator: torch.Generator, vocab: int) -> dict[str, torch.Tensor]:
    size = TINY["image_size"]
    pixels = torch.rand(2, 3, size, size, generator=generator)
    tokens = torch.zeros(2, TINY["text_context"], dtype=torch.long)
    for row, length in enumerate((7, 19)):  # start token, words, end-of-text (the largest id)
        tokens[row, 0] = vocab - 2
        tokens[row, 1 : length - 1] = torch.randint(1, vocab - 2, (length - 2,), generator=generator)
        tokens[row, length - 1] = vocab - 1
    return {"pixels01": pixels, "tokens": tokens}


def imagenet(pixels01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels01 - mean) / std


@torch.no_grad()
def hf_outputs(model, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    images = imagenet(inputs["pixels01"])
    latents = model.get_reconstruction_latents(images)
    features = model.get_last_layer_feature(images)
    return {
        "latents": latents,
        "reconstruction": model.get_latents_decoded_images(latents),
        "cls": features["cls_token"],
        "patch": features["patch_tokens"],
        "image_embedding": model.get_clip_image_feature(images, normalize=False),
        "text_embedding": model.get_clip_text_feature(inputs["tokens"], normalize=False),
        "logit_scale": model.logit_scale.detach().clone(),
    }


def tiny_hf(vtp_hf, vocab: int):
    t = TINY
    config = hf_config(
        vtp_hf,
        t["image_size"],
        t["patch"],
        t["width"],
        t["depth"],
        t["heads"],
        t["latent"],
        (t["dec_width"], t["dec_depth"], t["dec_heads"]),
        (t["text_context"], t["text_width"], t["text_heads"], t["text_depth"]),
        vocab,
    )
    return vtp_hf.VTPModel(config).eval()


def train_config(vocab: int, prototypes: int):
    from omegaconf import OmegaConf

    t = TINY
    return OmegaConf.create(
        {
            "data": {"image_size": t["image_size"]},
            "training": {
                "train_clip": True,
                "train_dinov2": True,
                "train_reconstruction": True,
                "cast_dtype": None,
                "init_logit_scale": None,
                "init_logit_bias": None,
                "nonscalar_logit_scale": False,
                "clip_output_dict": True,
                "clip_drop_rate": 0.0,
                "ssl_drop_rate": 0.0,
                "rec_drop_rate": 0.0,
            },
            "vtp_model": {
                "vision_encoder": {
                    "model_type": "dinov3",
                    "patch_size": t["patch"],
                    "embed_dim": t["width"],
                    "depth": t["depth"],
                    "num_heads": t["heads"],
                    "mlp_ratio": 4.0,
                    "norm_type": "rmsnorm",
                    "init_values": None,
                    "ffn_layer": "swiglu",
                    "vit_feature_bottleneck": t["latent"],
                    "bottleneck_ae_only": True,
                    "clip_feat": "cls",
                    "pos_embed_rope_dtype": "fp32",
                },
                "text_encoder": {
                    "quick_gelu": False,
                    "norm_kwargs": None,
                    "act_kwargs": None,
                    "context_length": t["text_context"],
                    "vocab_size": vocab,
                    "embed_dim": t["text_width"],
                    "heads": t["text_heads"],
                    "layers": t["text_depth"],
                    "mlp_ratio": 4.0,
                    "ls_init_value": None,
                    "embed_cls": False,
                    "no_causal_mask": False,
                    "pad_id": 0,
                    "pool_type": "argmax",
                    "proj_type": "linear",
                    "proj_bias": False,
                    "output_tokens": False,
                },
                "dino_head": {"out_dim": prototypes, "nlayers": 3, "hidden_dim": 24, "bottleneck_dim": 16},
                "pixel_decoder": {
                    "model_type": "dinov3",
                    "embed_dim": t["dec_width"],
                    "depth": t["dec_depth"],
                    "num_heads": t["dec_heads"],
                    "ffn_layer": "swiglu",
                    "norm_layer": "layernorm",
                    "upscale_factor": t["patch"],
                    "pos_embed_rope_dtype": "fp32",
                },
            },
        }
    )


@torch.no_grad()
def train_outputs(model, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    images = imagenet(inputs["pixels01"])
    student = model.trunk(images, is_training=True, use_bottleneck=False)
    teacher = model.teacher_trunk(images, is_training=True, use_bottleneck=False)
    rec = model.get_reconstruction_outputs(images)["reconstructed_image"]
    latents = model.trunk(images, is_training=True, use_bottleneck=True)["x_norm_patchtokens"]
    grid = TINY["image_size"] // TINY["patch"]
    return {
        "latents": latents.transpose(1, 2).reshape(latents.shape[0], -1, grid, grid),
        "reconstruction": rec,
        "cls": student["x_norm_clstoken"],
        "teacher_cls": teacher["x_norm_clstoken"],
        "dino_logits": model.dino_head(student["x_norm_clstoken"]),
        "teacher_dino_logits": model.teacher_dino_head(teacher["x_norm_clstoken"]),
        "text_embedding": model.encode_text(inputs["tokens"] % model.vocab_size, normalize=False),
    }


def released_shapes(vtp_hf) -> dict[str, dict[str, list[int]]]:
    shapes = {}
    for name, (width, depth, heads) in RELEASED.items():
        config = hf_config(
            vtp_hf, 256, 16, width, depth, heads, 64, (width, depth, heads), (77, 768, 12, 12), 49408
        )
        with torch.device("meta"):
            model = vtp_hf.VTPModel(config)
        shapes[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clone", type=Path, help="local clone of github MiniMax-AI/VTP")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/official"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.clone.resolve()))
    from vtp.models import vtp as vtp_train
    from vtp.models import vtp_hf

    out = args.out
    (out / "hf").mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    vocab = 49408  # the BPE vocabulary: the data pipeline's captions index it
    inputs = make_inputs(generator, vocab)
    save_file(inputs, str(out / "inputs.safetensors"))

    hf = tiny_hf(vtp_hf, vocab)
    randomise(hf, generator)
    hf.save_pretrained(out / "hf", safe_serialization=True)
    ropes = (hf.trunk.rope_embed, hf.pixel_decoder.rope_embed)
    use_bf16_rope(*ropes)
    bf16 = hf_outputs(hf, inputs)
    use_fp32_rope(*ropes)
    outputs = hf_outputs(hf, inputs)
    outputs.update({f"{k}_bf16_rope": bf16[k] for k in ("latents", "reconstruction")})
    save_file({k: v.contiguous() for k, v in outputs.items()}, str(out / "hf_outputs.safetensors"))

    train_vocab = 256  # small: the text tower of this layout is checked on tokens modulo 256
    model = vtp_train.VTP(vtp_config=train_config(train_vocab, prototypes=32)).eval()
    randomise(model, generator)
    torch.save(model.state_dict(), out / "train.pt")
    save_file(
        {k: v.contiguous() for k, v in train_outputs(model, inputs).items()},
        str(out / "train_outputs.safetensors"),
    )

    (out / "shapes.json").write_text(json.dumps(released_shapes(vtp_hf), indent=1))
    (out / "tiny.json").write_text(
        json.dumps({**TINY, "vocab": vocab, "train_vocab": train_vocab, "prototypes": 32}, indent=1)
    )
    print(f"wrote fixtures to {out}")


if __name__ == "__main__":
    main()
