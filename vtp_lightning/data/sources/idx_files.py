"""Reading IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from vtp_lightning.errors import DataError

_UINT8 = 0x08


def read_idx(path: Path) -> np.ndarray:
    """Read a uint8 IDX file into an array of its declared shape; malformed files raise DataError."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}; re-download or reinstall it") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UINT8:
        raise DataError(f"{path} is not a uint8 IDX file (bad magic number); is it the right file?")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{path} is truncated or padded: header says shape {shape} ({expected} bytes), "
            f"file has {len(data)} bytes; re-download or reinstall it"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
