"""Config inheritance for experiment YAMLs.

A config may start with ``__base__: other.yaml`` (or a list): the named files, relative to the
config's own folder, are merged first (recursively, with OmegaConf), then the config on top — so the
loss-combination configs share one base instead of repeating it. The merged result is written to a
temporary file that LightningCLI reads as usual.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vtp_lightning.errors import ConfigError

BASE_KEY = "__base__"


def load_config(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load ``path`` with its ``__base__`` chain merged in, as a plain dict."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if path in _seen:
        raise ConfigError(f"config {path} includes itself through {BASE_KEY}")
    try:
        node = OmegaConf.load(path)
    except Exception as exc:
        raise ConfigError(f"cannot parse config {path}: {exc}") from exc
    data = OmegaConf.to_container(node, resolve=False) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged = OmegaConf.create()
    for base in bases:
        merged = OmegaConf.merge(merged, load_config(path.parent / base, (*_seen, path)))
    merged = OmegaConf.merge(merged, OmegaConf.create(data))
    return OmegaConf.to_container(merged, resolve=False)


def has_base(path: str | Path) -> bool:
    try:
        text = Path(path).read_text()
    except OSError:
        return False
    return any(line.startswith(f"{BASE_KEY}:") for line in text.splitlines())


def expand_config_args(argv: list[str]) -> list[str]:
    """Replace every ``--config FILE`` whose file uses ``__base__`` by a merged temporary file."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        value: str | None = None
        if arg in ("--config", "-c") and i + 1 < len(argv):
            value, i = argv[i + 1], i + 1
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        if value is None:
            out.append(arg)
        else:
            out += ["--config", _merged_file(value) if has_base(value) else value]
        i += 1
    return out


def _merged_file(path: str) -> str:
    merged = load_config(path)
    prefix, suffix = "vtp-config-", f"-{Path(path).name}"
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, prefix=prefix) as handle:
        handle.write(OmegaConf.to_yaml(OmegaConf.create(merged)))
    return handle.name
