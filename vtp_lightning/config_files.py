"""Config inheritance for experiment YAMLs.

A config may start with ``__base__: other.yaml`` (or a list): the named files, relative to the
config's own folder, are merged first (recursively, with OmegaConf), then the config on top — so the
loss-combination configs share one base instead of repeating it. The merged result is written to a
temporary file that LightningCLI reads as usual, and removed when the command ends
(:func:`expanded_config_args`). Every config is parsed here first, so a YAML syntax error is one
message naming the file, line and column.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
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
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(
            f"{where}: YAML syntax error ({exc.problem or exc.context}); fix the file"
        ) from None
    except Exception as exc:
        raise ConfigError(f"cannot parse config {path}: {' '.join(str(exc).split())}") from None
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


@contextmanager
def expanded_config_args(argv: list[str]) -> Iterator[list[str]]:
    """``argv`` with every ``--config FILE`` checked and, where it uses ``__base__``, replaced by a
    merged temporary file, which is deleted when the block ends."""
    temporary: list[str] = []
    try:
        yield _expand(argv, temporary)
    finally:
        for name in temporary:
            Path(name).unlink(missing_ok=True)


def _expand(argv: list[str], temporary: list[str]) -> list[str]:
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
            if Path(value).is_file():  # (not a file: jsonargparse reports it, or reads it as YAML text)
                merged = load_config(value)  # every config file: a syntax error names it here
                if has_base(value):
                    temporary.append(_merged_file(value, merged))
                    value = temporary[-1]
            out += ["--config", value]
        i += 1
    return out


def _merged_file(path: str, merged: dict[str, Any]) -> str:
    prefix, suffix = "vtp-config-", f"-{Path(path).name}"
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, prefix=prefix) as handle:
        handle.write(OmegaConf.to_yaml(OmegaConf.create(merged)))
    return handle.name
