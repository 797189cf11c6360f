"""Train the embedded ``fmnist`` feature network and ship its weights.

Trains :class:`vtp_lightning.metrics.fmnist_net.FashionMNISTNet` on the embedded Fashion-MNIST train
split (10k images, grey repeated to 3 channels, random flips and 2-pixel shifts), reports top-1 on the
embedded test split, and writes ``vtp_lightning/metrics/assets/fmnist_feature_net.safetensors`` with
the architecture version and test accuracy in the safetensors metadata. CPU only, fixed seed, a few
minutes on 2 cores. Run with ``python scripts/train_fmnist_feature_net.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from vtp_lightning.metrics.fmnist_net import FMNIST_INPUT_SIZE, FMNIST_NET_ARCHITECTURE, FashionMNISTNet

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "vtp_lightning" / "data" / "assets" / "fashion_mnist_slice.npz"
OUT = ROOT / "vtp_lightning" / "metrics" / "assets" / "fmnist_feature_net.safetensors"


def as_images01(grey_uint8: np.ndarray) -> torch.Tensor:
    """``(N, 28, 28)`` uint8 -> ``(N, 3, 28, 28)`` float in ``[0, 1]``, the extractor's input format."""
    return torch.from_numpy(grey_uint8).float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def augment(images: torch.Tensor, generator: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random horizontal flips and integer shifts (zero padded, the background is black)."""
    n, _, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    padded = F.pad(images, (shift, shift, shift, shift))
    dy, dx = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + h, dx : dx + w]


@torch.no_grad()
def accuracy(
    net: FashionMNISTNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    net.eval()
    correct = sum(
        (net(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
        for i in range(0, len(images), batch_size)
    )
    return correct / len(images)


def train(args: argparse.Namespace) -> tuple[FashionMNISTNet, float, float]:
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    data = np.load(args.data)
    train_x, train_y = as_images01(data["train_images"]), torch.from_numpy(data["train_labels"]).long()
    test_x, test_y = as_images01(data["test_images"]), torch.from_numpy(data["test_labels"]).long()

    net = FashionMNISTNet()
    steps_per_epoch = -(-len(train_x) // args.batch_size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.2
    )
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(train_x), generator=generator)
        total_loss = 0.0
        for i in range(0, len(order), args.batch_size):
            index = order[i : i + args.batch_size]
            loss = F.cross_entropy(
                net(augment(train_x[index], generator)), train_y[index], label_smoothing=0.1
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(index)
        print(f"epoch {epoch + 1:2d}/{args.epochs}  loss {total_loss / len(order):.4f}", flush=True)
    seconds = time.perf_counter() - start
    return net, accuracy(net, test_x, test_y), seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    net, test_accuracy, seconds = train(args)
    print(f"test top-1 {test_accuracy:.4f} after {seconds:.0f} s of training")
    metadata = {
        "architecture": FMNIST_NET_ARCHITECTURE,
        "test_accuracy": f"{test_accuracy:.4f}",
        "input_size": str(FMNIST_INPUT_SIZE),
        "train_images": "embedded fashion_mnist_slice.npz train split (10000)",
        "test_images": "embedded fashion_mnist_slice.npz test split (2000)",
        "epochs": str(args.epochs),
        "seed": str(args.seed),
        "train_seconds": f"{seconds:.0f}",
    }
    state = {name: tensor.contiguous() for name, tensor in net.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
