"""SHA-256 of weights files: verifies downloads and identifies networks in cache keys."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large weights never sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
