"""What a file given as a checkpoint looks like, read from its first bytes without unpickling it.

``torch.load`` fed a text file runs its first bytes as pickle opcodes: a CSV ends in ``IndexError``,
a file starting with ``hello`` in ``KeyError``, and a YAML line starting with ``c`` reads as a
``GLOBAL`` opcode, which looked like pickled code. So :func:`checkpoint_kind` tells first whether the
file can be a torch checkpoint at all (a zip archive holding ``data.pkl``, or a pickle), and names
what it is otherwise; only a real pickle goes on to the weights-only unpickler.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import zipfile
from pathlib import Path

# How many leading bytes are read to name a file that is not a checkpoint.
_SNIFF_BYTES = 4096
_YAML_LINE = re.compile(r"^\s*(- |[\w./-]+:(\s|$))")
_ZIP_MAGIC = b"PK\x03\x04"


class NotACheckpoint(Exception):
    """Raised with what the file looks like (``"CSV text (a run's metrics.csv?)"``)."""


def checkpoint_kind(path: Path) -> str:
    """``"zip"`` (torch's format) or ``"pickle"`` (legacy format or plain pickle); else
    :class:`NotACheckpoint` naming what the file is."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(_ZIP_MAGIC):
        return _zip_kind(path)
    if _starts_with_pickle(path):
        return "pickle"
    raise NotACheckpoint(describe(head))


def _zip_kind(path: Path) -> str:
    if not zipfile.is_zipfile(path):
        raise NotACheckpoint("a truncated zip archive (a checkpoint whose save was cut short?)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        listed = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        raise NotACheckpoint(f"a zip archive with no data.pkl (it holds: {listed or 'nothing'})")
    return "zip"


def _starts_with_pickle(path: Path) -> bool:
    """Whether the file opens with one complete, well-formed pickle (opcodes only, nothing run).

    ``pickletools.dis`` decodes opcodes and checks the stack and marks, so text that merely begins
    with an opcode letter fails within a few bytes; it stops at the first STOP, so a large legacy
    checkpoint is not read beyond its first small pickle.
    """
    with open(path, "rb") as f:
        try:
            pickletools.dis(f, out=io.StringIO())
        except Exception:  # any decoding failure (ValueError, EOF, bad unicode...) means "not a pickle"
            return False
    return True


def describe(head: bytes) -> str:
    """A short name for a file that is not a checkpoint, from its first bytes."""
    if len(head) >= 10 and head[8:10] == b'{"':
        return "a safetensors weights file (give it to init_weights or from_pretrained's folder)"
    if b"\x00" in head:
        return "binary data of an unknown kind"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the sniffed bytes
            return "binary data of an unknown kind"
        text = head[: exc.start].decode("utf-8")
    stripped = text.strip()
    lines = [line for line in stripped.splitlines() if line.strip()]
    start = repr(stripped[:24])
    if not lines:
        return "blank text"
    if stripped[0] in "{[" and _is_json(stripped, complete=len(head) < _SNIFF_BYTES):
        return f"JSON text (starts {start}; an export's config.json?)"
    commas = [line.count(",") for line in lines[:20]]
    if len(lines) >= 2 and commas[0] > 0 and len(set(commas)) == 1:
        return f"CSV text (starts {start}; a run's metrics.csv?)"
    if sum(bool(_YAML_LINE.match(line)) for line in lines[:20]) >= max(1, len(lines[:20]) // 2):
        return f"YAML text (starts {start}; a run's hparams.yaml or a config file?)"
    return f"plain text (starts {start})"


def _is_json(text: str, complete: bool) -> bool:
    if not complete:
        return True  # a long file opening with { or [: too long to parse here, and not a checkpoint anyway
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
