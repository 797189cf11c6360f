"""The CLI's argument parser: a parse error is the error and one line pointing to ``--help``.

jsonargparse prints the whole usage block (about 70 lines for ``lightning fit``) before the one line
that says what is wrong; here the error comes first and alone, with its indented details (which
name the offending key), and the usage stays behind ``--help``.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from lightning.pytorch.cli import LightningArgumentParser


class ShortErrorParser(LightningArgumentParser):
    """LightningCLI's parser, with jsonargparse's own exits replaced by the short form."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse trying a parse internally: it wants the exception
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {message.rstrip()}\nrun '{prog} --help' for the accepted options\n")
        sys.exit(2)
