"""``vtp-convert``: an official VTP checkpoint -> this suite's export directory.

    vtp-convert /path/to/VTP-Large-f16d64 converted/vtp-l

writes ``converted/vtp-l/``:

- ``model.safetensors``: every converted tensor under this suite's names (encoder, bottleneck,
  decoder, and when present the text tower, CLIP projection, logit scale, DINO head, EMA teacher);
- ``config.json``: the export config :func:`vtp_lightning.weights.pretrained.from_pretrained` reads,
  plus the conversion report;
- ``model.yaml``: the ``model`` and ``data`` options that build a tokenizer of exactly these shapes
  and maths, with ``init_weights`` pointing at the directory: add it to a ``lightning`` command with
  ``--config converted/vtp-l/model.yaml``.

All three are written by :func:`vtp_lightning.weights.export_dir.write_export_dir`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vtp_lightning.errors import VTPError
from vtp_lightning.official.convert import Converted, convert
from vtp_lightning.official.model_options import model_options
from vtp_lightning.official.source import read_official
from vtp_lightning.weights.export_dir import OPTIONS_NAME, write_export_dir


def convert_official(
    source: str | Path, out_dir: str | Path, *, text_heads: int | None = None, drop_ssl_heads: bool = False
) -> tuple[Path, Converted]:
    """Convert ``source`` (a released directory or a training state dict) and write ``out_dir``."""
    checkpoint = read_official(source)
    converted = convert(checkpoint, text_heads=text_heads, drop_ssl_heads=drop_ssl_heads)
    out = Path(out_dir)
    options = model_options(converted)
    header = (
        f"# written by vtp-convert from {Path(source).resolve()}: modules of exactly these shapes and maths\n"
    )
    write_export_dir(
        out,
        converted.state,
        architecture=converted.architecture,
        source=Path(source).resolve(),
        tokenizer_class=options.class_path,
        extra={
            "official": {"layout": checkpoint.layout, "options": options.init_args, "notes": converted.notes}
        },
        options=options.config(init_weights=str(out.resolve())),
        options_header=header,
    )
    return out, converted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vtp-convert",
        description="Convert an official VTP checkpoint (released Hugging Face directory, or a vtp.models.vtp.VTP "
        "state dict) into this suite's export directory (model.safetensors + config.json + model.yaml).",
    )
    parser.add_argument(
        "source",
        type=Path,
        help="released VTP directory (config.json + model.safetensors) or state-dict file",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the converted model to")
    parser.add_argument(
        "--text-heads",
        type=int,
        default=None,
        help="text tower heads (a training state dict does not record them)",
    )
    parser.add_argument(
        "--drop-ssl-heads",
        action="store_true",
        help="leave the DINO/iBOT heads out (needed when their weight-norm gain is not 1)",
    )
    args = parser.parse_args(argv)
    try:
        out, converted = convert_official(
            args.source, args.out_dir, text_heads=args.text_heads, drop_ssl_heads=args.drop_ssl_heads
        )
    except VTPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"converted {args.source} ({len(converted.state)} tensors) -> {out}")
    for note in converted.notes:
        print(f"  {note}")
    print(f"use it: --config {out / OPTIONS_NAME}   or   from_pretrained({str(out)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
