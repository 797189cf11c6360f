"""``vtp-export``: a trained tokenizer checkpoint -> ``model.safetensors`` + ``config.json``.

vtp-export runs/x/checkpoints/last.ckpt exported/vtp-tiny
>>> from vtp_lightning.export import from_pretrained
>>> ae = from_pretrained("exported/vtp-tiny"); z = ae.encode(images); x = ae.decode(z)

The work is done in :mod:`vtp_lightning.weights`; ``from_pretrained`` and ``export_pretrained`` are
re-exported here because the README documents them under this name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vtp_lightning.errors import VTPError
from vtp_lightning.weights.pretrained import export_pretrained, from_pretrained

__all__ = ["export_pretrained", "from_pretrained", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vtp-export", description="Export a tokenizer checkpoint to safetensors + config.json."
    )
    parser.add_argument("checkpoint", type=Path, help="Lightning checkpoint written by `lightning fit`")
    parser.add_argument("out_dir", type=Path, help="directory to write model.safetensors and config.json to")
    args = parser.parse_args(argv)
    try:
        out = export_pretrained(args.checkpoint, args.out_dir)
    except VTPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
