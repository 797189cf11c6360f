"""The one rule for caption bytes: UTF-8, or one :class:`DataError` naming the line, column and byte.

Caption files (:mod:`~vtp_lightning.data.sources.caption_file`) and WebDataset ``.txt`` members
(:mod:`~vtp_lightning.data.sources.webdataset_shards`) both decode through :func:`utf8_text`, so the same
bytes are refused the same way wherever they come from (never decoded with replacement characters).
"""

from __future__ import annotations

from vtp_lightning.errors import DataError


def utf8_text(data: bytes, where: str, fix: str) -> str:
    """``data`` as UTF-8 text; else a :class:`DataError` ``"{where}, line L: byte 0xNN at column C is not
    UTF-8 text; {fix}"`` (lines and columns count from 1)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{where}, line {line}: byte {data[exc.start]:#04x} at column {column} is not UTF-8 text; {fix}",
            where=where,
        ) from None
