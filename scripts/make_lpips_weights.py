"""Combine the two public LPIPS(VGG16) files into the one LPIPS weights file the suite reads.

Inputs (download them on a machine with internet, then copy them over):
  --vgg  torchvision's ImageNet VGG16 weights, ``vgg16-397923af.pth`` (keys ``features.N.weight/bias``)
  --lin  LPIPS v0.1 linear layers for VGG, ``lpips/weights/v0.1/vgg.pth`` (keys ``linK.model.1.weight``)
Output: a ``.safetensors`` with ``features.*`` and ``lin0..lin4.weight``; set it as
``model.init_args.rec_perceptual_weights`` (stage 2: ``model.init_args.perceptual_weights``). Nothing
is downloaded here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file


def combine(vgg_path: Path, lin_path: Path) -> dict[str, torch.Tensor]:
    vgg = torch.load(vgg_path, map_location="cpu", weights_only=True)
    lin = torch.load(lin_path, map_location="cpu", weights_only=True)
    tensors = {k: v.contiguous() for k, v in vgg.items() if k.startswith("features.")}
    for key, value in lin.items():
        name = key.split(".")[0]  # "lin3.model.1.weight" -> "lin3"
        if name.startswith("lin"):
            tensors[f"{name}.weight"] = value.contiguous()
    if len([k for k in tensors if k.startswith("lin")]) != 5 or not any(
        k.startswith("features.") for k in tensors
    ):
        raise SystemExit(f"expected VGG16 'features.*' in {vgg_path} and lin0..lin4 in {lin_path}")
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vgg", type=Path, required=True, help="torchvision vgg16-397923af.pth")
    parser.add_argument("--lin", type=Path, required=True, help="LPIPS v0.1 vgg.pth")
    parser.add_argument("--out", type=Path, default=Path("lpips_vgg.safetensors"))
    args = parser.parse_args()
    save_file(combine(args.vgg, args.lin), str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
