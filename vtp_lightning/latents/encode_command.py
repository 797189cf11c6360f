"""``vtp-encode``: ``lightning predict`` with a :class:`LatentWriter`, in one short line.

    vtp-encode latents/ae --config experiments/ae.yaml --ckpt_path outputs/ae/checkpoints/last.ckpt
    vtp-encode latents/vtp-l --dtype bf16 --config experiments/scale/vtp_l.yaml \\
        --config converted/vtp-l/model.yaml --model.init_args.init_weights converted/vtp-l \\
        --data.predict '{class_path: vtp_lightning.data.ImageFolder, init_args: {root: /data/imagenet/train}}'

Every option after the output folder except ``--dtype`` and ``--shard_size`` goes to ``lightning
predict`` unchanged; the writer replaces the config's callbacks (evaluation does not run while encoding).
"""

from __future__ import annotations

import argparse
import json
import sys

from vtp_lightning.latents.writer import TORCH_DTYPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vtp-encode",
        description="Encode a data set into latents for a generator (LightningDiT's ImgLatentDataset layout).",
        epilog="Other options (--config, --ckpt_path, --data.*, --trainer.*) go to `lightning predict`.",
    )
    parser.add_argument("output_dir", help="folder to write (re-running the same command resumes it)")
    parser.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="fp32", help="stored latent dtype")
    parser.add_argument(
        "--shard_size", type=int, default=10240, help="samples per file (a multiple of the batch)"
    )
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    writer = {
        "class_path": "vtp_lightning.latents.LatentWriter",
        "init_args": {"output_dir": known.output_dir, "dtype": known.dtype, "shard_size": known.shard_size},
    }
    from vtp_lightning.cli import main as lightning_main  # the CLI is heavy: after --help has answered

    return lightning_main(["predict", *rest, "--trainer.callbacks", json.dumps([writer])])


if __name__ == "__main__":
    sys.exit(main())
